"""Teacher towers for tests and benchmarks: a tiny randomly initialised tower of the real
architecture, and a writer of Hugging Face-style directories that `fqgan.teachers` loads."""
from __future__ import annotations

import json
import os

import torch
import torch.nn as nn

from fqgan.teachers import INPUT_SIZE
from fqgan.vit import ClipVision, DinoV2, ViTConfig
from fqgan.weights_io import save_safetensors


def tiny_backbone(kind: str, dim: int, seed: int = 0) -> nn.Module:
    """A randomly initialised two-layer tower of the real architecture, for tests and benchmarks."""
    patch = 14 if kind == "dino" else 16
    # 64-wide heads, as the released towers and as _infer_config assumes for bare weight files.
    # DINOv2 gets a small position grid so that interpolation is exercised; CLIP has none, so 224.
    config = ViTConfig(hidden_size=dim, num_hidden_layers=2, num_attention_heads=max(1, dim // 64),
                       intermediate_size=2 * dim, patch_size=patch,
                       image_size=patch * 4 if kind == "dino" else INPUT_SIZE,
                       layer_norm_eps=1e-6 if kind == "dino" else 1e-5)
    generator = torch.Generator().manual_seed(seed)
    backbone = DinoV2(config) if kind == "dino" else ClipVision(config)
    with torch.no_grad():
        for p in backbone.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.2)
    return backbone


def save_pretrained(backbone: nn.Module, kind: str, folder: str) -> None:
    """Write a tower as a Hugging Face-style directory (config.json + model.safetensors)."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(backbone.config.to_hf(kind), f, indent=2)
    save_safetensors(backbone.state_dict(), os.path.join(folder, "model.safetensors"))
