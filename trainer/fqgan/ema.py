"""Exponential moving average of the generator, kept as a model of its own (the reference's `ema`)."""
from __future__ import annotations

import copy
from typing import Any, Dict

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """ema = decay * ema + (1 - decay) * model for every parameter. Buffers (the codebook usage
        window) are copied, so the EMA model reports current usage; the reference leaves them stale."""
        current = dict(model.named_parameters())
        for name, param in self.model.named_parameters():
            param.mul_(self.decay).add_(current[name].detach(), alpha=1.0 - self.decay)
        buffers = dict(model.named_buffers())
        for name, buffer in self.model.named_buffers():
            buffer.copy_(buffers[name])

    def state_dict(self) -> Dict[str, Any]:
        return self.model.state_dict()

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.model.load_state_dict(state)
