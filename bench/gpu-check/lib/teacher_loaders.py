"""gpu-check part `teachers`: where transformers is installed, its from_pretrained loader and the trainer's
plain-torch towers read the same teacher directories to the same features (weights.teacher_loader).

    python3 teacher_loaders.py --device cuda|cpu

Tiny random towers of the real DINOv2 and CLIP architectures are written as Hugging Face directories and
loaded both ways. Prints one JSON object; "skip" says why nothing ran (transformers absent), "errors"
names a tower that failed to load or disagreed beyond the tolerance.
"""
import argparse
import json
import os
import sys
import tempfile
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "trainer"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "trainer", "tests"))

from fqgan.teachers import load_teacher  # noqa: E402
from teacher_fixtures import save_pretrained, tiny_backbone  # noqa: E402  (test towers, trainer/tests)

TOLERANCE = 1e-4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    args = parser.parse_args()
    try:
        import transformers
    except ImportError:
        print(json.dumps({"part": "teachers", "skip": "transformers is not installed here", "measured": 0}))
        return
    device = torch.device(args.device)
    result = {"part": "teachers", "transformers": transformers.__version__, "device": args.device,
              "tolerance": TOLERANCE, "towers": {}, "errors": []}
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)).to(device) * 2 - 1
    with tempfile.TemporaryDirectory() as root:
        for kind, dim in (("dino", 64), ("clip", 64)):
            folder = os.path.join(root, kind)
            save_pretrained(tiny_backbone(kind, dim), kind, folder)
            try:
                started = time.perf_counter()
                native = load_teacher(kind, folder, loader="native").to(device)
                hf = load_teacher(kind, folder, loader="transformers").to(device)
                difference = float((native(images) - hf(images)).abs().max())
            except Exception as error:  # the finding is the error: record it, try the other tower
                result["errors"].append(f"{kind}: {type(error).__name__}: {error}"[:500])
                continue
            result["towers"][kind] = {"max_abs_difference": difference, "seconds": round(time.perf_counter() - started, 2)}
            if difference > TOLERANCE:
                result["errors"].append(f"{kind}: the loaders differ by {difference:.3g} > {TOLERANCE}")
    result["measured"] = len(result["towers"])
    print(json.dumps(result))
    sys.exit(0 if result["measured"] else 1)


if __name__ == "__main__":
    main()
