"""PatchGAN and StyleGAN discriminators, parameter-compatible with the reference's state_dicts."""
from __future__ import annotations

import math
from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class PatchGANDiscriminator(nn.Module):
    """Pix2Pix PatchGAN (taming-transformers' NLayerDiscriminator): one logit per overlapping patch."""

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: List[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1  # the last of these keeps the resolution
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=False),  # BatchNorm has the bias
                nn.BatchNorm2d(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.main = nn.Sequential(*layers)
        self.apply(_patchgan_init)

    def forward(self, x: Tensor) -> Tensor:
        return self.main(x)


def _patchgan_init(module: nn.Module) -> None:
    if isinstance(module, nn.Conv2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Blur(nn.Module):
    """[1 2 1] x [1 2 1] / 16 depthwise blur with reflect padding (kornia filter2d's defaults)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("f", torch.tensor([1.0, 2.0, 1.0]))

    def forward(self, x: Tensor) -> Tensor:
        kernel = self.f[None, :] * self.f[:, None]
        kernel = (kernel / kernel.sum()).to(x.dtype)
        channels = x.shape[1]
        weight = kernel.expand(channels, 1, 3, 3)
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), weight, groups=channels)


class StyleGANBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv_res = nn.Conv2d(in_channels, out_channels, 1, stride=2)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.LeakyReLU(0.2, True),
        )
        self.downsample = nn.Sequential(Blur(), nn.Conv2d(out_channels, out_channels, 3, padding=1, stride=2))

    def forward(self, x: Tensor) -> Tensor:
        return (self.downsample(self.net(x)) + self.conv_res(x)) * (1 / math.sqrt(2))


_STYLEGAN_CHANNELS = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}


class StyleGANDiscriminator(nn.Module):
    """StyleGAN2-style residual discriminator (MaskGIT's variant): one logit per image."""

    def __init__(self, in_channels: int = 3, image_size: int = 256, channel_multiplier: int = 1) -> None:
        super().__init__()
        if image_size not in _STYLEGAN_CHANNELS or image_size < 8:
            raise ValueError(f"StyleGAN discriminator needs a power-of-two image size in [8, 1024], got {image_size}")
        channels = {size: c * channel_multiplier if size >= 64 else c for size, c in _STYLEGAN_CHANNELS.items()}
        in_ch = channels[image_size]
        blocks: List[nn.Module] = [nn.Conv2d(in_channels, in_ch, 3, padding=1), nn.LeakyReLU(0.2, True)]
        size = image_size
        while size > 4:
            size //= 2
            blocks.append(StyleGANBlock(in_ch, channels[size]))
            in_ch = channels[size]
        self.blocks = nn.ModuleList(blocks)
        self.final_conv = nn.Sequential(nn.Conv2d(in_ch, channels[4], 3, padding=1), nn.LeakyReLU(0.2, True))
        self.final_linear = nn.Sequential(
            nn.Linear(channels[4] * 4 * 4, channels[4]), nn.LeakyReLU(0.2, True), nn.Linear(channels[4], 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        x = self.final_conv(x)
        return self.final_linear(x.reshape(x.shape[0], -1))


def build_discriminator(kind: str, image_size: int, ndf: int = 64, n_layers: int = 3) -> nn.Module:
    if kind == "patchgan":
        return PatchGANDiscriminator(ndf=ndf, n_layers=n_layers)
    if kind == "stylegan":
        return StyleGANDiscriminator(image_size=image_size)
    raise ValueError(f"unknown discriminator type {kind!r}")
