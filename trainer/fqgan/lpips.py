"""LPIPS (VGG16) perceptual distance, built from two local files: VGG16 features and LPIPS linear layers."""
from __future__ import annotations

import re
from typing import Dict, List, Mapping

import torch
import torch.nn as nn
from torch import Tensor

from .weights_io import load_state_dict

# torchvision's vgg16().features layout up to relu5_3; "M" is a 2x2 max-pool.
_VGG16_LAYOUT = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
_TAPS = (3, 8, 15, 22, 29)  # indices of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 in `features`
CHANNELS = (64, 128, 256, 512, 512)


class VGG16Features(nn.Module):
    """VGG16 conv trunk whose parameter names equal torchvision's (`features.N.weight`)."""

    def __init__(self) -> None:
        super().__init__()
        layers: List[nn.Module] = []
        in_ch = 3
        for item in _VGG16_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_ch, int(item), kernel_size=3, padding=1), nn.ReLU(inplace=False)]
                in_ch = int(item)
        self.features = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> List[Tensor]:
        taps = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in _TAPS:
                taps.append(x)
        return taps


class LPIPS(nn.Module):
    """Learned perceptual distance (Zhang et al. 2018, v0.1, VGG16), frozen. Inputs in [-1, 1].

    Always deterministic: the reference keeps LPIPS' dropout layers, which its `train()` call turns
    on; here the linear layers have no dropout.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.net = VGG16Features()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in CHANNELS)
        self.requires_grad_(False)

    @classmethod
    def from_files(cls, vgg_path: str, lin_path: str) -> "LPIPS":
        model = cls()
        model.load_vgg(load_state_dict(vgg_path), vgg_path)
        model.load_lins(load_state_dict(lin_path), lin_path)
        return model.eval()

    def load_vgg(self, state: Mapping[str, Tensor], source: str = "vgg16 weights") -> None:
        wanted = self.net.state_dict()
        picked = {k: v for k, v in state.items() if k in wanted}
        missing = sorted(set(wanted) - set(picked))
        if missing:
            raise ValueError(f"{source}: not a torchvision vgg16 state_dict (missing {', '.join(missing[:4])} ...)")
        self.net.load_state_dict(picked)

    def load_lins(self, state: Mapping[str, Tensor], source: str = "LPIPS weights") -> None:
        # Accept the LPIPS release's names (`lin0.model.1.weight`, dropout at index 0) and plain ones.
        found: Dict[int, Tensor] = {}
        for key, value in state.items():
            match = re.fullmatch(r"lin(\d)\.(?:model\.\d\.)?weight", key)
            if match:
                found[int(match.group(1))] = value
        if sorted(found) != list(range(len(CHANNELS))):
            raise ValueError(f"{source}: expected LPIPS linear layers lin0..lin4, found {sorted(found)}")
        with torch.no_grad():
            for index, lin in enumerate(self.lins):
                lin.weight.copy_(found[index].reshape(lin.weight.shape))

    def forward(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """Per-sample distance [B]."""
        feats_a = self.net((inputs - self.shift) / self.scale)
        feats_b = self.net((targets - self.shift) / self.scale)
        total = inputs.new_zeros(inputs.shape[0], dtype=torch.float32)
        for lin, a, b in zip(self.lins, feats_a, feats_b):
            diff = (_unit_normalize(a.float()) - _unit_normalize(b.float())) ** 2
            total = total + lin(diff).float().mean(dim=(1, 2, 3))
        return total


def _unit_normalize(x: Tensor, eps: float = 1e-10) -> Tensor:
    return x / (torch.sqrt(torch.sum(x ** 2, dim=1, keepdim=True)) + eps)
