"""ModelConfig, the single source of truth for an FQGAN tokenizer's architecture, and its named presets."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

# Codebook names per variant, in the decoder's concatenation order.
CODEBOOKS: Dict[str, Tuple[str, ...]] = {
    "triple": ("vis", "sem_mid", "sem_high"),
    "dual": ("vis", "sem"),
}

# Semantic-head widths of the released models: they equal the teachers' CLS widths
# (triple: DINOv2-small 384 for sem_mid, CLIP ViT-B/16 768 for sem_high; dual: CLIP ViT-L/14 1024).
DEFAULT_SEMANTIC_HEAD_WIDTHS: Dict[str, Tuple[int, ...]] = {
    "triple": (384, 768),
    "dual": (1024,),
}

GROUP_NORM_GROUPS = 32


@dataclass
class ModelConfig:
    """Every architectural choice of an FQGAN tokenizer. Defaults are the released Triple VQ-16."""

    variant: str = "triple"  # "triple" (vis, sem_mid, sem_high) or "dual" (vis, sem)
    image_size: int = 256  # the adapters' positional embeddings fix the encoder's input size
    ch: int = 128  # base width; every width must be a multiple of 32 (GroupNorm(32))
    ch_mult: Tuple[int, ...] = (1, 1, 2, 2, 4)  # 5 levels: downsample 16; 4 levels: 8
    num_res_blocks: int = 2  # per encoder level; the decoder uses num_res_blocks + 1
    z_channels: int = 256
    dropout: float = 0.0

    codebook_size: int = 16384
    codebook_embed_dim: int = 8
    codebook_l2_norm: bool = True
    codebook_show_usage: bool = True  # keeps the `codebook_used` rolling-window buffer
    usage_window: int = 65536
    commit_loss_beta: float = 0.25
    entropy_loss_ratio: float = 0.0
    entropy_temperature: float = 0.01

    # FactorizedAdapter: one transformer per codebook on the encoder's top feature map.
    # Its width is the encoder's top width, ch * ch_mult[-1] (512 at default sizes).
    adapter_layers: int = 6
    adapter_heads: int = 8
    adapter_mlp_ratio: float = 4.0

    # Semantic feature-prediction heads (the reference's `with_clip_supervision`): one per
    # semantic codebook; widths must equal the teachers' feature widths. None = variant default.
    semantic_heads: bool = True
    semantic_head_widths: Optional[Tuple[int, ...]] = None
    semantic_head_layers: int = 3
    semantic_head_heads: int = 8

    # Weight of the squared-cosine disentanglement loss between codebooks; 0 turns it off.
    disentangle_ratio: float = 0.0

    def __post_init__(self) -> None:
        self.ch_mult = tuple(int(m) for m in self.ch_mult)
        if self.semantic_head_widths is None:
            self.semantic_head_widths = DEFAULT_SEMANTIC_HEAD_WIDTHS.get(self.variant, ())
        self.semantic_head_widths = tuple(int(w) for w in self.semantic_head_widths)
        self.validate()

    def validate(self) -> None:
        if self.variant not in CODEBOOKS:
            raise ValueError(f"variant must be one of {sorted(CODEBOOKS)}, got {self.variant!r}")
        if len(self.ch_mult) < 2:
            raise ValueError(f"ch_mult needs at least 2 levels, got {self.ch_mult}")
        for width in [self.ch * m for m in self.ch_mult]:
            if width % GROUP_NORM_GROUPS:
                raise ValueError(f"every width ch*ch_mult must be a multiple of {GROUP_NORM_GROUPS}, got {width}")
        if self.image_size % self.downsample:
            raise ValueError(f"image_size {self.image_size} is not a multiple of the downsample factor {self.downsample}")
        if self.adapter_width % self.adapter_heads:
            raise ValueError(f"adapter width {self.adapter_width} is not divisible by adapter_heads {self.adapter_heads}")
        if self.semantic_heads:
            expected = len(self.semantic_codebooks)
            if len(self.semantic_head_widths) != expected:
                raise ValueError(f"{self.variant} needs {expected} semantic_head_widths, got {self.semantic_head_widths}")
            for width in self.semantic_head_widths:
                if width % self.semantic_head_heads:
                    raise ValueError(f"semantic head width {width} is not divisible by {self.semantic_head_heads} heads")

    @property
    def codebook_names(self) -> Tuple[str, ...]:
        """Codebook names in the decoder's concatenation order."""
        return CODEBOOKS[self.variant]

    @property
    def semantic_codebooks(self) -> Tuple[str, ...]:
        return tuple(name for name in self.codebook_names if name != "vis")

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)

    @property
    def grid_size(self) -> int:
        return self.image_size // self.downsample

    @property
    def adapter_width(self) -> int:
        return self.ch * self.ch_mult[-1]

    def semantic_head_width(self, codebook: str) -> int:
        return dict(zip(self.semantic_codebooks, self.semantic_head_widths))[codebook]

    def to_dict(self) -> Dict[str, Any]:
        out = dataclasses.asdict(self)
        out["ch_mult"] = list(self.ch_mult)
        out["semantic_head_widths"] = list(self.semantic_head_widths)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig fields: {unknown}")
        return cls(**dict(values))

    def replace(self, **changes: Any) -> "ModelConfig":
        return dataclasses.replace(self, **changes)


def _released(ch_mult: Tuple[int, ...]):
    def build(variant: str) -> ModelConfig:
        return ModelConfig(variant=variant, ch_mult=ch_mult)
    return build


def _tiny(variant: str) -> ModelConfig:
    # The shipped default model: the VQ-16 layout (5 levels, 16x16 grid) and the released codebook
    # shape (16384 x 8) so that clients see realistic token ranges, at widths small enough to keep
    # the model dir (two ONNX files + checkpoint.pt) under 20 MB. Semantic heads are off: their
    # widths are fixed by the teachers (384/768), which alone would be ~90 MB.
    return ModelConfig(
        variant=variant, ch=32, ch_mult=(1, 1, 2, 2, 2), num_res_blocks=1, z_channels=32,
        adapter_layers=1, adapter_heads=4, semantic_heads=False,
    )


def _test(ch_mult: Tuple[int, ...]):
    # Smallest sensible model for unit tests and the ORT parity test; a small codebook keeps the
    # nearest-code margins wide, so float rounding differences between runtimes do not flip tokens.
    def build(variant: str) -> ModelConfig:
        widths = (32, 64) if variant == "triple" else (64,)
        return ModelConfig(
            variant=variant, ch=32, ch_mult=ch_mult, num_res_blocks=1, z_channels=32,
            codebook_size=256, codebook_embed_dim=4, adapter_layers=1, adapter_heads=2,
            semantic_heads=True, semantic_head_widths=widths, semantic_head_layers=1, semantic_head_heads=2,
        )
    return build


PRESETS = {
    "VQ-16": _released((1, 1, 2, 2, 4)),
    "VQ-8": _released((1, 2, 2, 4)),
    "tiny-16": _tiny,
    "test-16": _test((1, 1, 1, 1, 1)),
    "test-8": _test((1, 1, 1, 1)),
}


def preset(name: str, variant: str = "triple", **overrides: Any) -> ModelConfig:
    """A named configuration (`VQ-16`, `VQ-8`, `tiny-16`, `test-16`, `test-8`) for a variant."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    config = PRESETS[name](variant)
    return config.replace(**overrides) if overrides else config
