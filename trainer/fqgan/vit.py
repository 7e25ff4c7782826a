"""DINOv2 and CLIP vision transformers in plain torch, with Hugging Face parameter names, so the
teachers' released weights load without the transformers package. Both return the CLS feature the
reference distils: DINOv2's final-LayerNorm CLS, and CLIP's last-layer CLS before post_layernorm."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


@dataclass
class ViTConfig:
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    patch_size: int
    image_size: int  # the size the position embeddings were trained for
    layer_norm_eps: float

    @classmethod
    def from_hf(cls, config: Mapping[str, Any], kind: str) -> "ViTConfig":
        """From a Hugging Face config.json (a CLIPModel's nests the vision part in `vision_config`)."""
        c = dict(config.get("vision_config") or config)
        if c.get("use_swiglu_ffn"):
            raise ValueError("DINOv2 with a SwiGLU MLP (giant) is not supported")
        hidden = int(c["hidden_size"])
        intermediate = c.get("intermediate_size") or int(hidden * float(c.get("mlp_ratio", 4)))
        return cls(
            hidden_size=hidden, num_hidden_layers=int(c["num_hidden_layers"]),
            num_attention_heads=int(c["num_attention_heads"]), intermediate_size=int(intermediate),
            patch_size=int(c["patch_size"]), image_size=int(c.get("image_size", 518 if kind == "dino" else 224)),
            layer_norm_eps=float(c.get("layer_norm_eps", 1e-6 if kind == "dino" else 1e-5)),
        )

    def to_hf(self, kind: str) -> Dict[str, Any]:
        out: Dict[str, Any] = dict(self.__dict__)
        out["model_type"] = "dinov2" if kind == "dino" else "clip_vision_model"
        out["hidden_act"] = "gelu" if kind == "dino" else "quick_gelu"
        if kind == "dino":
            out["mlp_ratio"] = self.intermediate_size / self.hidden_size
            del out["intermediate_size"]
        return out


def _attend(x: Tensor, q: nn.Linear, k: nn.Linear, v: nn.Linear, heads: int) -> Tensor:
    b, n, d = x.shape
    split = lambda t: t.reshape(b, n, heads, d // heads).transpose(1, 2)  # noqa: E731
    qh, kh, vh = split(q(x)), split(k(x)), split(v(x))
    weights = torch.softmax(qh @ kh.transpose(-1, -2) / math.sqrt(d // heads), dim=-1)
    return (weights @ vh).transpose(1, 2).reshape(b, n, d)


class _Mlp(nn.Module):
    def __init__(self, d: int, hidden: int, quick_gelu: bool) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d, hidden)
        self.fc2 = nn.Linear(hidden, d)
        self.quick_gelu = quick_gelu

    def forward(self, x: Tensor) -> Tensor:
        x = self.fc1(x)
        x = x * torch.sigmoid(1.702 * x) if self.quick_gelu else F.gelu(x)
        return self.fc2(x)


# --- DINOv2 (Dinov2Model names) ---------------------------------------------------------------

class _DinoSelfAttention(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)


class _DinoOutput(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.dense = nn.Linear(d, d)


class _DinoAttention(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.attention = _DinoSelfAttention(d)
        self.output = _DinoOutput(d)


class _LayerScale(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.lambda1 = nn.Parameter(torch.ones(d))


class _DinoLayer(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        d = cfg.hidden_size
        self.heads = cfg.num_attention_heads
        self.norm1 = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.attention = _DinoAttention(d)
        self.layer_scale1 = _LayerScale(d)
        self.norm2 = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.mlp = _Mlp(d, cfg.intermediate_size, quick_gelu=False)
        self.layer_scale2 = _LayerScale(d)

    def forward(self, x: Tensor) -> Tensor:
        a = self.attention
        h = _attend(self.norm1(x), a.attention.query, a.attention.key, a.attention.value, self.heads)
        x = x + a.output.dense(h) * self.layer_scale1.lambda1
        return x + self.mlp(self.norm2(x)) * self.layer_scale2.lambda1


class _DinoPatches(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.projection = nn.Conv2d(3, cfg.hidden_size, cfg.patch_size, stride=cfg.patch_size)


class _DinoEmbeddings(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        grid = cfg.image_size // cfg.patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.hidden_size))
        self.mask_token = nn.Parameter(torch.zeros(1, cfg.hidden_size))  # unused; kept so weights load strictly
        self.position_embeddings = nn.Parameter(torch.zeros(1, grid * grid + 1, cfg.hidden_size))
        self.patch_embeddings = _DinoPatches(cfg)

    def forward(self, pixels: Tensor) -> Tensor:
        patches = self.patch_embeddings.projection(pixels)
        gh, gw = patches.shape[-2:]
        x = torch.cat([self.cls_token.expand(pixels.shape[0], -1, -1), patches.flatten(2).transpose(1, 2)], dim=1)
        return x + self._positions(gh, gw)

    def _positions(self, gh: int, gw: int) -> Tensor:
        pos = self.position_embeddings
        n = pos.shape[1] - 1
        if n == gh * gw and gh == gw:
            return pos
        side = int(math.sqrt(n))
        grid = pos[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2).float()
        # As transformers' Dinov2 (2024): bicubic with scale factors nudged by 0.1 to land on the grid.
        grid = F.interpolate(grid, scale_factor=((gh + 0.1) / side, (gw + 0.1) / side), mode="bicubic",
                             align_corners=False).to(pos.dtype)
        return torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, gh * gw, -1)], dim=1)


class _DinoEncoder(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_DinoLayer(cfg) for _ in range(cfg.num_hidden_layers))


class DinoV2(nn.Module):
    """Dinov2Model; forward(normalised pixels) -> CLS of last_hidden_state, [B, hidden]."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.config = cfg
        self.embeddings = _DinoEmbeddings(cfg)
        self.encoder = _DinoEncoder(cfg)
        self.layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, pixels: Tensor) -> Tensor:
        x = self.embeddings(pixels)
        for layer in self.encoder.layer:
            x = layer(x)
        return self.layernorm(x)[:, 0]


# --- CLIP vision tower (CLIPVisionModel names) ------------------------------------------------

class _ClipAttention(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))


class _ClipLayer(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        d = cfg.hidden_size
        self.heads = cfg.num_attention_heads
        self.self_attn = _ClipAttention(d)
        self.layer_norm1 = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.mlp = _Mlp(d, cfg.intermediate_size, quick_gelu=True)
        self.layer_norm2 = nn.LayerNorm(d, eps=cfg.layer_norm_eps)

    def forward(self, x: Tensor) -> Tensor:
        s = self.self_attn
        x = x + s.out_proj(_attend(self.layer_norm1(x), s.q_proj, s.k_proj, s.v_proj, self.heads))
        return x + self.mlp(self.layer_norm2(x))


class _ClipEmbeddings(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        grid = cfg.image_size // cfg.patch_size
        self.class_embedding = nn.Parameter(torch.zeros(cfg.hidden_size))
        self.patch_embedding = nn.Conv2d(3, cfg.hidden_size, cfg.patch_size, stride=cfg.patch_size, bias=False)
        self.position_embedding = nn.Embedding(grid * grid + 1, cfg.hidden_size)

    def forward(self, pixels: Tensor) -> Tensor:
        patches = self.patch_embedding(pixels).flatten(2).transpose(1, 2)
        if patches.shape[1] + 1 != self.position_embedding.num_embeddings:
            expected = self.position_embedding.num_embeddings - 1
            raise ValueError(f"CLIP expects {expected} patches, got {patches.shape[1]}")
        cls = self.class_embedding.expand(pixels.shape[0], 1, -1)
        return torch.cat([cls, patches], dim=1) + self.position_embedding.weight[None]


class _ClipEncoder(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_ClipLayer(cfg) for _ in range(cfg.num_hidden_layers))


class _ClipVisionTransformer(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.embeddings = _ClipEmbeddings(cfg)
        self.pre_layrnorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)  # sic: HF's name
        self.encoder = _ClipEncoder(cfg)
        self.post_layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)  # unused by the CLS target


class ClipVision(nn.Module):
    """CLIPVisionModel; forward(normalised pixels) -> CLS of hidden_states[-1], [B, hidden]."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.config = cfg
        self.vision_model = _ClipVisionTransformer(cfg)

    def forward(self, pixels: Tensor) -> Tensor:
        vm = self.vision_model
        x = vm.pre_layrnorm(vm.embeddings(pixels))
        for layer in vm.encoder.layers:
            x = layer(x)
        return x[:, 0]
