"""Training throughput of the fqgan trainer (images per second, optimizer steps of the real loop).

    python bench/train_throughput.py                                   # tiny CPU run (test-8 at 32 px)
    python bench/train_throughput.py --device cuda --dtype bf16 --preset VQ-16 --batch 16

--objective full (default) runs every loss: LPIPS, both semantic teachers at their released sizes
(random weights: speed does not depend on their values), the discriminator from step 1 with the
adaptive weight, EMA. --objective rec keeps reconstruction + codebook losses only.
Prints one JSON object on stdout. With --budget-s, timing stops early (after at least one timed step)
when the next step would not fit, and "timed_steps" says how many were timed.
"""
import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "trainer"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "trainer", "tests"))

from fqgan import distributed  # noqa: E402
from fqgan.config import preset  # noqa: E402
from fqgan.events import Events  # noqa: E402
from fqgan.lpips import VGG16Features  # noqa: E402
from fqgan.train.spec import TrainSpec  # noqa: E402
from fqgan.train.trainer import StopFlag, Trainer  # noqa: E402
from fqgan.vit import ClipVision, DinoV2, ViTConfig  # noqa: E402
from teacher_fixtures import save_pretrained, tiny_backbone  # noqa: E402  (test towers, trainer/tests)

# Released teacher towers by feature width: (kind, layers, heads, patch, trained image size).
RELEASED_TOWERS = {384: ("dino", 12, 6, 14, 518), 768: ("clip", 12, 12, 16, 224), 1024: ("clip", 24, 16, 14, 224)}


def write_teacher(kind: str, width: int, folder: str) -> None:
    if width in RELEASED_TOWERS and RELEASED_TOWERS[width][0] == kind:
        _, layers, heads, patch, size = RELEASED_TOWERS[width]
        config = ViTConfig(width, layers, heads, 4 * width, patch, size, 1e-6 if kind == "dino" else 1e-5)
        save_pretrained(DinoV2(config) if kind == "dino" else ClipVision(config), kind, folder)
    else:
        save_pretrained(tiny_backbone(kind, width), kind, folder)


def build_spec(args: argparse.Namespace, root: str) -> TrainSpec:
    config = preset(args.preset, args.variant, **({"image_size": args.image_size} if args.image_size else {}))
    size = config.image_size
    data = os.path.join(root, "images")
    os.makedirs(data)
    rng = np.random.default_rng(0)
    for i in range(max(2 * args.batch, 8)):
        Image.fromarray(rng.integers(0, 255, (size + size // 4, size + size // 3, 3), dtype=np.uint8)).save(
            os.path.join(data, f"{i}.png"))
    full = args.objective == "full"
    hp = {"steps": args.warmup + args.steps + 1, "batch_size": args.batch, "log_every": 10 ** 9, "eval_images": 0,
          "checkpoint_every": 0, "eval_every": 0, "perceptual_weight": 1.0 if full else 0.0,
          "semantic_weight": 0.5 if full else 0.0, "disc_start": 0 if full else 10 ** 9, "adaptive_weight": full,
          "ema": full, "entropy_loss_ratio": 0.03}
    weights = {}
    if full:
        torch.save({f"features.{k}": v for k, v in VGG16Features().features.state_dict().items()},
                   os.path.join(root, "vgg16.pth"))
        torch.save({f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate((64, 128, 256, 512, 512))},
                   os.path.join(root, "lin.pth"))
        weights = {"lpips_vgg": os.path.join(root, "vgg16.pth"), "lpips_lin": os.path.join(root, "lin.pth")}
        for codebook, width in zip(config.semantic_codebooks, config.semantic_head_widths):
            kind = "dino" if codebook == "sem_mid" else "clip"
            write_teacher(kind, width, os.path.join(root, kind))
            weights[kind] = os.path.join(root, kind)
    return TrainSpec.from_dict({
        "dataset": data, "output_dir": os.path.join(root, "out"),
        "model": {"preset": args.preset, "variant": args.variant,
                  "overrides": {"image_size": size} if args.image_size else {}},
        "hyperparameters": hp, "weights": weights,
        "device": {"device": args.device, "precision": args.dtype, "num_workers": args.workers},
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="test-8")
    parser.add_argument("--variant", default="triple", choices=("triple", "dual"))
    parser.add_argument("--image-size", type=int, default=None, help="default: 32 for test presets, else the preset's")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--objective", default="full", choices=("full", "rec"))
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--budget-s", type=float, default=None, help="seconds for setup and steps, if limited")
    args = parser.parse_args()
    started = time.perf_counter()
    out_of_time = (lambda step_s: args.budget_s is not None
                   and time.perf_counter() - started + 2 * step_s > args.budget_s)
    if args.image_size is None and args.preset.startswith("test"):
        args.image_size = 32
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as root:
        spec = build_spec(args, root)
        device = torch.device(args.device)
        trainer = Trainer(spec, Events(stream=io.StringIO()), distributed.DistInfo(0, 1, 0), device, args.dtype,
                          StopFlag())
        trainer.setup()
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        for _ in range(args.warmup):
            trainer.train_step()
        times = []
        for _ in range(args.steps):
            if times and out_of_time(max(times)):
                break
            sync()
            start = time.perf_counter()
            trainer.train_step()
            sync()
            times.append(time.perf_counter() - start)

    step_s = statistics.median(times)
    print(json.dumps({
        "bench": "train_throughput", "preset": args.preset, "variant": args.variant,
        "image_size": trainer.image_size, "device": args.device,
        "device_name": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu x{args.threads} threads",
        "dtype": args.dtype, "batch": args.batch, "objective": args.objective, "timed_steps": len(times),
        "images_per_s": round(args.batch / step_s, 3), "step_ms_median": round(1000 * step_s, 2),
        "step_ms_min": round(1000 * min(times), 2), "step_ms_max": round(1000 * max(times), 2),
        "parameters": sum(p.numel() for p in trainer.model.parameters()),
        "peak_memory_gb": round(torch.cuda.max_memory_allocated() / 2 ** 30, 2) if device.type == "cuda" else None,
        "torch": torch.__version__, "seconds": round(time.perf_counter() - started, 1), "measured": 1,
    }))


if __name__ == "__main__":
    main()
