"""Sample reconstructions at an evaluation: a small PNG grid (inputs above, reconstructions below) in the job folder.

The service lists `output_dir/samples/step-NNNNNN.png` and the console shows them, so a run's
reconstructions can be watched getting sharper. The grid is written before the `eval` event goes
out: whoever reads that event finds the file.
"""
from __future__ import annotations

import contextlib
import os
from typing import List, Optional, Sequence

import torch
from PIL import Image

from .data import eval_loader
from .metrics import to_uint8
from .model import FQGAN

SAMPLES_DIR = "samples"
MAX_SAMPLES = 8  # columns: enough to judge, small enough to cost nothing next to the evaluation
GAP = 2  # pixels of background between cells


def sample_file(output_dir: str, step: int) -> str:
    return os.path.join(output_dir, SAMPLES_DIR, f"step-{step:06d}.png")


@torch.no_grad()
def reconstruct(model: FQGAN, images: torch.Tensor, device: torch.device,
                autocast: Optional[contextlib.AbstractContextManager] = None) -> torch.Tensor:
    """uint8 [B, 3, S, S] reconstructions through the tokens (encode, then decode the codes), as evaluation does."""
    was_training = model.training
    model.eval()
    try:
        with autocast or contextlib.nullcontext():
            recon = model.decode_code(model.encode(images.to(device)).indices)
    finally:
        model.train(was_training)
    return to_uint8(recon).cpu()


def grid_image(inputs: torch.Tensor, recons: torch.Tensor) -> Image.Image:
    """Two rows of B cells: inputs ([-1, 1] floats) on top, reconstructions (uint8) below."""
    count, _, size, _ = inputs.shape
    top = to_uint8(inputs.cpu())
    width = count * size + (count + 1) * GAP
    height = 2 * size + 3 * GAP
    canvas = torch.full((3, height, width), 24, dtype=torch.uint8)  # dark grey between cells
    for i in range(count):
        x = GAP + i * (size + GAP)
        canvas[:, GAP:GAP + size, x:x + size] = top[i]
        canvas[:, 2 * GAP + size:2 * GAP + 2 * size, x:x + size] = recons[i]
    return Image.fromarray(canvas.permute(1, 2, 0).contiguous().numpy())


def write_sample_grid(model: FQGAN, paths: Sequence[str], image_size: int, output_dir: str, step: int,
                      device: torch.device, autocast: Optional[contextlib.AbstractContextManager] = None) -> Optional[str]:
    """Reconstructs the first MAX_SAMPLES readable evaluation images and writes their grid; returns its path
    (None when no image decoded). Written to a temporary name and renamed: a reader never sees half a PNG."""
    batches: List[torch.Tensor] = []
    for batch in eval_loader(list(paths[:MAX_SAMPLES]), image_size, MAX_SAMPLES):
        if batch.images.numel():
            batches.append(batch.images)
    if not batches:
        return None
    inputs = torch.cat(batches)
    image = grid_image(inputs, reconstruct(model, inputs, device, autocast))
    path = sample_file(output_dir, step)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = path + ".partial"
    image.save(partial, format="PNG")
    os.replace(partial, path)
    return path
