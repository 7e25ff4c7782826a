"""Checkpoint loading: safe unpickling, state-dict selection, config inference from shapes, strict checks.

    loaded = load_checkpoint("fqgan_triple_ds16.pt", weights="model")   # -> LoadedCheckpoint
    loaded.model, loaded.config, loaded.sha256

Every failure is a CheckpointError whose message is one paragraph naming the problem.
"""
from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import math
import os
import pickle
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional

import torch
from torch import Tensor

from .config import CODEBOOKS, ModelConfig
from .model import ENCODER_HEAD_NAMES, FQGAN, SEMANTIC_HEAD_NAMES

WEIGHTS_CHOICES = ("model", "ema")
# Wrappers that prefix every key: DistributedDataParallel and torch.compile.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# Fields a state dict's shapes cannot tell; taken from a stored "config" when the file has one.
NON_SHAPE_FIELDS = ("adapter_heads", "semantic_head_heads", "dropout", "commit_loss_beta", "entropy_loss_ratio",
                    "entropy_temperature", "disentangle_ratio", "codebook_l2_norm")


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message says why in one paragraph."""


@dataclass
class LoadedCheckpoint:
    model: FQGAN  # in eval mode, on CPU
    config: ModelConfig
    weights: str  # "model" or "ema"
    path: str
    sha256: str


# ----------------------------------------------------------------------------- reading the file


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sniff(head: bytes, path: str) -> Optional[str]:
    """Name what a file that is clearly not a torch checkpoint is, or None if it might be one."""
    if not head:
        return "the file is empty"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"\x80"):
        return None  # zip (torch >= 1.6) or legacy pickle
    for magic, kind in ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
                        (b"RIFF", "a RIFF (WebP/WAV) file"), (b"\x1f\x8b", "a gzip archive")):
        if head.startswith(magic):
            return f"the file is {kind}"
    if path.endswith(".onnx"):
        return "the file is an ONNX model; export reads PyTorch checkpoints"
    if len(head) > 8 and head[8:9] == b"{" and path.endswith(".safetensors"):
        return "the file is a safetensors file; convert it with torch.save({'model': state_dict}, path)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "\x00" not in text:
        return "the file is text"
    return None


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only builds tensors, plain containers and argparse.Namespace.

    Released FQGAN checkpoints store the training `args` Namespace next to the weights, and
    optimizer states hold floats; torch 1.13's weights_only loader refuses both (no BINFLOAT
    opcode). Only find_class can bring callables into a pickle, so allowing just torch's own
    tensor-rebuild list plus that one harmless class keeps the load free of arbitrary code.
    """

    def find_class(self, module: str, name: str) -> Any:
        allowed = _allowed_globals()
        qualified = f"{module}.{name}"
        if qualified in allowed:
            return allowed[qualified]
        raise pickle.UnpicklingError(f"refusing to load global {qualified}")


def _allowed_globals() -> Dict[str, Any]:
    allowed: Dict[str, Any] = {"argparse.Namespace": argparse.Namespace}
    try:
        from torch import _weights_only_unpickler  # the list torch itself trusts, when present

        allowed.update(_weights_only_unpickler._get_allowed_globals())
    except (ImportError, AttributeError):
        import collections

        allowed.update({"collections.OrderedDict": collections.OrderedDict,
                        "torch._utils._rebuild_tensor_v2": torch._utils._rebuild_tensor_v2,
                        "torch._utils._rebuild_parameter": torch._utils._rebuild_parameter,
                        "torch.Size": torch.Size})
    return allowed


class _RestrictedPickleModule:
    """What torch's zip loader expects of `pickle_module`, backed by the restricted unpickler."""

    Unpickler = _RestrictedUnpickler
    load = staticmethod(lambda f, **kw: _RestrictedUnpickler(f, **kw).load())
    __name__ = "fqgan_restricted_pickle"


def _supports_weights_only() -> bool:
    return "weights_only" in inspect.signature(torch.load).parameters


def _load_weights_only(path: str) -> Any:
    if hasattr(torch.serialization, "safe_globals"):  # torch >= 2.5: allow the args Namespace too
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    return torch.load(path, map_location="cpu", weights_only=True)


