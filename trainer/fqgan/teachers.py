"""Semantic-distillation teachers: frozen encoders that map an FQGAN image batch to CLS features.

A teacher is loaded from a local path: a Hugging Face model directory (config.json plus
model.safetensors or pytorch_model.bin) or a bare weights file. The plain-torch towers in `vit.py`
read both, whatever is installed: that is the loader the test suite runs. `loader="transformers"`
(the spec's `weights.teacher_loader`) reads a directory through transformers' `from_pretrained`
instead, where that package is installed; a test compares the two where it is.
"""
from __future__ import annotations

import json
import os
from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .vit import ClipVision, DinoV2, ViTConfig
from .weights_io import load_state_dict

# Per-teacher input normalisation; both see 224x224 inputs, as in the reference.
NORMALISATION: Dict[str, Tuple[Tuple[float, float, float], Tuple[float, float, float]]] = {
    "dino": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
}
INPUT_SIZE = 224
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_PREFIXES = ("dinov2.", "model.", "module.")  # wrappers some checkpoints add around the names


class Teacher(nn.Module):
    """images in [-1, 1], [B, 3, H, W] -> CLS features [B, dim] (float32, no gradient)."""

    def __init__(self, kind: str, backbone: Callable[[Tensor], Tensor], dim: int) -> None:
        super().__init__()
        if kind not in NORMALISATION:
            raise ValueError(f"unknown teacher kind {kind!r}")
        self.kind = kind
        self.dim = dim
        self.backbone = backbone
        mean, std = NORMALISATION[kind]
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "Teacher":
        return super().train(False)  # frozen: a parent's .train() must not switch it

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        x = images.float() * 0.5 + 0.5
        # Default (nearest) resampling, as the reference's teachers resize.
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE))
        return self.backbone((x - self.mean) / self.std).float()


LOADERS = ("native", "transformers")


def load_teacher(kind: str, path: str, loader: str = "native") -> Teacher:
    """kind: "dino" or "clip"; loader: "native" (vit.py, any path) or "transformers" (a directory)."""
    if loader not in LOADERS:
        raise ValueError(f"unknown teacher loader {loader!r}; one of {', '.join(LOADERS)}")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{kind} teacher weights not found: {path}")
    if loader == "transformers":
        if not os.path.isdir(path):
            raise ValueError(f"{path}: the transformers loader reads a model directory, not a weights file")
        return _load_with_transformers(kind, path)
    return _load_native(kind, path)


def _load_native(kind: str, path: str) -> Teacher:
    if os.path.isdir(path):
        weights = next((os.path.join(path, n) for n in _WEIGHT_FILES if os.path.isfile(os.path.join(path, n))), None)
        if weights is None:
            raise FileNotFoundError(f"{path}: no {' or '.join(_WEIGHT_FILES)}")
        with open(os.path.join(path, "config.json")) as f:
            hf_config: Optional[dict] = json.load(f)
    else:
        weights, hf_config = path, None
    state = _strip_prefixes(load_state_dict(weights))
    if kind == "clip":
        state = {k: v for k, v in state.items() if k.startswith("vision_model.")}  # drop CLIPModel's text tower
    config = ViTConfig.from_hf(hf_config, kind) if hf_config else _infer_config(kind, state)
    backbone = DinoV2(config) if kind == "dino" else ClipVision(config)
    state = {k: v for k, v in state.items() if not k.endswith("position_ids")}  # a buffer in old CLIP files
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    if missing:
        raise ValueError(f"{path}: not a {kind} checkpoint, missing {', '.join(missing[:4])}")
    return Teacher(kind, backbone, config.hidden_size)


def _strip_prefixes(state: Dict[str, Tensor]) -> Dict[str, Tensor]:
    for prefix in _PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _infer_config(kind: str, state: Dict[str, Tensor]) -> ViTConfig:
    """Shapes give everything but the head count; released DINOv2 and CLIP towers use 64-wide heads."""
    if kind == "dino":
        hidden = state["embeddings.cls_token"].shape[-1]
        layers = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.layer."))
        patch = state["embeddings.patch_embeddings.projection.weight"].shape[-1]
        positions = state["embeddings.position_embeddings"].shape[1] - 1
        intermediate = state["encoder.layer.0.mlp.fc1.weight"].shape[0]
        eps = 1e-6
    else:
        hidden = state["vision_model.embeddings.class_embedding"].shape[-1]
        layers = 1 + max(int(k.split(".")[3]) for k in state if k.startswith("vision_model.encoder.layers."))
        patch = state["vision_model.embeddings.patch_embedding.weight"].shape[-1]
        positions = state["vision_model.embeddings.position_embedding.weight"].shape[0] - 1
        intermediate = state["vision_model.encoder.layers.0.mlp.fc1.weight"].shape[0]
        eps = 1e-5
    side = int(round(positions ** 0.5))
    return ViTConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=max(1, hidden // 64),
                     intermediate_size=intermediate, patch_size=patch, image_size=side * patch, layer_norm_eps=eps)


class _HFCls(nn.Module):
    def __init__(self, model: nn.Module, kind: str) -> None:
        super().__init__()
        self.model = model
        self.kind = kind

    def forward(self, pixels: Tensor) -> Tensor:
        if self.kind == "dino":
            return self.model(pixel_values=pixels).last_hidden_state[:, 0]
        return self.model(pixel_values=pixels, output_hidden_states=True).hidden_states[-1][:, 0]


def _load_with_transformers(kind: str, path: str) -> Teacher:
    import transformers

    cls = transformers.Dinov2Model if kind == "dino" else transformers.CLIPVisionModel
    model = cls.from_pretrained(path)
    return Teacher(kind, _HFCls(model, kind), int(model.config.hidden_size))
