"""The FQGAN tokenizer: a shared conv encoder with one adapter head per codebook, and a conv decoder.

Public API (what the trainer, the exporter and the tests use):

    from fqgan.config import ModelConfig, preset
    from fqgan.model import FQGAN

    model = FQGAN(preset("VQ-16", "triple"))    # or FQGAN(ModelConfig(...))
    model.codebook_names                         # ("vis", "sem_mid", "sem_high") / ("vis", "sem")

    enc = model.encode(x)                        # x: [B, 3, S, S] in [-1, 1], S = config.image_size
    enc.quantized["vis"]                         # [B, dim, h, w] code vectors (straight-through in training)
    enc.indices["vis"]                           # [B, h, w] int64 tokens
    enc.losses["vis"].vq / .commit / .entropy    # weighted codebook losses (scalars); .total()
    enc.usage["vis"]                             # float codebook usage in training (show_usage), else None

    image = model.decode(enc.quantized)          # name -> [B, dim, h, w]  ->  [B, 3, 8h|16h, ...]
    image = model.decode_code(enc.indices)       # tokens -> image
    image = model.decode_code(enc.indices, mask=[1, 0, 0])   # zero whole codebooks (decoder order)

    out = model(x)                               # training forward -> ForwardResult:
    out.reconstruction                           # [B, 3, S, S], not clamped
    out.codebook_losses["sem_mid"]               # QuantizerLosses per codebook; out.codebook_loss() sums all
    out.semantic_tokens                          # {"sem_mid": [B, 384], "sem_high": [B, 768]} class tokens
                                                 #   of the FeatPredHeads, or None without semantic heads
    out.disentangle_loss                         # scalar, already times config.disentangle_ratio (0 if off)
    out.encoded                                  # the EncodeResult (indices, quantized, usage)

    model.last_layer                             # decoder.conv_out.weight, for the adaptive GAN weight
    model.quantizer("vis"), model.quant_conv("vis"), model.semantic_head("sem_mid")

State-dict keys equal the reference's (`encoder.*`, `quantize_<name>.embedding.weight`,
`quantize_<name>.codebook_used`, `quant_conv_<name>.*`, `post_quant_conv.*`, `decoder.*`, and with
semantic heads `mid_sem_feat_pred.*` + `high_sem_feat_pred.*` (triple) or `feat_pred_head.*` (dual)).
forward never logs.
"""
from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .codes import MaskLike, masked_code_vectors
from .config import GROUP_NORM_GROUPS, ModelConfig
from .quantizer import QuantizerLosses, VectorQuantizer

# Module names the reference gives each codebook's parts (they are the checkpoint's key prefixes).
ENCODER_HEAD_NAMES = {
    "vis": "visual_head",
    "sem": "semantic_head",
    "sem_mid": "semantic_head_mid",
    "sem_high": "semantic_head_high",
}
# The reference's module registration orders. `parameters()` follows them, and so does the optimizer
# state in a checkpoint: matching them lets reference code resume our checkpoints (and us theirs)
# without Adam moments landing on another head of the same shape.
ENCODER_HEAD_ORDER = {"triple": ("sem_mid", "sem_high", "vis"), "dual": ("sem", "vis")}
QUANTIZER_ORDER = {"triple": ("vis", "sem_mid", "sem_high"), "dual": ("sem", "vis")}

SEMANTIC_HEAD_NAMES = {
    "sem": "feat_pred_head",
    "sem_mid": "mid_sem_feat_pred",
    "sem_high": "high_sem_feat_pred",
}


def swish(x: Tensor) -> Tensor:
    return x * torch.sigmoid(x)


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(GROUP_NORM_GROUPS, channels, eps=1e-6, affine=True)


# ----------------------------------------------------------------------------- conv parts


class ResnetBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(self.dropout(swish(self.norm2(h))))
        shortcut = x if self.nin_shortcut is None else self.nin_shortcut(x)
        return shortcut + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the h*w positions of a feature map, with a residual."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = group_norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        normed = self.norm(x)
        q = self.q(normed).reshape(b, c, h * w).transpose(1, 2)  # [b, hw, c]
        k = self.k(normed).reshape(b, c, h * w)  # [b, c, hw]
        v = self.v(normed).reshape(b, c, h * w)  # [b, c, hw]
        weights = torch.softmax(torch.bmm(q, k) * (int(c) ** -0.5), dim=2)  # [b, hw_q, hw_k]
        attended = torch.bmm(v, weights.transpose(1, 2)).reshape(b, c, h, w)
        return x + self.proj_out(attended)


class Downsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        # Pad right and bottom only, so a 3x3 stride-2 conv halves even sizes exactly.
        return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0.0))


class Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class _Level(nn.Module):
    """One resolution level: `res` blocks, `attn` blocks (lowest resolution only), an optional resampler."""

    def __init__(self, res: Sequence[nn.Module], attn: Sequence[nn.Module]) -> None:
        super().__init__()
        self.res = nn.ModuleList(res)
        self.attn = nn.ModuleList(attn)

    def run_blocks(self, h: Tensor) -> Tensor:
        for i, block in enumerate(self.res):
            h = block(h)
            if len(self.attn) > 0:
                h = self.attn[i](h)
        return h


def _mid_blocks(channels: int, dropout: float) -> nn.ModuleList:
    return nn.ModuleList([
        ResnetBlock(channels, channels, dropout), AttnBlock(channels), ResnetBlock(channels, channels, dropout)
    ])


# ----------------------------------------------------------------------------- transformer parts


class MultiHeadSelfAttention(nn.Module):
    """Self-attention with nn.MultiheadAttention's parameter names (packed `in_proj_weight`).

    Written out instead of using nn.MultiheadAttention so the ONNX graph is one MatMul for q, k, v
    and plain batched MatMuls on every torch version (no fast-path kernels during export).
    """

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = width // heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: Tensor) -> Tensor:  # [B, L, W] -> [B, L, W]
        b, length, width = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        qkv = qkv.reshape(b, length, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B, heads, L, head_dim]
        q = q * (float(self.head_dim) ** -0.5)  # scale q before the product, as nn.MultiheadAttention does
        weights = torch.softmax(torch.matmul(q, k.transpose(-2, -1)), dim=-1)
        attended = torch.matmul(weights, v).transpose(1, 2).reshape(b, length, width)
        return self.out_proj(attended)


