"""The reference FQGAN state-dict layout (showlab/FQGAN vq_model_{triple,dual}.py), written out
independently of fqgan.model from the reference's naming rules, as {key: shape}."""
from typing import Dict, Sequence, Tuple

Shapes = Dict[str, Tuple[int, ...]]

CODEBOOKS = {"triple": ("vis", "sem_mid", "sem_high"), "dual": ("vis", "sem")}
ADAPTERS = {"triple": ("semantic_head_mid", "semantic_head_high", "visual_head"),
            "dual": ("semantic_head", "visual_head")}
# (module name, width) of the FeatPredHeads; the reference hard-codes these widths.
FEAT_HEADS = {"triple": (("mid_sem_feat_pred", 384), ("high_sem_feat_pred", 768)),
              "dual": (("feat_pred_head", 1024),)}


def _conv(p: str, cin: int, cout: int, k: int) -> Shapes:
    return {f"{p}.weight": (cout, cin, k, k), f"{p}.bias": (cout,)}


def _norm(p: str, c: int) -> Shapes:
    return {f"{p}.weight": (c,), f"{p}.bias": (c,)}


def _linear(p: str, cin: int, cout: int) -> Shapes:
    return {f"{p}.weight": (cout, cin), f"{p}.bias": (cout,)}


def _resnet(p: str, cin: int, cout: int) -> Shapes:
    out = {**_norm(f"{p}.norm1", cin), **_conv(f"{p}.conv1", cin, cout, 3),
           **_norm(f"{p}.norm2", cout), **_conv(f"{p}.conv2", cout, cout, 3)}
    if cin != cout:
        out.update(_conv(f"{p}.nin_shortcut", cin, cout, 1))
    return out


def _attn(p: str, c: int) -> Shapes:
    out = _norm(f"{p}.norm", c)
    for name in ("q", "k", "v", "proj_out"):
        out.update(_conv(f"{p}.{name}", c, c, 1))
    return out


def _transformer_block(p: str, w: int) -> Shapes:  # ResidualAttentionBlock with nn.MultiheadAttention
    return {**_norm(f"{p}.ln_1", w), f"{p}.attn.in_proj_weight": (3 * w, w), f"{p}.attn.in_proj_bias": (3 * w,),
            **_linear(f"{p}.attn.out_proj", w, w), **_norm(f"{p}.ln_2", w),
            **_linear(f"{p}.mlp.c_fc", w, 4 * w), **_linear(f"{p}.mlp.c_proj", 4 * w, w)}


def _stack(p: str, w: int, layers: int) -> Shapes:
    out = {**_norm(f"{p}.ln_pre", w), **_norm(f"{p}.ln_post", w)}
    for i in range(layers):
        out.update(_transformer_block(f"{p}.transformer.{i}", w))
    return out


def reference_shapes(variant: str, ch_mult: Sequence[int], ch: int = 128, num_res_blocks: int = 2,
                     z_channels: int = 256, codebook_size: int = 16384, dim: int = 8,
                     semantic: bool = True) -> Shapes:
    levels = len(ch_mult)
    grid = 256 // 2 ** (levels - 1)
    top = ch * ch_mult[-1]
    out: Shapes = {}

    # Encoder: conv_in, levels (attn at the last one, downsample on all but the last), mid, heads.
    out.update(_conv("encoder.conv_in", 3, ch, 3))
    in_mult = (1,) + tuple(ch_mult)
    for i in range(levels):
        block_in, block_out = ch * in_mult[i], ch * ch_mult[i]
        for j in range(num_res_blocks):
            out.update(_resnet(f"encoder.conv_blocks.{i}.res.{j}", block_in, block_out))
            block_in = block_out
            if i == levels - 1:
                out.update(_attn(f"encoder.conv_blocks.{i}.attn.{j}", block_out))
        if i != levels - 1:
            out.update(_conv(f"encoder.conv_blocks.{i}.downsample.conv", block_out, block_out, 3))
    out.update(_resnet("encoder.mid.0", top, top))
    out.update(_attn("encoder.mid.1", top))
    out.update(_resnet("encoder.mid.2", top, top))
    for adapter in ADAPTERS[variant]:
        out[f"encoder.{adapter}.0.positional_embedding"] = (grid * grid, 512)
        out.update(_stack(f"encoder.{adapter}.0", 512, 6))
    for name in CODEBOOKS[variant]:
        out.update(_norm(f"encoder.norm_out_{name}", top))
        out.update(_conv(f"encoder.conv_out_{name}", top, z_channels, 3))

    # Quantizers and 1x1 convs.
    for name in CODEBOOKS[variant]:
        out[f"quantize_{name}.embedding.weight"] = (codebook_size, dim)
        out[f"quantize_{name}.codebook_used"] = (65536,)
        out.update(_conv(f"quant_conv_{name}", z_channels, dim, 1))
    out.update(_conv("post_quant_conv", dim * len(CODEBOOKS[variant]), z_channels, 1))

    # Decoder: conv_in, mid, levels from the lowest resolution (num_res_blocks + 1 each), out.
    block_in = top
    out.update(_conv("decoder.conv_in", z_channels, block_in, 3))
    out.update(_resnet("decoder.mid.0", top, top))
    out.update(_attn("decoder.mid.1", top))
    out.update(_resnet("decoder.mid.2", top, top))
    for j, level in enumerate(reversed(range(levels))):
        block_out = ch * ch_mult[level]
        for r in range(num_res_blocks + 1):
            out.update(_resnet(f"decoder.conv_blocks.{j}.res.{r}", block_in, block_out))
            block_in = block_out
            if level == levels - 1:
                out.update(_attn(f"decoder.conv_blocks.{j}.attn.{r}", block_out))
        if level != 0:
            out.update(_conv(f"decoder.conv_blocks.{j}.upsample.conv", block_out, block_out, 3))
    out.update(_norm("decoder.norm_out", block_in))
    out.update(_conv("decoder.conv_out", block_in, 3, 3))

    # Semantic feature-prediction heads exist only with supervision (how the releases were trained).
    if semantic:
        for head, width in FEAT_HEADS[variant]:
            out.update(_linear(f"{head}.upscale.0", dim, width))
            out.update(_linear(f"{head}.upscale.2", width, width))
            out[f"{head}.class_embedding"] = (1, width)
            out[f"{head}.positional_embedding"] = (grid * grid + 1, width)
            out.update(_stack(head, width, 3))
    return out
