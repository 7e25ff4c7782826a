"""The codebook search, the near-tie margin and the masked code lookup: one definition of each, used by
training (quantizer.py), evaluation, the ONNX export (export.py) and the torch backend (inference.py).

The search always runs in float32 with TF32 and autocast off: reduced precision may move the encoder's
vectors, never the choice among codes, so training, evaluation, ONNX and the torch backend all make
the choice the same way.
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .precision import exact_fp32

MaskLike = Union[Tensor, Sequence[float]]


def search_scores(z: Tensor, codebook: Tensor, l2_norm: bool) -> Tensor:
    """[..., dim] vectors (prepared: unit length when l2_norm) x [size, dim] codes -> [..., size] float32
    scores; the nearest code has the highest score.

    With unit vectors the nearest code by Euclidean distance is the one with the largest dot product.
    Scoring on the dot product alone avoids adding ||z||^2 + ||e||^2 (~2) to a number near 0, which
    would throw away float32 precision. Unnormalised codes: argmin ||z - e||^2 = argmax (2 z.e - ||e||^2).
    """
    with exact_fp32(z.device.type):
        z, codebook = z.float(), codebook.float()
        scores = torch.matmul(z, codebook.t())
        if not l2_norm:
            scores = 2 * scores - torch.sum(codebook ** 2, dim=1)
        return scores


def nearest_codes(z: Tensor, codebook: Tensor, l2_norm: bool) -> Tensor:
    """[..., dim] -> [...] int64 index of the nearest code; the first index wins a tie."""
    return torch.argmax(search_scores(z, codebook, l2_norm), dim=-1)


def code_margins(z: Tensor, codebook: Tensor, l2_norm: bool) -> Tensor:
    """[..., dim] -> [...] float32: the best code's score minus the runner-up's.

    Two runtimes compute the encoder with float32 rounding differences of ~1e-5; a token whose margin
    is below that is a tie at float precision, and either runtime may pick either code.
    """
    top = search_scores(z, codebook, l2_norm).topk(2, dim=-1).values
    return top[..., 0] - top[..., 1]


def lookup_codes(indices: Tensor, codebook: Tensor) -> Tensor:
    """[B, h, w] indices -> [B, dim, h, w] code vectors (the decoder's input)."""
    return F.embedding(indices, codebook).permute(0, 3, 1, 2)


def masked_code_vectors(indices: Mapping[str, Tensor], codebooks: Mapping[str, Tensor], names: Sequence[str],
                        mask: Optional[MaskLike] = None) -> Dict[str, Tensor]:
    """{name: [B, h, w]} -> {name: [B, dim, h, w]}; mask[i] (in `names` order) scales codebook i's vectors:
    0 replaces them by zeros (partial decoding), 1 keeps them."""
    vectors = {name: lookup_codes(indices[name], codebooks[name]) for name in names}
    if mask is None:
        return vectors
    weights = torch.as_tensor(mask, dtype=torch.float32)
    if weights.shape != (len(names),):
        raise ValueError(f"mask needs {len(names)} entries, got shape {tuple(weights.shape)}")
    return {name: v * weights[i].to(v) for i, (name, v) in enumerate(vectors.items())}


@torch.no_grad()
def token_margins(model: "torch.nn.Module", images: Tensor,
                  codebooks: Optional[Mapping[str, Tensor]] = None) -> Dict[str, Tensor]:
    """{name: [B, h, w]} margins (code_margins) of an FQGAN's tokens for `images`, the encoder included
    in exact float32: what a near-tie is, for every agreement check."""
    with exact_fp32(images.device.type):
        margins = {}
        for name, z in model.pre_quant(images.float()).items():
            quantizer = model.quantizer(name)
            codebook = quantizer.codebook() if codebooks is None else codebooks[name]
            margins[name] = code_margins(quantizer.prepare(z), codebook, quantizer.l2_norm)
        return margins
