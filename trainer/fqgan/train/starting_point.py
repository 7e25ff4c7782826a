"""What a TrainSpec starts from: the generator (fresh, fine-tuned from a checkpoint, or resumed), the
discriminator's saved state, and the frozen helpers (LPIPS, teachers). Every failure is a SpecError
naming the spec field to fix."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional

import torch
from torch import nn

from ..checkpoint import CheckpointError, check_state_dict, file_sha256, infer_config, read_checkpoint, select_state_dict
from ..config import CODEBOOKS, ModelConfig
from ..events import warn
from ..lpips import LPIPS
from ..model import FQGAN, SEMANTIC_HEAD_NAMES
from ..objective import TEACHER_FOR_CODEBOOK
from ..teachers import Teacher, load_teacher
from .spec import Problem, SpecError, TrainSpec
from .validate import model_config_for

_TRAINING_KEYS = {"optimizer", "optimizer_disc", "discriminator", "steps"}


@dataclass
class StartingPoint:
    model: FQGAN  # on CPU
    discriminator_state: Optional[Mapping[str, Any]]
    resume_state: Optional[Mapping[str, Any]]  # the whole trainer checkpoint when resuming
    source: Dict[str, Any]  # provenance for the exported manifest


def _refuse(field: str, message: str) -> SpecError:
    return SpecError([Problem(field, message)])


def apply_training_fields(config: ModelConfig, spec: TrainSpec, teachers: Mapping[str, Teacher],
                          fresh: bool) -> ModelConfig:
    """The spec's loss settings that live in the model config. Semantic heads that start from scratch
    (a fresh model, or a checkpoint trained without them) are made as wide as their teachers."""
    hp = spec.hyperparameters
    changes: Dict[str, Any] = dict(commit_loss_beta=hp.commit_loss_beta, entropy_loss_ratio=hp.entropy_loss_ratio,
                                   disentangle_ratio=hp.disentangle_ratio)
    if teachers and (fresh or not config.semantic_heads):
        changes.update(semantic_heads=True, semantic_head_widths=tuple(
            teachers[TEACHER_FOR_CODEBOOK[name]].dim for name in config.semantic_codebooks))
    return config.replace(**changes)


def load_starting_point(spec: TrainSpec, teachers: Mapping[str, Teacher]) -> StartingPoint:
    path = spec.resume or spec.base_checkpoint
    if path is None:
        model = FQGAN(apply_training_fields(model_config_for(spec), spec, teachers, fresh=True))
        source = {"kind": "finetune", "base": None, "preset": spec.model.preset, "seed": spec.hyperparameters.seed}
        return StartingPoint(model, None, None, source)

    field = "resume" if spec.resume else "base_checkpoint"
    weights = "model" if spec.resume else spec.base_weights
    try:
        obj = read_checkpoint(path)
        state = select_state_dict(obj, weights)
        stored = obj.get("config") if isinstance(obj.get("config"), Mapping) else None
        inferred = infer_config(state, stored)
    except CheckpointError as error:
        raise _refuse(field, str(error)) from None
    if spec.resume and not _TRAINING_KEYS <= set(obj):
        raise _refuse("resume", "not a training checkpoint (it lacks optimizer, discriminator or steps); "
                                "to start from plain weights use base_checkpoint")
    if inferred.variant != spec.model.variant:
        raise _refuse("model.variant", f"the checkpoint is a {inferred.variant} model, the spec says "
                                       f"{spec.model.variant}")

    config = apply_training_fields(inferred, spec, teachers, fresh=False)
    model = FQGAN(config)
    try:
        if config.semantic_heads and not inferred.semantic_heads:
            # Semantic supervision on a checkpoint trained without it: new heads, everything else loaded.
            missing, unexpected = model.load_state_dict(state, strict=False)
            if unexpected or not all(_is_head_key(k) for k in missing):
                check_state_dict(model.state_dict(), state)
            warn("the checkpoint has no semantic heads; they start from a fresh init")
        else:
            check_state_dict(model.state_dict(), state)
            model.load_state_dict(state)
    except CheckpointError as error:
        raise _refuse(field, str(error)) from None

    source = {"kind": "finetune", "base": os.path.abspath(path), "base_sha256": file_sha256(path),
              "weights": weights, "seed": spec.hyperparameters.seed}
    if spec.resume and isinstance(obj.get("trainer"), Mapping):
        source = dict(obj["trainer"].get("source") or source)  # keep the original base's provenance
    return StartingPoint(model, obj.get("discriminator"), obj if spec.resume else None, source)


def _is_head_key(key: str) -> bool:
    return any(key.startswith(prefix + ".") for prefix in SEMANTIC_HEAD_NAMES.values())


def load_discriminator(discriminator: nn.Module, state: Mapping[str, Any], disc_type: str, from_resume: bool) -> None:
    """A resumed run needs its discriminator back; a base checkpoint's is a bonus when it fits."""
    try:
        discriminator.load_state_dict(state)
    except RuntimeError as error:
        reason = str(error).splitlines()[0]
        if from_resume:
            raise _refuse("hyperparameters.disc_type", f"the resumed checkpoint's discriminator does not fit a "
                                                       f"{disc_type} discriminator: {reason}") from None
        warn(f"the base checkpoint's discriminator does not fit ({reason}); it starts fresh")


def load_lpips(spec: TrainSpec, device: torch.device) -> Optional[LPIPS]:
    if spec.hyperparameters.perceptual_weight <= 0:
        return None
    w = spec.weights
    try:
        return LPIPS.from_files(w.lpips_vgg, w.lpips_lin).to(device)
    except (OSError, ValueError, RuntimeError) as error:
        field = "weights.lpips_lin" if str(w.lpips_lin) in str(error) else "weights.lpips_vgg"
        raise _refuse(field, str(error)) from None


def load_teachers(spec: TrainSpec, device: torch.device) -> Dict[str, Teacher]:
    """The teachers of spec.model.variant's semantic codebooks; a checkpoint's variant is checked
    against the spec's when it is read."""
    if spec.hyperparameters.semantic_weight <= 0:
        return {}
    teachers: Dict[str, Teacher] = {}
    for codebook in CODEBOOKS[spec.model.variant]:
        kind = TEACHER_FOR_CODEBOOK.get(codebook)
        if kind is None or kind in teachers:
            continue
        path = getattr(spec.weights, kind)
        if path is None:
            raise _refuse(f"weights.{kind}", f"is required for the {codebook} codebook's distillation")
        try:
            teachers[kind] = load_teacher(kind, path, spec.weights.teacher_loader).to(device)
        except (OSError, ValueError, KeyError, RuntimeError, ImportError) as error:
            raise _refuse(f"weights.{kind}", f"cannot load the {kind} teacher: {error}") from None
    return teachers


def check_teacher_widths(config: ModelConfig, teachers: Mapping[str, Teacher]) -> None:
    for codebook in config.semantic_codebooks if teachers else ():
        kind = TEACHER_FOR_CODEBOOK[codebook]
        width, dim = config.semantic_head_width(codebook), teachers[kind].dim
        if width != dim:
            raise _refuse(f"weights.{kind}", f"the {kind} teacher's features are {dim} wide; the model's "
                                             f"{codebook} head predicts {width}")
