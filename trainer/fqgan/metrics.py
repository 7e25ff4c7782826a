"""Reconstruction metrics with the reference's conventions (tokenizer/reconstruction_vq_ddp_*.py)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def to_uint8(images: Tensor) -> Tensor:
    """[-1, 1] model output -> uint8 exactly as the reference saves it: clamp(127.5 x + 128), truncate."""
    return torch.clamp(127.5 * images.float() + 128.0, 0, 255).to(torch.uint8)


def psnr(restored: Tensor, target: Tensor) -> Tensor:
    """Per-image PSNR in dB of [B, C, H, W] images in [0, 1] (data range 1)."""
    mse = ((restored.double() - target.double()) ** 2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(1.0 / mse)


def ssim(restored: Tensor, target: Tensor, data_range: float = 2.0, window: int = 7) -> Tensor:
    """Per-image SSIM of [B, C, H, W] images, averaged over channels, as skimage's
    structural_similarity with its defaults (7x7 uniform window, sample covariance). The reference
    calls it with data_range=2.0 on [0, 1] images; that is kept so the numbers are comparable."""
    x, y = restored.double(), target.double()
    channels = x.shape[1]
    kernel = torch.full((channels, 1, window, window), 1.0 / window ** 2, dtype=x.dtype, device=x.device)
    mean = lambda t: F.conv2d(t, kernel, groups=channels)  # noqa: E731 -- valid: skimage crops the borders
    ux, uy = mean(x), mean(y)
    n = window ** 2
    cov_norm = n / (n - 1)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3))
