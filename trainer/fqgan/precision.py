"""TF32, autocast and cuDNN autotuning switches: the one place that sets them, on torch 1.13 and 2.x.

torch >= 2.9 has a new TF32 API (`torch.backends.cuda.matmul.fp32_precision`,
`torch.backends.cudnn.conv.fp32_precision`); it warns on the legacy `allow_tf32` flags and refuses to
read them once the new API was used. Where the new API exists only it is touched, else only the legacy
flags, so the two never mix in one process.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Tuple

import torch


def _has_new_tf32_api() -> bool:
    try:
        # torch 1.13's backend modules raise AssertionError, not AttributeError, for unknown names.
        return (isinstance(torch.backends.cuda.matmul.fp32_precision, str)
                and isinstance(torch.backends.cudnn.conv.fp32_precision, str))
    except Exception:
        return False


NEW_TF32_API = _has_new_tf32_api()


def tf32_state() -> Tuple[object, object]:
    """(matmul, conv) as the API in use spells them: booleans (legacy) or "tf32"/"ieee"/"none"."""
    if NEW_TF32_API:
        return torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


def restore_tf32(state: Tuple[object, object]) -> None:
    if NEW_TF32_API:
        torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = state
    else:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = state


def set_tf32(enabled: bool) -> None:
    """TF32 for CUDA matmuls and cuDNN convolutions, on or off together."""
    if NEW_TF32_API:
        restore_tf32(("tf32", "tf32") if enabled else ("ieee", "ieee"))
    else:
        restore_tf32((enabled, enabled))


def tf32_enabled() -> Tuple[bool, bool]:
    """Whether CUDA matmuls and cuDNN convolutions may use TF32 now."""
    matmul, conv = tf32_state()
    if NEW_TF32_API:
        return matmul == "tf32", conv == "tf32"
    return bool(matmul), bool(conv)


@contextlib.contextmanager
def exact_fp32(device_type: str) -> Iterator[None]:
    """float32 without TF32 and without autocast for `device_type`, whatever the surrounding mode.

    What runs inside still sees the caller's dtypes: cast inputs with `.float()` where they may be
    reduced-precision tensors made outside.
    """
    saved = tf32_state()
    set_tf32(False)
    # torch.autocast knows cuda and cpu (and xpu); elsewhere there is no autocast to leave.
    autocast = (torch.autocast(device_type=device_type, enabled=False) if device_type in ("cuda", "cpu")
                else contextlib.nullcontext())
    try:
        with autocast:
            yield
    finally:
        restore_tf32(saved)


@contextlib.contextmanager
def cudnn_benchmark(enabled: bool) -> Iterator[None]:
    """cuDNN autotuning on or off for a block (it tunes once per new input shape, then caches)."""
    saved = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = saved