def _load_restricted(path: str, head: bytes) -> Any:
    """Load a zip checkpoint through torch's own reader with the restricted unpickler.

    torch.load cannot be used for this: torch 1.13 silently replaces any pickle_module by the
    stock pickle when weights_only is False. Its zip reader helpers take the module as given.
    """
    serialization = torch.serialization
    if not head.startswith(b"PK") or not all(hasattr(serialization, f) for f in ("_load", "_open_zipfile_reader")):
        raise pickle.UnpicklingError("not a zip-format checkpoint that can be read without full unpickling")
    with open(path, "rb") as f, serialization._open_zipfile_reader(f) as archive:
        return serialization._load(archive, "cpu", _RestrictedPickleModule, encoding="utf-8")


def read_checkpoint(path: str) -> Any:
    """torch.load `path` to CPU without running code from the file; CheckpointError if unreadable."""
    if not os.path.exists(path):
        raise CheckpointError(f"Checkpoint {path!r} does not exist.")
    if os.path.isdir(path):
        raise CheckpointError(f"Checkpoint {path!r} is a directory, not a file.")
    with open(path, "rb") as f:
        head = f.read(512)
    not_a_checkpoint = _sniff(head, path)
    if not_a_checkpoint:
        raise CheckpointError(f"{path!r} is not a PyTorch checkpoint: {not_a_checkpoint}.")

    try:
        if _supports_weights_only():
            try:
                return _load_weights_only(path)
            except pickle.UnpicklingError:
                pass  # torch 1.13's weights-only loader also rejects floats and the args Namespace
        return _load_restricted(path, head)
    except pickle.UnpicklingError as error:
        detail = str(error).split("WeightsUnpickler error:")[-1].strip()
        raise CheckpointError(
            f"{path!r} holds Python objects other than tensors and plain containers ({detail}); "
            "it was refused because unpickling them could run arbitrary code. Re-save only the "
            "weights: torch.save({'model': model.state_dict()}, path)."
        ) from None
    except (RuntimeError, EOFError, KeyError, ValueError, OSError, AttributeError, IndexError) as error:
        message = str(error)
        if head.startswith(b"PK") and ("central directory" in message or "zip archive" in message):
            reason = "the zip archive is incomplete, so the file is probably truncated (an interrupted download or copy)"
        elif isinstance(error, EOFError) or "truncated" in message or "Ran out of input" in message:
            reason = "the data ends early, so the file is probably truncated"
        else:
            reason = f"torch.load failed with {type(error).__name__}: {message or repr(error)}"
        raise CheckpointError(f"{path!r} could not be read as a PyTorch checkpoint: {reason}.") from None


# ----------------------------------------------------------------------------- selecting weights


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())


def strip_wrapper_prefixes(state_dict: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """Drop `module.` (DDP) and `_orig_mod.` (torch.compile) prefixes shared by every key."""
    result = dict(state_dict)
    changed = True
    while changed and result:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if all(key.startswith(prefix) for key in result):
                result = {key[len(prefix):]: value for key, value in result.items()}
                changed = True
    return result


def select_state_dict(obj: Any, weights: str = "model") -> Dict[str, Tensor]:
    """The state dict to use from a loaded checkpoint: obj[weights], or obj itself when it is bare."""
    if weights not in WEIGHTS_CHOICES:
        raise CheckpointError(f"weights must be one of {WEIGHTS_CHOICES}, got {weights!r}.")
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"The checkpoint holds a {type(obj).__name__}, not a dict of weights.")
    if weights in obj:
        chosen = obj[weights]
        if not _is_state_dict(chosen):
            raise CheckpointError(f"The checkpoint's {weights!r} entry is not a state dict of tensors.")
        return strip_wrapper_prefixes(chosen)
    if {"state", "param_groups"} <= set(obj):
        raise CheckpointError("This looks like an optimizer state (keys 'state', 'param_groups'), not model weights.")
    if _is_state_dict(obj):
        if weights == "ema":
            raise CheckpointError("EMA weights were requested, but the file is a bare state dict (no 'ema' entry); "
                                  "use --weights model.")
        return strip_wrapper_prefixes(obj)
    top = ", ".join(sorted(str(k) for k in obj)[:12]) or "none"
    hint = " Use --weights model." if weights == "ema" and "model" in obj else ""
    raise CheckpointError(f"The checkpoint has no {weights!r} weights and is not a bare state dict; "
                          f"its top-level keys are: {top}.{hint}")


# ----------------------------------------------------------------------------- config inference


def _count(state_dict: Mapping[str, Tensor], pattern: str) -> int:
    """Number of distinct integers n for which some key matches pattern with {n} in place of \\d+."""
    regex = re.compile(pattern)
    return len({m.group(1) for key in state_dict for m in [regex.match(key)] if m})


