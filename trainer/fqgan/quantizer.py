"""Vector quantizer: one codebook's nearest-code search (codes.py), VQ losses, straight-through, usage window."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .codes import lookup_codes, nearest_codes
from .precision import exact_fp32


@dataclass
class QuantizerLosses:
    """The three codebook losses of one quantizer, each already weighted (beta, entropy ratio)."""

    vq: Tensor
    commit: Tensor
    entropy: Tensor

    def total(self) -> Tensor:
        return self.vq + self.commit + self.entropy


@dataclass
class QuantizerOutput:
    quantized: Tensor  # [B, dim, h, w]; straight-through: forward value z_q, gradient flows to z
    indices: Tensor  # [B, h, w] int64
    losses: QuantizerLosses
    usage: Optional[float]  # distinct codes in the usage window / codebook size; training only


def entropy_loss(affinity: Tensor, temperature: float) -> Tensor:
    """Mean per-sample entropy minus the entropy of the mean of softmax(affinity / temperature).

    Low when each vector is confidently assigned and the batch spreads over many codes.
    """
    logits = affinity.reshape(-1, affinity.shape[-1]) / temperature
    probs = F.softmax(logits, dim=-1)
    log_probs = F.log_softmax(logits, dim=-1)
    mean_probs = probs.mean(dim=0)
    entropy_of_mean = -torch.sum(mean_probs * torch.log(mean_probs + 1e-5))
    mean_entropy = -torch.mean(torch.sum(probs * log_probs, dim=-1))
    return mean_entropy - entropy_of_mean


class VectorQuantizer(nn.Module):
    """One codebook. State-dict keys: `embedding.weight` [size, dim], `codebook_used` [window]."""

    def __init__(
        self,
        codebook_size: int,
        dim: int,
        commit_beta: float = 0.25,
        entropy_ratio: float = 0.0,
        l2_norm: bool = True,
        show_usage: bool = True,
        usage_window: int = 65536,
        entropy_temperature: float = 0.01,
    ) -> None:
        super().__init__()
        self.codebook_size = codebook_size
        self.dim = dim
        self.commit_beta = commit_beta
        self.entropy_ratio = entropy_ratio
        self.entropy_temperature = entropy_temperature
        self.l2_norm = l2_norm
        self.show_usage = show_usage

        self.embedding = nn.Embedding(codebook_size, dim)
        with torch.no_grad():
            self.embedding.weight.uniform_(-1.0 / codebook_size, 1.0 / codebook_size)
            if l2_norm:
                self.embedding.weight.copy_(F.normalize(self.embedding.weight, p=2, dim=-1))
        if show_usage:
            # float32 like the reference (it registers a Parameter's data as the buffer), so
            # released checkpoints load without a dtype cast.
            self.register_buffer("codebook_used", torch.zeros(usage_window))

    def codebook(self) -> Tensor:
        """The vectors tokens stand for: the rows of `embedding.weight`, L2-normalised when l2_norm."""
        weight = self.embedding.weight
        return F.normalize(weight, p=2, dim=-1) if self.l2_norm else weight

    def prepare(self, z: Tensor) -> Tensor:
        """[B, dim, h, w] encoder output -> [B, h, w, dim] float32 vectors in the space the search runs in."""
        z = z.float().permute(0, 2, 3, 1)
        return F.normalize(z, p=2, dim=-1) if self.l2_norm else z

    def nearest_indices(self, z: Tensor, codebook: Optional[Tensor] = None) -> Tensor:
        """[..., dim] prepared vectors -> [...] int64 index of the nearest code (codes.nearest_codes)."""
        return nearest_codes(z, self.codebook() if codebook is None else codebook, self.l2_norm)

    def lookup(self, indices: Tensor) -> Tensor:
        """[B, h, w] indices -> [B, dim, h, w] code vectors (the decoder's input)."""
        return lookup_codes(indices, self.codebook())

    def forward(self, z: Tensor) -> QuantizerOutput:
        # The search, the code vectors and the codebook losses in float32 whatever the autocast mode:
        # the tokens are those the exported model and the torch backend choose (codes.py).
        with exact_fp32(z.device.type):
            z = self.prepare(z)
            codebook = self.codebook().float()
            indices = nearest_codes(z, codebook, self.l2_norm)
            z_q = F.embedding(indices, codebook)

            usage = self._record_usage(indices) if (self.show_usage and self.training) else None

            vq = torch.mean((z_q - z.detach()) ** 2)
            commit = self.commit_beta * torch.mean((z_q.detach() - z) ** 2)
            if self.entropy_ratio > 0:
                squared_distance = (
                    torch.sum(z ** 2, dim=-1, keepdim=True)
                    + torch.sum(codebook ** 2, dim=1)
                    - 2 * torch.matmul(z, codebook.t())
                )
                entropy = self.entropy_ratio * entropy_loss(-squared_distance, self.entropy_temperature)
            else:
                entropy = z.new_zeros(())

            z_q = z + (z_q - z).detach()
        return QuantizerOutput(
            quantized=z_q.permute(0, 3, 1, 2),
            indices=indices,
            losses=QuantizerLosses(vq=vq, commit=commit, entropy=entropy),
            usage=usage,
        )

    @torch.no_grad()
    def _record_usage(self, indices: Tensor) -> float:
        """Push indices into the rolling window (oldest drop out first) and return codebook usage."""
        window = self.codebook_used
        latest = indices.reshape(-1)[-window.numel():].to(window.dtype)
        count = latest.numel()
        if count < window.numel():
            window[:-count] = window[count:].clone()
        window[-count:] = latest
        return torch.unique(window).numel() / self.codebook_size
