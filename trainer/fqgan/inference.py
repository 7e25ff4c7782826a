"""Serving-time encode and decode of an FQGAN model: what the torch backend's worker runs per batch.

    runner = InferenceModel(model, InferenceSettings(device="cuda", precision="bf16"))
    grids = runner.encode(images)            # float32 [B,3,S,S] in [-1,1] -> {name: int32 [B,h,w]}
    rgb = runner.decode(grids, mask)         # -> uint8 [B,H,W,3], mapped as the service's ONNX path

The convolutional trunk runs in the chosen precision (autocast for bf16/fp16; TF32 allowed or not
for fp32/tf32), channels_last on CUDA. The codebook search (normalisation, dot products, argmax)
and the code lookup always run in fp32 with TF32 off, against the codebooks normalised once, as
the ONNX export freezes them: reduced precision may move the encoder's vectors, never the search.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .model import FQGAN

PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class InferenceSettings:
    device: str = "cpu"
    precision: str = "fp32"
    channels_last: Optional[bool] = None  # None: on for CUDA, off for CPU
    compile: bool = False  # torch.compile the encoder and decoder (torch >= 2 only)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.precision in AUTOCAST_DTYPES and not self.device.startswith("cuda"):
            # CPU autocast is incomplete on torch 1.13 (GroupNorm fails under bf16).
            raise ValueError(f"precision {self.precision!r} needs a CUDA device")


def compile_available() -> bool:
    return hasattr(torch, "compile") and int(torch.__version__.split(".")[0]) >= 2


def configure_matmul(device: torch.device, precision: str) -> None:
    """TF32 only when asked for; cuDNN picks its fastest kernels for the fixed serving shapes."""
    if device.type != "cuda":
        return
    allow_tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    torch.backends.cudnn.allow_tf32 = allow_tf32
    torch.backends.cudnn.benchmark = True


@contextlib.contextmanager
def exact_fp32(device: torch.device):
    """fp32 without TF32 and without autocast, whatever the surrounding mode."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.autocast(device_type="cuda", enabled=False):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def to_rgb8(images: Tensor) -> Tensor:
    """[B,3,H,W] decoder output -> uint8 [B,H,W,3]: floor(127.5*clamp(x,-1,1) + 128), capped at 255.

    Computed in float64 so that every step is exact, as the service's JavaScript mapping
    (tensor-to-image.ts) computes it from the same float32 values: the bytes agree exactly.
    """
    x = images.float().clamp(-1, 1).double()
    return torch.floor(127.5 * x + 128).clamp(max=255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


class InferenceModel:
    """An FQGAN model on one device in one precision, with the serving API (see the module doc)."""

    def __init__(self, model: FQGAN, settings: InferenceSettings) -> None:
        self.settings = settings
        self.device = torch.device(settings.device)
        self.precision = settings.precision
        self.channels_last = settings.channels_last if settings.channels_last is not None else self.device.type == "cuda"
        self.model = model.eval().to(self.device)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.names = list(model.codebook_names)
        configure_matmul(self.device, self.precision)
        with torch.no_grad(), exact_fp32(self.device):
            # Normalised once, in fp32, as the ONNX export freezes them.
            self.codebooks = {n: model.quantizer(n).codebook().detach().float().contiguous() for n in self.names}
        self.l2_norm = model.config.codebook_l2_norm
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self._pre_quant = self.model.pre_quant
        self._decode = self.model.decode
        self.compiled = False
        if settings.compile and compile_available():
            self._pre_quant = torch.compile(self.model.pre_quant)
            self._decode = torch.compile(self.model.decode)
            self.compiled = True

    def _autocast(self):
        if self.precision in AUTOCAST_DTYPES:
            return torch.autocast(device_type=self.device.type, dtype=AUTOCAST_DTYPES[self.precision])
        return contextlib.nullcontext()

    def _layout(self, x: Tensor) -> Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    @torch.no_grad()
    def search(self, name: str, z: Tensor) -> Tensor:
        """[B,dim,h,w] pre-quant vectors -> int64 [B,h,w] nearest codes, in fp32 (the trainer's formula)."""
        with exact_fp32(self.device):
            quantizer = self.model.quantizer(name)
            return quantizer.nearest_indices(quantizer.prepare(z.float().contiguous()), self.codebooks[name])

    @torch.no_grad()
    def pre_quant(self, images: Tensor) -> Dict[str, Tensor]:
        with self._autocast():
            return self._pre_quant(self._layout(images.to(self.device, non_blocking=True)))

    @torch.no_grad()
    def encode(self, images: Tensor) -> Dict[str, Tensor]:
        """float32 [B,3,S,S] in [-1,1] -> {name: int32 [B,h,w]} on the CPU."""
        vectors = self.pre_quant(images)
        return {name: self.search(name, vectors[name]).to(torch.int32).cpu() for name in self.names}

    @torch.no_grad()
    def decode_float(self, grids: Mapping[str, Tensor], mask: Optional[Sequence[float]] = None) -> Tensor:
        """{name: int [B,h,w]} -> float32 [B,3,H,W] (not clamped); mask[i] scales codebook i's vectors."""
        weights = [1.0] * len(self.names) if mask is None else [float(m) for m in mask]
        if len(weights) != len(self.names):
            raise ValueError(f"mask needs {len(self.names)} entries, got {len(weights)}")
        with exact_fp32(self.device):
            vectors = {
                name: F.embedding(grids[name].to(self.device, torch.int64), self.codebooks[name]).permute(0, 3, 1, 2)
                * weights[i]
                for i, name in enumerate(self.names)
            }
        vectors = {name: self._layout(v) for name, v in vectors.items()}
        with self._autocast():
            return self._decode(vectors).float()

    @torch.no_grad()
    def decode(self, grids: Mapping[str, Tensor], mask: Optional[Sequence[float]] = None) -> Tensor:
        """{name: int [B,h,w]} -> uint8 [B,H,W,3] on the CPU."""
        return to_rgb8(self.decode_float(grids, mask)).cpu()

    @torch.no_grad()
    def margins(self, images: Tensor) -> Dict[str, Tensor]:
        """Per token, best score minus runner-up in exact fp32 (how close each choice was to a tie)."""
        with exact_fp32(self.device):
            vectors = self.model.pre_quant(images.to(self.device))
            out = {}
            for name in self.names:
                z = self.model.quantizer(name).prepare(vectors[name].float())
                codebook = self.codebooks[name]
                scores = torch.matmul(z, codebook.t())
                if not self.l2_norm:  # the search's own score for unnormalised codes
                    scores = 2 * scores - torch.sum(codebook ** 2, dim=1)
                top = scores.topk(2, dim=-1).values
                out[name] = (top[..., 0] - top[..., 1]).float().cpu()
            return out