def _shape(state_dict: Mapping[str, Tensor], key: str) -> torch.Size:
    if key not in state_dict:
        raise CheckpointError(f"Cannot infer the model config: key {key!r} is missing.{_foreign_hint(state_dict)}")
    return state_dict[key].shape


def _foreign_hint(state_dict: Mapping[str, Tensor]) -> str:
    keys = list(state_dict)
    if any(k.startswith(("net.", "lin0.", "lins.")) for k in keys):
        return " The keys look like an LPIPS network."
    if any(k.startswith("main.") for k in keys) or any("discriminator" in k for k in keys):
        return " The keys look like a discriminator."
    if not any(k.startswith(("encoder.", "decoder.", "quantize_")) for k in keys):
        return f" None of its keys look like an FQGAN tokenizer (first keys: {', '.join(keys[:5])})."
    return ""


def infer_config(state_dict: Mapping[str, Tensor], stored: Optional[Mapping[str, Any]] = None) -> ModelConfig:
    """Rebuild the ModelConfig that produced `state_dict` from its keys and shapes.

    Head counts and loss weights leave no trace in shapes; they come from `stored` (a config dict
    saved next to the weights) when given, else the reference defaults.
    """
    variant = next((v for v, names in CODEBOOKS.items()
                    if all(f"quantize_{n}.embedding.weight" in state_dict for n in names)), None)
    if variant is None:
        raise CheckpointError("Cannot infer the model config: the state dict has no complete set of "
                              "quantize_<codebook>.embedding.weight keys (vis + sem for dual, vis + sem_mid + "
                              f"sem_high for triple).{_foreign_hint(state_dict)}")
    names = CODEBOOKS[variant]
    codebook_size, dim = _shape(state_dict, "quantize_vis.embedding.weight")
    ch = _shape(state_dict, "encoder.conv_in.weight")[0]
    levels = _count(state_dict, r"encoder\.conv_blocks\.(\d+)\.")
    if levels < 2:
        raise CheckpointError(f"Cannot infer the model config: found {levels} encoder levels.")
    ch_mult = tuple(_shape(state_dict, f"encoder.conv_blocks.{i}.res.0.conv1.weight")[0] // ch for i in range(levels))
    num_res_blocks = _count(state_dict, r"encoder\.conv_blocks\.0\.res\.(\d+)\.")
    adapter = f"encoder.{ENCODER_HEAD_NAMES['vis']}.0"
    width = ch * ch_mult[-1]
    grid = math.isqrt(_shape(state_dict, f"{adapter}.positional_embedding")[0])
    values: Dict[str, Any] = dict(
        variant=variant, ch=ch, ch_mult=ch_mult, num_res_blocks=num_res_blocks,
        z_channels=_shape(state_dict, "encoder.conv_out_vis.weight")[0],
        image_size=grid * 2 ** (levels - 1),
        codebook_size=codebook_size, codebook_embed_dim=dim,
        codebook_show_usage="quantize_vis.codebook_used" in state_dict,
        adapter_layers=_count(state_dict, re.escape(adapter) + r"\.transformer\.(\d+)\."),
        adapter_mlp_ratio=_shape(state_dict, f"{adapter}.transformer.0.mlp.c_fc.weight")[0] / width,
    )
    if values["codebook_show_usage"]:
        values["usage_window"] = state_dict["quantize_vis.codebook_used"].numel()
    head_names = [SEMANTIC_HEAD_NAMES[n] for n in names if n != "vis"]
    values["semantic_heads"] = any(f"{h}.class_embedding" in state_dict for h in head_names)
    if values["semantic_heads"]:
        values["semantic_head_widths"] = tuple(_shape(state_dict, f"{h}.class_embedding")[1] for h in head_names)
        values["semantic_head_layers"] = _count(state_dict, re.escape(head_names[0]) + r"\.transformer\.(\d+)\.")
    for field_name in NON_SHAPE_FIELDS:
        if stored and field_name in stored:
            values[field_name] = stored[field_name]
    try:
        return ModelConfig(**values)
    except ValueError as error:
        raise CheckpointError(f"The state dict's shapes describe an invalid config: {error}.") from None


# ----------------------------------------------------------------------------- strict check


def _mismatch_hints(missing: List[str], unexpected: List[str]) -> List[str]:
    hints = []
    has = lambda keys, prefix: any(k.startswith(prefix) for k in keys)  # noqa: E731
    if has(unexpected, "quantize_sem.") and has(missing, "quantize_sem_mid."):
        hints.append("this looks like a dual checkpoint (it has quantize_sem) loaded as triple")
    if has(unexpected, "quantize_sem_mid.") and has(missing, "quantize_sem."):
        hints.append("this looks like a triple checkpoint (it has quantize_sem_mid/sem_high) loaded as dual")
    heads = tuple(f"{h}." for h in SEMANTIC_HEAD_NAMES.values())
    if has(missing, heads) and not has(unexpected, heads):
        hints.append("the checkpoint has no semantic heads: it was trained without semantic supervision "
                     "(use semantic_heads=False)")
    if has(unexpected, heads) and not has(missing, heads):
        hints.append("the checkpoint has semantic heads (use semantic_heads=True)")
    if any(k in ("state", "param_groups") for k in unexpected):
        hints.append("this looks like an optimizer state")
    if missing and all(k.endswith("codebook_used") for k in missing):
        hints.append("it was trained without the codebook usage window (use codebook_show_usage=False)")
    return hints


def check_state_dict(expected: Mapping[str, Tensor], actual: Mapping[str, Tensor]) -> None:
    """Raise CheckpointError unless `actual` has exactly the keys and shapes of `expected`."""
    missing = sorted(set(expected) - set(actual))
    unexpected = sorted(set(actual) - set(expected))
    wrong_shape = [f"{k}: checkpoint {tuple(actual[k].shape)} vs model {tuple(expected[k].shape)}"
                   for k in expected if k in actual and actual[k].shape != expected[k].shape]
    if not (missing or unexpected or wrong_shape):
        return

    def listing(title: str, items: List[str]) -> str:
        shown = ", ".join(items[:8]) + (f" and {len(items) - 8} more" if len(items) > 8 else "")
        return f"{len(items)} {title} ({shown})"

    parts = [listing(t, items) for t, items in (("missing keys", missing), ("unexpected keys", unexpected),
                                                 ("wrong shapes", wrong_shape)) if items]
    hints = _mismatch_hints(missing, unexpected)
    suggestion = f" Hint: {'; '.join(hints)}." if hints else ""
    raise CheckpointError(f"The checkpoint does not match the model: {'; '.join(parts)}.{suggestion}")


# ----------------------------------------------------------------------------- loading


def load_checkpoint(path: str, weights: str = "model", config: Optional[ModelConfig] = None) -> LoadedCheckpoint:
    """Read `path`, pick its `weights` ("model" or "ema"), build the model (config inferred from
    the shapes unless given) and load the weights strictly. The model is returned in eval mode."""
    obj = read_checkpoint(path)
    state_dict = select_state_dict(obj, weights)
    stored = obj.get("config") if isinstance(obj, Mapping) and isinstance(obj.get("config"), Mapping) else None
    config = config or infer_config(state_dict, stored)
    model = FQGAN(config)
    check_state_dict(model.state_dict(), state_dict)
    model.load_state_dict(state_dict, strict=True)
    return LoadedCheckpoint(model=model.eval(), config=config, weights=weights, path=os.path.abspath(path),
                            sha256=file_sha256(path))


def load_served_model(model_dir: str, weights: Optional[str] = None) -> FQGAN:
    """The PyTorch model behind an exported model directory (its manifest.json), in eval mode.

    Uses the manifest's `checkpoint` (relative to the directory, or absolute); a random-init export
    without one is rebuilt from its config and seed, which reproduces it on the same torch version.
    """
    manifest_path = os.path.join(model_dir, "manifest.json")
    try:
        with open(manifest_path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{manifest_path!r} cannot be read: {error}.") from None
    config = ModelConfig.from_dict(manifest["config"])
    source = manifest.get("source") or {}
    if manifest.get("checkpoint"):
        path = os.path.join(model_dir, manifest["checkpoint"])  # an absolute path stays absolute
        return load_checkpoint(path, weights or source.get("weights") or "model", config).model
    if source.get("kind") == "random" and source.get("seed") is not None:
        torch.manual_seed(int(source["seed"]))
        return FQGAN(config).eval()
    raise CheckpointError(f"{model_dir!r} names no PyTorch checkpoint and is not a seeded random init.")


def save_checkpoint(model: FQGAN, path: str, **extra: Any) -> None:
    """Write the reference format {"model": state_dict} plus our "config" dict (and any extras)."""
    torch.save({"model": model.state_dict(), "config": model.config.to_dict(), **extra}, path)


__all__ = ("CheckpointError", "LoadedCheckpoint", "read_checkpoint", "select_state_dict",
                          "strip_wrapper_prefixes", "infer_config", "check_state_dict", "load_checkpoint",
                          "load_served_model", "save_checkpoint", "file_sha256")
