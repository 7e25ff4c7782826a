"""TrainSpec: the fine-tuning job's spec.json as dataclasses, the single source of truth for the trainer CLI.

Importing this module does not import torch, so `python -m fqgan.train --check` stays fast.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional

PLACEHOLDER = "/path/to/"  # --example-spec paths start with this; --check refuses them


@dataclass(frozen=True)
class Problem:
    """One reason a spec is refused: the dotted field it is about and what is wrong."""

    field: str
    message: str


class SpecError(ValueError):
    def __init__(self, problems: List[Problem]):
        self.problems = problems
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))


# Range checks attached to fields; each returns an error message or None. `limits` says the same as
# data (JSON Schema words), for forms that show a field's range before anything is sent.
def _with_limits(**limits: Any) -> Callable[[Callable[[Any], Optional[str]]], Callable[[Any], Optional[str]]]:
    def attach(check: Callable[[Any], Optional[str]]) -> Callable[[Any], Optional[str]]:
        check.limits = limits  # type: ignore[attr-defined]
        return check
    return attach


@_with_limits(exclusiveMinimum=0)
def _positive(v: Any) -> Optional[str]:
    return None if v > 0 else "must be > 0"


@_with_limits(minimum=0)
def _non_negative(v: Any) -> Optional[str]:
    return None if v >= 0 else "must be >= 0"


@_with_limits(minimum=0, exclusiveMaximum=1)
def _unit_open(v: Any) -> Optional[str]:
    return None if 0 <= v < 1 else "must be in [0, 1)"


def _one_of(*choices: str) -> Callable[[Any], Optional[str]]:
    @_with_limits(enum=list(choices))
    def check(v: Any) -> Optional[str]:
        return None if v in choices else f"must be one of {', '.join(repr(c) for c in choices)}"
    return check


def _spec(default: Any, help: str, check: Optional[Callable[[Any], Optional[str]]] = None, **kw: Any) -> Any:
    return field(default=default, metadata={"help": help, "check": check}, **kw)


@dataclass
class ModelSpec:
    """The architecture of a fresh model; with a checkpoint its shapes decide and only `variant` is checked."""

    preset: str = _spec("VQ-16", "fqgan.config preset name (VQ-16, VQ-8, tiny-16, test-16, test-8)")
    variant: str = _spec("triple", "codebook layout; with a base checkpoint or resume it must be the checkpoint's",
                         _one_of("triple", "dual"))
    overrides: Dict[str, Any] = field(default_factory=dict, metadata={
        "help": "ModelConfig fields to change on the preset, e.g. {\"image_size\": 64}", "check": None})


# The batch of a spec that leaves batch_size null, when the dataset has this many training images.
DEFAULT_BATCH = 16


def batch_for(batch_size: Optional[int], training_images: int, divisor: int = 1) -> int:
    """The global batch: batch_size when set; else DEFAULT_BATCH, or fewer on a small dataset, as a
    multiple of `divisor` (world_size * grad_accum) and at least one multiple."""
    if batch_size is not None:
        return batch_size
    return max(divisor, min(DEFAULT_BATCH, training_images) // divisor * divisor)


@dataclass
class Hyperparameters:
    steps: int = _spec(10000, "optimizer steps to run (a resumed run continues up to this total)", _positive)
    batch_size: Optional[int] = _spec(
        None, "global batch per optimizer step: world_size * grad_accum * per-process batch; null = "
              f"{DEFAULT_BATCH}, or the training images when there are fewer (rounded down to a multiple of "
              "world_size * grad_accum)", _positive)
    grad_accum: int = _spec(1, "micro-batches accumulated per optimizer step", _positive)
    lr: float = _spec(1e-4, "Adam learning rate of generator and discriminator", _positive)
    beta1: float = _spec(0.9, "Adam beta1", _unit_open)
    beta2: float = _spec(0.95, "Adam beta2", _unit_open)
    weight_decay: float = _spec(
        0.0, "Adam (L2) weight decay; the reference's flag is parsed but unused, so 0", _non_negative)
    grad_clip: float = _spec(1.0, "max global grad norm for each optimizer; 0 disables", _non_negative)
    ema: bool = _spec(False, "keep an exponential moving average of the generator (exported when on)")
    ema_decay: float = _spec(0.9999, "EMA decay per optimizer step", _unit_open)
    rec_loss: str = _spec("l2", "pixel reconstruction loss", _one_of("l1", "l2"))
    rec_weight: float = _spec(1.0, "weight of the reconstruction loss", _non_negative)
    perceptual_weight: float = _spec(
        1.0, "weight of LPIPS(VGG16); > 0 needs weights.lpips_vgg and weights.lpips_lin", _non_negative)
    disc_type: str = _spec("patchgan", "discriminator architecture", _one_of("patchgan", "stylegan"))
    disc_loss: str = _spec("hinge", "discriminator loss", _one_of("hinge", "vanilla", "non-saturating"))
    gen_loss: str = _spec("hinge", "generator adversarial loss", _one_of("hinge", "non-saturating"))
    disc_weight: float = _spec(0.5, "weight of both adversarial losses once step >= disc_start", _non_negative)
    disc_start: int = _spec(
        20000, "first step (1-based) with adversarial losses; before it the discriminator is idle", _non_negative)
    disc_dim: int = _spec(64, "PatchGAN base width (ndf)", _positive)
    disc_layers: int = _spec(3, "PatchGAN strided layers", _positive)
    adaptive_weight: bool = _spec(False, "scale the generator adversarial loss by the VQGAN adaptive weight")
    codebook_weight: float = _spec(
        1.0, "weight of every codebook's vq + commit + entropy losses (the reference adds them with 1)", _non_negative)
    commit_loss_beta: float = _spec(0.25, "commitment loss beta of every quantizer", _non_negative)
    entropy_loss_ratio: float = _spec(
        0.0, "entropy loss ratio of every quantizer (reference recipe: 0.03)", _non_negative)
    semantic_weight: float = _spec(
        0.5, "weight of each InfoNCE distillation loss; > 0 needs teacher weights", _non_negative)
    disentangle_ratio: float = _spec(
        0.1, "weight of the squared-cosine disentanglement loss; 0 disables", _non_negative)
    image_size: Optional[int] = _spec(None, "training crop size; null = the model's image_size (must match it)")
    seed: int = _spec(0, "seed of model init, data order and augmentation", _non_negative)
    checkpoint_every: int = _spec(
        1000, "save a checkpoint every N steps; 0 = only at the end and on SIGTERM", _non_negative)
    keep_checkpoints: int = _spec(
        2, "newest step checkpoints kept in output_dir/checkpoints; 0 keeps all", _non_negative)
    eval_every: int = _spec(
        1000, "evaluate on the held-out images every N steps (and at the end); 0 = only at the end", _non_negative)
    eval_images: Optional[int] = _spec(
        None, "images held out from `dataset` for evaluation when eval_dataset is null (null = a tenth of the "
              "dataset, 1 to 16); the most evaluation images otherwise (null = all); 0 disables eval",
        _non_negative)
    log_every: int = _spec(10, "emit a progress event every N steps", _positive)


@dataclass
class Weights:
    """Local weight files; the trainer never downloads."""

    lpips_vgg: Optional[str] = _spec(None, "torchvision-format vgg16 state_dict (features.N.weight/bias)")
    lpips_lin: Optional[str] = _spec(None, "LPIPS v0.1 linear layers (lin0..lin4), e.g. the LPIPS vgg.pth")
    dino: Optional[str] = _spec(
        None, "DINOv2-small: a Hugging Face model directory (config.json + weights) or weights file")
    clip: Optional[str] = _spec(
        None, "CLIP vision tower (ViT-B/16 triple, ViT-L/14 dual): a Hugging Face directory or weights file")
    teacher_loader: str = _spec(
        "native", "how teacher weights are read: native (plain torch, tested everywhere) or transformers "
                  "(from_pretrained of a directory; needs the transformers package)", _one_of("native", "transformers"))


@dataclass
class DeviceSpec:
    device: str = _spec("auto", "auto = cuda when available", _one_of("auto", "cpu", "cuda"))
    precision: str = _spec(
        "auto", "autocast dtype; auto = bf16 on CUDA with bf16 support, else fp32; fp16 uses loss scaling",
                           _one_of("auto", "fp32", "bf16", "fp16"))
    num_workers: int = _spec(4, "DataLoader worker processes per training process", _non_negative)
    dist_timeout_s: float = _spec(
        600.0, "distributed runs: seconds the rendezvous or any collective may wait for the other ranks before "
        "the run fails (long enough for rank 0's evaluation and export, which the others wait for)", _positive)


@dataclass
class TrainSpec:
    dataset: str = _spec(
        PLACEHOLDER + "images", "folder of training images, searched recursively (ImageFolder-style or flat)")
    output_dir: str = _spec(
        PLACEHOLDER + "job", "checkpoints go to output_dir/checkpoints, the servable model to output_dir/model")
    datasets_root: Optional[str] = _spec(
        None, "when set, dataset and eval_dataset must be folders inside it, and no file whose real path "
              "(symlinks resolved) leaves it is read; null = no such limit")
    eval_dataset: Optional[str] = _spec(
        None, "folder of evaluation images; null = hold out hyperparameters.eval_images from dataset")
    base_checkpoint: Optional[str] = _spec(
        None, "weights to start from (reference-format dict or bare state_dict); null = fresh init from `model`")
    base_weights: str = _spec("model", "which weights of base_checkpoint to start from", _one_of("model", "ema"))
    resume: Optional[str] = _spec(
        None, "a checkpoint of this trainer to continue (steps, optimizers, EMA); overrides base_checkpoint")
    stop_deadline_s: float = _spec(
        8.0, "seconds from SIGTERM/SIGINT to exit: the step in flight ends and a checkpoint is saved; "
             "past this the kernel ends the trainer (SIGALRM) without one", _positive)
    model: ModelSpec = field(default_factory=ModelSpec,
                             metadata={"help": "architecture of a fresh model", "check": None})
    hyperparameters: Hyperparameters = field(default_factory=Hyperparameters, metadata={"help": "", "check": None})
    weights: Weights = field(default_factory=Weights, metadata={"help": "", "check": None})
    device: DeviceSpec = field(default_factory=DeviceSpec, metadata={"help": "", "check": None})

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainSpec":
        """Parse JSON values; unknown fields, wrong types and out-of-range values raise SpecError
        naming every bad field (a field with the wrong type is range-checked at its default)."""
        problems: List[Problem] = []
        spec = _parse(cls, values, "", problems)
        if problems:
            reported = {p.field for p in problems}
            raise SpecError(problems + [p for p in field_checks(spec) if p.field not in reported])
        return spec

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def example(cls) -> "TrainSpec":
        """Every default filled in, with placeholder paths for what a user must provide."""
        spec = cls()
        spec.weights = Weights(
            lpips_vgg=PLACEHOLDER + "vgg16.pth", lpips_lin=PLACEHOLDER + "lpips_vgg_v0.1.pth",
            dino=PLACEHOLDER + "dinov2-small", clip=PLACEHOLDER + "clip-vit-base-patch16",
        )
        return spec


def field_checks(spec: TrainSpec) -> List[Problem]:
    """Range checks declared on the fields (no file system access)."""
    problems: List[Problem] = []

    def walk(obj: Any, prefix: str) -> None:
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            name = prefix + f.name
            if dataclasses.is_dataclass(value):
                walk(value, name + ".")
                continue
            check = f.metadata.get("check")
            message = check(value) if (check and value is not None) else None
            if message:
                problems.append(Problem(name, f"{message} (got {value!r})"))

    walk(spec, "")
    return problems



def _parse(cls: type, values: Any, prefix: str, problems: List[Problem]) -> Any:
    where = prefix.rstrip(".") or "spec"
    if not isinstance(values, Mapping):
        problems.append(Problem(where, f"must be an object, got {type(values).__name__}"))
        return cls()
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for unknown in sorted(set(values) - names):
        problems.append(Problem(prefix + unknown, "unknown field"))
    kwargs: Dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        name = prefix + f.name
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            kwargs[f.name] = _parse(kind, values[f.name], name + ".", problems)
            continue
        converted = _convert(kind, values[f.name])
        if isinstance(converted, _Bad):
            problems.append(Problem(name, converted.message))
        else:
            kwargs[f.name] = converted
    return cls(**kwargs)


@dataclass
class _Bad:
    message: str


def _convert(kind: Any, value: Any) -> Any:
    """Check a JSON value against a field's type hint (int, float, bool, str, dict, Optional[...])."""
    args = typing.get_args(kind)
    if typing.get_origin(kind) is typing.Union and type(None) in args:
        if value is None:
            return None
        kind = next(a for a in args if a is not type(None))
    if kind is bool:
        return value if isinstance(value, bool) else _Bad(f"must be true or false, got {value!r}")
    if kind is int:
        # JSON has one number type: accept 3.0 for 3, refuse 3.5 and booleans.
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            return _Bad(f"must be an integer, got {value!r}")
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return _Bad(f"must be a finite number, got {value!r}")
        return float(value)
    if kind is str:
        return value if isinstance(value, str) and value else _Bad(f"must be a non-empty string, got {value!r}")
    if typing.get_origin(kind) in (dict, Dict):
        return dict(value) if isinstance(value, Mapping) else _Bad(f"must be an object, got {value!r}")
    raise TypeError(f"unsupported field type {kind!r}")
