"""Evaluate a tokenizer on a folder of images: PSNR, SSIM and per-codebook usage, printed as JSON.

    python -m fqgan.evaluate --checkpoint ckpt.pt --images DIR [--weights ema] [--limit 1000]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from dataclasses import asdict, dataclass, field
from typing import Dict, Iterable, List, Optional

import torch

from .data import Batch, eval_loader
from .images import scan_images
from .metrics import psnr, ssim, to_uint8
from .model import FQGAN


@dataclass
class EvalResult:
    images: int
    psnr: Optional[float]  # mean over images, dB; None when no image decoded
    ssim: Optional[float]
    usage: Dict[str, float]  # distinct tokens used over the images / codebook size
    skipped: List[str] = field(default_factory=list)


@torch.no_grad()
def evaluate(model: FQGAN, batches: Iterable[Batch], device: torch.device,
             autocast: Optional[contextlib.AbstractContextManager] = None) -> EvalResult:
    """Encode to tokens, decode the tokens (as the reference does), and score against the inputs."""
    was_training = model.training
    model.eval()
    psnrs, ssims, skipped = [], [], []
    seen: Dict[str, torch.Tensor] = {}
    try:
        for batch in batches:
            skipped += batch.skipped
            if batch.images.numel() == 0:
                continue
            x = batch.images.to(device)
            with autocast or contextlib.nullcontext():
                indices = model.encode(x).indices
                recon = model.decode_code(indices)
            restored = to_uint8(recon).double() / 255.0
            target = (x.double() + 1.0) / 2.0
            psnrs.append(psnr(restored, target).cpu())
            ssims.append(ssim(restored, target).cpu())
            for name, idx in indices.items():
                seen[name] = torch.unique(torch.cat([seen[name], idx.reshape(-1)]) if name in seen else idx.reshape(-1))
    finally:
        model.train(was_training)
    size = model.config.codebook_size
    count = int(sum(len(p) for p in psnrs))
    return EvalResult(
        images=count,
        psnr=float(torch.cat(psnrs).mean()) if count else None,
        ssim=float(torch.cat(ssims).mean()) if count else None,
        usage={name: idx.numel() / size for name, idx in seen.items()},
        skipped=skipped,
    )


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fqgan.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="reference-format checkpoint or bare state_dict")
    parser.add_argument("--weights", choices=("model", "ema"), default="model")
    parser.add_argument("--images", required=True, help="folder of images, searched recursively")
    parser.add_argument("--limit", type=int, default=0, help="evaluate at most this many images (0 = all)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    args = parser.parse_args(argv)

    from .checkpoint import CheckpointError, load_checkpoint

    try:
        loaded = load_checkpoint(args.checkpoint, args.weights)
    except CheckpointError as error:
        print(json.dumps({"error": str(error)}))
        return 1
    found = scan_images(args.images)
    paths = found.paths[: args.limit] if args.limit > 0 else found.paths
    if not paths:
        print(json.dumps({"error": f"no images under {args.images}"}))
        return 1
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
                          else "cpu")
    model = loaded.model.to(device)
    result = evaluate(model, eval_loader(paths, loaded.config.image_size, args.batch_size), device)
    result.skipped = found.unreadable + result.skipped
    print(json.dumps({"checkpoint": loaded.path, "weights": loaded.weights, **asdict(result)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
