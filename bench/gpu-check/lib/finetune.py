"""gpu-check helper (not a part): a short fine-tune through the trainer's own CLI, launched by torchrun.

    python3 bench/gpu-check/lib/finetune.py --device cuda --steps 3        # torchrun --nproc_per_node=1
    python3 bench/gpu-check/lib/finetune.py --device cpu --quick           # CI: tiny preset

Prints one JSON object: the launcher used, wall time, the trainer's events by kind, its last error if any.
With --quick, a torchrun that fails (Debian's torch 1.13 torchrun crashes on Python 3.11) is recorded
and the trainer is run again without it, so the spec and the loop are still tested.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter

import numpy as np
from PIL import Image

TRAINER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "trainer")


def spec(root: str, args: argparse.Namespace) -> str:
    example = json.loads(subprocess.run([sys.executable, "-m", "fqgan.train", "--example-spec"], cwd=TRAINER,
                                        check=True, capture_output=True, text=True).stdout)
    size = 32 if args.quick else 256
    data = os.path.join(root, "images")
    os.makedirs(data)
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 255, (size + 8, size + 16, 3), dtype=np.uint8)).save(os.path.join(data, f"{i}.png"))
    example.update(dataset=data, output_dir=os.path.join(root, "job"), weights={})
    example["model"] = {"preset": "test-8" if args.quick else "VQ-16", "variant": "triple",
                        "overrides": {"image_size": size} if args.quick else {}}
    example["hyperparameters"].update(steps=args.steps, batch_size=2 if args.quick else 8, perceptual_weight=0.0,
                                      semantic_weight=0.0, eval_images=0, eval_every=0, checkpoint_every=0, log_every=1)
    example["device"] = {"device": args.device, "precision": "fp32" if args.device == "cpu" else "bf16", "num_workers": 0}
    path = os.path.join(root, "spec.json")
    with open(path, "w") as f:
        json.dump(example, f)
    return path


def launch(command, timeout):
    started = time.perf_counter()
    done = subprocess.run(command, cwd=TRAINER, capture_output=True, text=True, timeout=timeout)
    events = []
    for line in done.stdout.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            pass
    kinds = Counter(e.get("event", "?") for e in events if isinstance(e, dict))
    errors = [e for e in events if isinstance(e, dict) and e.get("event") == "error"]
    return {"command": " ".join(command[:4]) + " ...", "rc": done.returncode, "seconds": round(time.perf_counter() - started, 2),
            "events": dict(kinds), "error": errors[-1] if errors else None,
            "stderr_tail": done.stderr[-800:] if done.returncode else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--timeout", type=float, default=150)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="fqtok-gpu-check-")
    try:
        path = spec(root, args)
        torchrun = shutil.which("torchrun")
        command = ([torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"])
        result = {"part": "finetune", "device": args.device, "steps": args.steps,
                  "torchrun": launch(command + ["--nproc_per_node=1", "-m", "fqgan.train", "--spec", path], args.timeout)}
        ok = result["torchrun"]["rc"] == 0
        if not ok and args.quick:
            shutil.rmtree(os.path.join(root, "job"), ignore_errors=True)
            result["plain"] = launch([sys.executable, "-m", "fqgan.train", "--spec", path], args.timeout)
            ok = result["plain"]["rc"] == 0
        result["ok"] = ok
        print(json.dumps(result))
        sys.exit(0 if ok else 1)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
