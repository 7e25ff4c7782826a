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
from torch import Tensor

from .codes import masked_code_vectors, token_margins
from .model import FQGAN
from .precision import cudnn_benchmark, exact_fp32, set_tf32

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
    """TF32 only when asked for; cuDNN autotuning for the serving shapes (see decode_float)."""
    if device.type != "cuda":
        return
    set_tf32(precision == "tf32")
    torch.backends.cudnn.benchmark = True


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
        with torch.no_grad(), exact_fp32(self.device.type):
            # Normalised once, in fp32, as the ONNX export freezes them.
            self.codebooks = {n: model.quantizer(n).codebook().detach().float().contiguous() for n in self.names}
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
        """[B,dim,h,w] pre-quant vectors -> int64 [B,h,w] nearest codes, in fp32 (codes.nearest_codes)."""
        quantizer = self.model.quantizer(name)
        with exact_fp32(self.device.type):
            return quantizer.nearest_indices(quantizer.prepare(z.contiguous()), self.codebooks[name])

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
        indices = {name: grids[name].to(self.device, torch.int64) for name in self.names}
        with exact_fp32(self.device.type):
            vectors = masked_code_vectors(indices, self.codebooks, self.names, mask)
        vectors = {name: self._layout(v) for name, v in vectors.items()}
        # cuDNN tunes once per new input shape: at the model's own grid (one shape per batch size) that
        # pays off; a decode at any other grid size runs untuned rather than tune for a shape seen once.
        native = tuple(indices[self.names[0]].shape[-2:]) == (self.model.config.grid_size,) * 2
        with self._autocast(), cudnn_benchmark(torch.backends.cudnn.benchmark and native):
            return self._decode(vectors).float()

    @torch.no_grad()
    def decode(self, grids: Mapping[str, Tensor], mask: Optional[Sequence[float]] = None) -> Tensor:
        """{name: int [B,h,w]} -> uint8 [B,H,W,3] on the CPU."""
        return to_rgb8(self.decode_float(grids, mask)).cpu()

    @torch.no_grad()
    def margins(self, images: Tensor) -> Dict[str, Tensor]:
        """Per token, best score minus runner-up in exact fp32 (codes.token_margins), on the CPU."""
        margins = token_margins(self.model, images.to(self.device), self.codebooks)
        return {name: m.cpu() for name, m in margins.items()}
