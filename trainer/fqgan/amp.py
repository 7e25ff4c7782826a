"""Device and mixed-precision choices, feature-detected across torch 1.13 and 2.x."""
from __future__ import annotations

import contextlib

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(preference: str) -> torch.device:
    if preference == "cuda" and not torch.cuda.is_available():
        raise ValueError("device.device is 'cuda' but CUDA is not available")
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def resolve_precision(preference: str, device: torch.device) -> str:
    """auto -> bf16 on CUDA that supports it, else fp32. Mixed precision is for CUDA only: CPU
    autocast is incomplete on older torch (GroupNorm fails under bf16 on 1.13) and rarely faster."""
    if preference == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if preference != "fp32" and device.type != "cuda":
        raise ValueError(f"device.precision {preference!r} needs CUDA; use fp32 on CPU")
    return preference


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[precision])


def grad_scaler(device: torch.device, precision: str):
    """Loss scaling for fp16 on CUDA; a pass-through scaler otherwise (one code path for all)."""
    enabled = precision == "fp16" and device.type == "cuda"
    if hasattr(torch, "amp") and hasattr(torch.amp, "GradScaler"):  # torch >= 2.3
        return torch.amp.GradScaler("cuda", enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)