class TransformerBlock(nn.Module):
    """Pre-LayerNorm block: x + attn(ln_1(x)), then x + mlp(ln_2(x)) with exact GELU."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.ln_1 = nn.LayerNorm(width)
        self.attn = MultiHeadSelfAttention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(width, hidden)),
            ("gelu", nn.GELU()),
            ("c_proj", nn.Linear(hidden, width)),
        ]))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class FactorizedAdapter(nn.Module):
    """A transformer over the grid positions that specialises the shared features for one codebook."""

    def __init__(self, width: int, grid_size: int, layers: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.positional_embedding = nn.Parameter(width ** -0.5 * torch.randn(grid_size ** 2, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = nn.ModuleList([TransformerBlock(width, heads, mlp_ratio) for _ in range(layers)])
        self.ln_post = nn.LayerNorm(width)

    def forward(self, x: Tensor) -> Tensor:  # [B, C, h, w] -> [B, C, h, w]
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # [B, h*w, C]
        tokens = self.ln_pre(tokens + self.positional_embedding.to(tokens.dtype))
        for block in self.transformer:
            tokens = block(tokens)
        tokens = self.ln_post(tokens)
        return tokens.transpose(1, 2).reshape(b, c, h, w)


class FeatPredHead(nn.Module):
    """Predicts a teacher's CLS feature from one codebook's quantised grid (semantic supervision)."""

    def __init__(self, in_dim: int, width: int, grid_size: int, layers: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        scale = width ** -0.5
        self.upscale = nn.Sequential(nn.Linear(in_dim, width), nn.ReLU(), nn.Linear(width, width))
        self.class_embedding = nn.Parameter(scale * torch.randn(1, width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid_size ** 2 + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = nn.ModuleList([TransformerBlock(width, heads, mlp_ratio) for _ in range(layers)])
        self.ln_post = nn.LayerNorm(width)

    def forward(self, quantized: Tensor) -> Tensor:  # [B, dim, h, w] -> [B, 1 + h*w, width]
        tokens = self.upscale(quantized.flatten(2).transpose(1, 2))
        cls = self.class_embedding.to(tokens.dtype).unsqueeze(0).expand(tokens.shape[0], -1, -1)
        tokens = torch.cat([cls, tokens], dim=1) + self.positional_embedding.to(tokens.dtype)
        tokens = self.ln_pre(tokens)
        for block in self.transformer:
            tokens = block(tokens)
        return self.ln_post(tokens)


# ----------------------------------------------------------------------------- encoder / decoder


class Encoder(nn.Module):
    """Image -> {codebook name: [B, z_channels, h, w]}: shared trunk, then one head per codebook."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.codebook_names = config.codebook_names
        ch, mult = config.ch, config.ch_mult
        self.conv_in = nn.Conv2d(3, ch, 3, padding=1)

        self.conv_blocks = nn.ModuleList()
        block_in = ch
        last = len(mult) - 1
        for level, m in enumerate(mult):
            block_out = ch * m
            res = [ResnetBlock(block_in if i == 0 else block_out, block_out, config.dropout)
                   for i in range(config.num_res_blocks)]
            attn = [AttnBlock(block_out) for _ in range(config.num_res_blocks)] if level == last else []
            stage = _Level(res, attn)
            if level != last:
                stage.downsample = Downsample(block_out)
            self.conv_blocks.append(stage)
            block_in = block_out
        self.mid = _mid_blocks(block_in, config.dropout)

        for name in ENCODER_HEAD_ORDER[config.variant]:
            adapter = FactorizedAdapter(block_in, config.grid_size, config.adapter_layers,
                                        config.adapter_heads, config.adapter_mlp_ratio)
            self.add_module(ENCODER_HEAD_NAMES[name], nn.ModuleList([adapter]))
        for name in ENCODER_HEAD_ORDER[config.variant]:
            self.add_module(f"norm_out_{name}", group_norm(block_in))
            self.add_module(f"conv_out_{name}", nn.Conv2d(block_in, config.z_channels, 3, padding=1))

    def trunk(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for stage in self.conv_blocks:
            h = stage.run_blocks(h)
            if hasattr(stage, "downsample"):
                h = stage.downsample(h)
        for block in self.mid:
            h = block(h)
        return h

    def head(self, name: str, shared: Tensor) -> Tensor:
        h = shared
        for adapter in getattr(self, ENCODER_HEAD_NAMES[name]):
            h = adapter(h)
        h = swish(getattr(self, f"norm_out_{name}")(h))
        return getattr(self, f"conv_out_{name}")(h)

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        shared = self.trunk(x)
        return {name: self.head(name, shared) for name in self.codebook_names}


class Decoder(nn.Module):
    """[B, z_channels, h, w] -> [B, 3, h*ds, w*ds]. `conv_blocks.0` is the lowest resolution."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        ch, mult = config.ch, config.ch_mult
        block_in = ch * mult[-1]
        self.conv_in = nn.Conv2d(config.z_channels, block_in, 3, padding=1)
        self.mid = _mid_blocks(block_in, config.dropout)

        self.conv_blocks = nn.ModuleList()
        top = len(mult) - 1
        for level in reversed(range(len(mult))):
            block_out = ch * mult[level]
            count = config.num_res_blocks + 1
            res = [ResnetBlock(block_in if i == 0 else block_out, block_out, config.dropout) for i in range(count)]
            attn = [AttnBlock(block_out) for _ in range(count)] if level == top else []
            stage = _Level(res, attn)
            if level != 0:
                stage.upsample = Upsample(block_out)
            self.conv_blocks.append(stage)
            block_in = block_out

        self.norm_out = group_norm(block_in)
        self.conv_out = nn.Conv2d(block_in, 3, 3, padding=1)

    @property
    def last_layer(self) -> Tensor:
        return self.conv_out.weight

    def forward(self, z: Tensor) -> Tensor:
        h = self.conv_in(z)
        for block in self.mid:
            h = block(h)
        for stage in self.conv_blocks:
            h = stage.run_blocks(h)
            if hasattr(stage, "upsample"):
                h = stage.upsample(h)
        return self.conv_out(swish(self.norm_out(h)))


# ----------------------------------------------------------------------------- the model


@dataclass
class EncodeResult:
    quantized: Dict[str, Tensor]  # [B, dim, h, w] per codebook
    indices: Dict[str, Tensor]  # [B, h, w] int64 per codebook
    losses: Dict[str, QuantizerLosses]
    usage: Dict[str, Optional[float]]


@dataclass
class ForwardResult:
    reconstruction: Tensor  # [B, 3, H, W], not clamped
    encoded: EncodeResult
    semantic_tokens: Optional[Dict[str, Tensor]]  # class token [B, width] per semantic codebook
    disentangle_loss: Tensor  # scalar, weighted by config.disentangle_ratio

    @property
    def codebook_losses(self) -> Dict[str, QuantizerLosses]:
        return self.encoded.losses

    def codebook_loss(self) -> Tensor:
        """Sum of vq + commit + entropy over all codebooks."""
        return sum(losses.total() for losses in self.encoded.losses.values())


def disentangle_loss(quantized: Sequence[Tensor]) -> Tensor:
    """Mean squared cosine between codebooks' vectors at the same position, averaged over pairs."""
    pairs = list(itertools.combinations(quantized, 2))
    total = quantized[0].new_zeros(())
    for a, b in pairs:
        cos = torch.sum(F.normalize(a, p=2, dim=1) * F.normalize(b, p=2, dim=1), dim=1)
        total = total + torch.mean(cos ** 2)
    return total / max(len(pairs), 1)


class FQGAN(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        for name in QUANTIZER_ORDER[config.variant]:
            self.add_module(f"quantize_{name}", VectorQuantizer(
                config.codebook_size, config.codebook_embed_dim, config.commit_loss_beta,
                config.entropy_loss_ratio, config.codebook_l2_norm, config.codebook_show_usage,
                config.usage_window, config.entropy_temperature,
            ))
            self.add_module(f"quant_conv_{name}", nn.Conv2d(config.z_channels, config.codebook_embed_dim, 1))
        self.post_quant_conv = nn.Conv2d(config.codebook_embed_dim * len(config.codebook_names), config.z_channels, 1)
        self.decoder = Decoder(config)
        if config.semantic_heads:
            for name in config.semantic_codebooks:
                self.add_module(SEMANTIC_HEAD_NAMES[name], FeatPredHead(
                    config.codebook_embed_dim, config.semantic_head_width(name), config.grid_size,
                    config.semantic_head_layers, config.semantic_head_heads,
                ))

    # -- accessors -------------------------------------------------------------------------

    @property
    def codebook_names(self):
        return self.config.codebook_names

    def quantizer(self, name: str) -> VectorQuantizer:
        return getattr(self, f"quantize_{name}")

    def quant_conv(self, name: str) -> nn.Conv2d:
        return getattr(self, f"quant_conv_{name}")

    def semantic_head(self, name: str) -> Optional[FeatPredHead]:
        return getattr(self, SEMANTIC_HEAD_NAMES[name], None) if name in SEMANTIC_HEAD_NAMES else None

    @property
    def last_layer(self) -> Tensor:
        return self.decoder.last_layer

    # -- encode / decode ---------------------------------------------------------------------

    def pre_quant(self, x: Tensor) -> Dict[str, Tensor]:
        """Image -> {name: [B, dim, h, w]} vectors before quantisation."""
        return {name: self.quant_conv(name)(z) for name, z in self.encoder(x).items()}

    def encode(self, x: Tensor) -> EncodeResult:
        outputs = {name: self.quantizer(name)(z) for name, z in self.pre_quant(x).items()}
        return EncodeResult(
            quantized={name: o.quantized for name, o in outputs.items()},
            indices={name: o.indices for name, o in outputs.items()},
            losses={name: o.losses for name, o in outputs.items()},
            usage={name: o.usage for name, o in outputs.items()},
        )

    def decode(self, quantized: Mapping[str, Tensor]) -> Tensor:
        """{name: [B, dim, h, w]} -> image; concatenated in the decoder order of codebook_names."""
        missing = [name for name in self.codebook_names if name not in quantized]
        if missing:
            raise KeyError(f"decode needs every codebook {list(self.codebook_names)}; missing {missing}")
        stacked = torch.cat([quantized[name] for name in self.codebook_names], dim=1)
        return self.decoder(self.post_quant_conv(stacked))

    def decode_code(self, indices: Mapping[str, Tensor], mask: Optional[MaskLike] = None) -> Tensor:
        """{name: [B, h, w] int64} -> image. mask[i] (decoder order) scales codebook i's vectors;
        0 replaces them by zeros (partial decoding), 1 keeps them."""
        codebooks = {name: self.quantizer(name).codebook() for name in self.codebook_names}
        return self.decode(masked_code_vectors(indices, codebooks, self.codebook_names, mask))

    # -- training forward ----------------------------------------------------------------------

    def forward(self, x: Tensor) -> ForwardResult:
        encoded = self.encode(x)
        quantized = [encoded.quantized[name] for name in self.codebook_names]

        semantic_tokens = None
        if self.config.semantic_heads:
            semantic_tokens = {name: self.semantic_head(name)(encoded.quantized[name])[:, 0]
                               for name in self.config.semantic_codebooks}

        if self.config.disentangle_ratio > 0:
            disentangle = self.config.disentangle_ratio * disentangle_loss(quantized)
        else:
            disentangle = x.new_zeros(())

        return ForwardResult(
            reconstruction=self.decode(encoded.quantized),
            encoded=encoded,
            semantic_tokens=semantic_tokens,
            disentangle_loss=disentangle,
        )

