"""Checks a TrainSpec before any training: field ranges, paths, weights for enabled losses, the data.

Imports no torch, so the service's `--check` call returns in well under a second on small datasets.
"""
from __future__ import annotations

import os
from typing import List, Optional

from ..config import PRESETS, ModelConfig, preset
from ..images import first_decodable, holdout_count, is_inside, scan_images, split_holdout
from .spec import PLACEHOLDER, Problem, TrainSpec, batch_for, field_checks


def model_config_for(spec: TrainSpec) -> ModelConfig:
    """The config a fresh model gets from spec.model (raises ValueError/KeyError/TypeError)."""
    return preset(spec.model.preset, spec.model.variant, **spec.model.overrides)


def check_spec(spec: TrainSpec) -> List[Problem]:
    problems = field_checks(spec)
    if spec.device.device == "cpu" and spec.device.precision in ("bf16", "fp16"):
        problems.append(Problem("device.precision", f"{spec.device.precision!r} needs CUDA; use fp32 on CPU"))
    problems += _check_paths(spec)
    problems += _check_datasets_root(spec)
    problems += _check_weights(spec)
    problems += _check_model(spec)
    if not any(p.field in ("dataset", "eval_dataset", "datasets_root") for p in problems):
        problems += _check_data(spec)
    return problems


def _path_problem(name: str, path: Optional[str], kind: str = "file") -> Optional[Problem]:
    if path is None:
        return None
    if path.startswith(PLACEHOLDER):
        return Problem(name, f"is the placeholder {path!r}; set a real path")
    exists = os.path.isdir(path) if kind == "dir" else os.path.exists(path)
    if not exists:
        return Problem(name, f"{kind} not found: {path}")
    return None


def _check_paths(spec: TrainSpec) -> List[Problem]:
    found = [
        _path_problem("dataset", spec.dataset, "dir"),
        _path_problem("eval_dataset", spec.eval_dataset, "dir"),
        _path_problem("resume", spec.resume),
        None if spec.resume else _path_problem("base_checkpoint", spec.base_checkpoint),
    ]
    out = spec.output_dir
    if out.startswith(PLACEHOLDER):
        found.append(Problem("output_dir", f"is the placeholder {out!r}; set a real path"))
    else:
        # The folder may not exist yet; its nearest existing ancestor must be a writable folder.
        parent = os.path.abspath(out)
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if not (os.path.isdir(parent) and os.access(parent, os.W_OK)):
            found.append(Problem("output_dir", f"cannot be created or written ({parent} is not a writable folder)"))
    return [p for p in found if p]


def _check_datasets_root(spec: TrainSpec) -> List[Problem]:
    """With datasets_root, each dataset must be a folder strictly inside it (not the root itself)."""
    root = spec.datasets_root
    if root is None:
        return []
    if not os.path.isdir(root):
        return [Problem("datasets_root", f"folder not found: {root}")]
    real_root = os.path.realpath(root)
    problems = []
    for name in ("dataset", "eval_dataset"):
        folder = getattr(spec, name)
        if folder is None or not os.path.isdir(folder):
            continue  # reported by _check_paths
        real = os.path.realpath(folder)
        if real == real_root:
            problems.append(Problem(name, "is datasets_root itself; name one folder inside it"))
        elif not is_inside(real, real_root):
            problems.append(Problem(name, "leads outside datasets_root"))
    return problems


def outside_problem(name: str, outside: List[str]) -> Problem:
    """The refusal of a dataset holding links out of datasets_root (named by the link, not its target)."""
    shown = ", ".join(outside[:3]) + (f" and {len(outside) - 3} more" if len(outside) > 3 else "")
    return Problem(name, f"{len(outside)} files or folders lead outside datasets_root through symbolic links: {shown}")


def _check_weights(spec: TrainSpec) -> List[Problem]:
    """An enabled loss needs its weights: refused here, naming the field, never mid-run."""
    hp, w = spec.hyperparameters, spec.weights
    needed = {}
    if hp.perceptual_weight > 0:
        needed["weights.lpips_vgg"] = (w.lpips_vgg, "hyperparameters.perceptual_weight > 0 (LPIPS)")
        needed["weights.lpips_lin"] = (w.lpips_lin, "hyperparameters.perceptual_weight > 0 (LPIPS)")
    if hp.semantic_weight > 0:
        needed["weights.clip"] = (w.clip, "hyperparameters.semantic_weight > 0 (CLIP teacher)")
        # model.variant also describes a base checkpoint (start-up verifies it), so no file is read here.
        if spec.model.variant == "triple":
            needed["weights.dino"] = (w.dino, "hyperparameters.semantic_weight > 0 (DINOv2 teacher)")
    problems = []
    for name, (path, reason) in needed.items():
        if path is None:
            problems.append(Problem(name, f"is required because {reason}; or set that weight to 0"))
        else:
            problem = _path_problem(name, path, "path")
            if problem:
                problems.append(problem)
    return problems


def _check_model(spec: TrainSpec) -> List[Problem]:
    if spec.resume or spec.base_checkpoint:
        return []  # the checkpoint's shapes decide
    if spec.model.preset not in PRESETS:
        return [Problem("model.preset", f"unknown preset {spec.model.preset!r}; known: {', '.join(PRESETS)}")]
    try:
        config = model_config_for(spec)
    except (ValueError, TypeError) as error:
        return [Problem("model.overrides", str(error))]
    size = spec.hyperparameters.image_size
    if size is not None and size != config.image_size:
        return [Problem("hyperparameters.image_size", f"{size} differs from the model's image_size "
                                                      f"{config.image_size}; leave it null to follow the model")]
    return []


def _check_data(spec: TrainSpec) -> List[Problem]:
    hp = spec.hyperparameters
    found = scan_images(spec.dataset, within=spec.datasets_root)
    if found.outside:
        return [outside_problem("dataset", found.outside)]
    if not found.paths:
        return [Problem("dataset", f"no readable images under {spec.dataset} "
                                   f"({len(found.unreadable)} unreadable image files)")]
    if first_decodable(found.paths)[0] is None:
        return [Problem("dataset", f"none of the {len(found.paths)} image files under {spec.dataset} decodes")]
    held = 0 if spec.eval_dataset else holdout_count(len(found.paths), hp.eval_images)
    train, _ = split_holdout(found.paths, held, hp.seed)
    problems = []
    if held and held == len(found.paths):
        return [Problem("hyperparameters.eval_images", f"{hp.eval_images} would hold out all {len(found.paths)} images "
                                                       "of the dataset; leave it null to hold out a tenth")]
    # The world size is the launcher's, unknown here: a null batch_size is checked for one process.
    batch = batch_for(hp.batch_size, len(train), hp.grad_accum)
    if len(train) < batch:
        field = "hyperparameters.batch_size" if hp.batch_size is not None else "dataset"
        problems.append(Problem(field, f"{batch} is more than the {len(train)} training images "
                                       f"({len(found.paths)} found, {held} held out for evaluation)"
                                if hp.batch_size is not None else
                                f"{len(train)} training images ({len(found.paths)} found, {held} held out for "
                                f"evaluation) are fewer than grad_accum {hp.grad_accum}: one image per micro-batch"))
    if spec.eval_dataset:
        eval_found = scan_images(spec.eval_dataset, within=spec.datasets_root)
        if eval_found.outside:
            problems.append(outside_problem("eval_dataset", eval_found.outside))
        elif first_decodable(eval_found.paths)[0] is None:
            problems.append(Problem("eval_dataset", f"no decodable images under {spec.eval_dataset}"))
    return problems
