"""ONNX export CLI: a checkpoint (or a seeded random init) -> models/<name>/{encoder,decoder}.onnx + manifest.json.

    python -m fqgan.export --checkpoint fqgan_triple_ds16.pt --out ../models/fqgan-triple-vq16 [--weights ema]
    python -m fqgan.export --random --preset tiny-16 --seed 0 --out ../models/fqgan-triple-vq16-tiny
    ... [--fixture DIR]   also write PyTorch reference outputs for the ORT parity test

Progress goes to stderr; stdout gets exactly one JSON object (the summary, or {"ok": false, "error"}).
The model directory is written to a temporary sibling and renamed into place, so a reader never
sees a half-written model.
"""
from __future__ import annotations

import argparse
import datetime
import inspect
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from . import __version__
from .checkpoint import CheckpointError, file_sha256, load_checkpoint, save_checkpoint
from .codes import masked_code_vectors, token_margins
from .config import PRESETS, ModelConfig, preset
from .model import FQGAN

OPSET = 17  # the newest opset torch 1.13 exports; onnxruntime >= 1.13 runs it
MASK_INPUT = "codebook_mask"
IMAGE = "image"
# A random-init model's weights are copied into its model dir (for fine-tuning) up to this size.
MAX_EMBEDDED_CHECKPOINT_BYTES = 32 * 1024 * 1024
# Serving weights for the torch backend: {"model": state_dict, "config": {...}}, read with the safe loader.
WEIGHTS_FILE = "weights.pt"
WEIGHTS_FORMAT = "fqgan-state-dict"
NORMALIZATION = {"input": "x/255*2-1", "output": "clamp(-1,1) then (x+1)*127.5"}


class ExportError(Exception):
    """A problem with the export request itself (bad arguments, unwritable output)."""


def log(message: str) -> None:
    print(f"[fqgan.export] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- graphs


class _FrozenCodebooks(nn.Module):
    """Holds the model and its normalised codebooks as buffers, as PyTorch computes them."""

    def __init__(self, model: FQGAN) -> None:
        super().__init__()
        self.model = model
        self.names = model.codebook_names
        for name in self.names:
            self.register_buffer(f"codebook_{name}", model.quantizer(name).codebook().detach().clone())


class EncoderGraph(_FrozenCodebooks):
    """image [B,3,S,S] -> one int64 [B,h,w] token grid per codebook.

    The normalised codebooks are frozen into buffers computed by PyTorch itself, so the ONNX graph
    searches exactly the vectors PyTorch searches, with the same search (codes.nearest_codes).
    """

    def forward(self, image: Tensor) -> Tuple[Tensor, ...]:
        pre_quant = self.model.pre_quant(image)
        return tuple(
            self.model.quantizer(name).nearest_indices(
                self.model.quantizer(name).prepare(pre_quant[name]), getattr(self, f"codebook_{name}"))
            for name in self.names
        )


class DecoderGraph(_FrozenCodebooks):
    """one int64 [B,h,w] grid per codebook + codebook_mask [k] -> image [B,3,H,W] (not clamped)."""

    def forward(self, *inputs: Tensor) -> Tensor:
        *grids, mask = inputs
        codebooks = {name: getattr(self, f"codebook_{name}") for name in self.names}
        return self.model.decode(masked_code_vectors(dict(zip(self.names, grids)), codebooks, self.names, mask))


def _onnx_export(module: nn.Module, args: Tuple[Tensor, ...], path: str, input_names: List[str],
                 output_names: List[str], dynamic_axes: Dict[str, Dict[int, str]]) -> None:
    kwargs: Dict[str, Any] = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False  # torch >= 2.5 may default to the dynamo exporter; we want the tracer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape-derived Python ints are expected
        torch.onnx.export(
            module, args, path, input_names=input_names, output_names=output_names,
            dynamic_axes=dynamic_axes, opset_version=OPSET, do_constant_folding=True, **kwargs,
        )


def export_encoder(model: FQGAN, path: str) -> None:
    config = model.config
    example = torch.zeros(1, 3, config.image_size, config.image_size)
    names = list(model.codebook_names)
    axes = {IMAGE: {0: "batch"}, **{name: {0: "batch"} for name in names}}
    _onnx_export(EncoderGraph(model).eval(), (example,), path, [IMAGE], names, axes)


def export_decoder(model: FQGAN, path: str) -> None:
    grid = model.config.grid_size
    names = list(model.codebook_names)
    example = tuple(torch.zeros(1, grid, grid, dtype=torch.int64) for _ in names) + (torch.ones(len(names)),)
    axes = {name: {0: "batch", 1: "height", 2: "width"} for name in names}
    axes[IMAGE] = {0: "batch", 2: "image_height", 3: "image_width"}
    _onnx_export(DecoderGraph(model).eval(), example, path, names + [MASK_INPUT], [IMAGE], axes)


# ----------------------------------------------------------------------------- fixture


def fixture_images(image_size: int, seed: int = 1234) -> Tensor:
    """Two deterministic images in [-1, 1]: smooth colour waves, and seeded noise."""
    coords = torch.linspace(-1.0, 1.0, image_size)
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    waves = torch.stack([torch.sin(3.1 * x + 1.3 * y), torch.cos(2.3 * y - 0.7 * x), torch.sin(5.0 * x * y)])
    noise = torch.rand(3, image_size, image_size, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return torch.stack([waves, noise]).clamp(-1, 1)


def _write_tensor(directory: str, name: str, tensor: Tensor, index: Dict[str, Any]) -> None:
    array = tensor.detach().cpu().numpy()
    dtype = {np.dtype(np.float32): "<f4", np.dtype(np.int64): "<i8"}[array.dtype]
    file_name = f"{name}.bin"
    array.astype(dtype).tofile(os.path.join(directory, file_name))
    index[name] = {"file": file_name, "dtype": str(array.dtype), "shape": list(array.shape)}


@torch.no_grad()
def write_fixture(model: FQGAN, directory: str) -> Dict[str, Any]:
    """PyTorch reference outputs as raw little-endian .bin files plus fixture.json (shapes, dtypes)."""
    os.makedirs(directory, exist_ok=True)
    names = list(model.codebook_names)
    images = fixture_images(model.config.image_size)
    tokens = model.encode(images).indices
    margins = token_margins(model, images)
    masks = {"full": [1.0] * len(names), "partial": [1.0] + [0.0] * (len(names) - 1)}
    tensors: Dict[str, Any] = {}
    _write_tensor(directory, "input", images, tensors)
    for name in names:
        _write_tensor(directory, f"tokens_{name}", tokens[name], tensors)
        _write_tensor(directory, f"margins_{name}", margins[name], tensors)
    for mask_name, mask in masks.items():
        _write_tensor(directory, f"decoded_{mask_name}", model.decode_code(tokens, mask=mask), tensors)
    index = {"format": "fqtok-fixture", "format_version": 1, "codebooks": names, "masks": masks,
             "tensors": tensors}
    with open(os.path.join(directory, "fixture.json"), "w") as f:
        json.dump(index, f, indent=2)
    return index


# ----------------------------------------------------------------------------- manifest and directory


def preset_name_of(config: ModelConfig) -> Optional[str]:
    for name in PRESETS:
        if preset(name, config.variant).to_dict() == config.to_dict():
            return name
    return None


def build_manifest(config: ModelConfig, preset_name: Optional[str], source: Dict[str, Any],
                   checkpoint: Optional[str], weights: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    names = list(config.codebook_names)
    return {
        "format": "fqtok-model",
        "format_version": 1,
        "variant": config.variant,
        "preset": preset_name,
        "downsample": config.downsample,
        "image_size": config.image_size,
        "grid": [config.grid_size, config.grid_size],
        "codebooks": [{"name": n, "size": config.codebook_size, "dim": config.codebook_embed_dim} for n in names],
        "normalization": NORMALIZATION,
        "opset": OPSET,
        "encoder": {"file": "encoder.onnx", "input": IMAGE, "outputs": names},
        "decoder": {"file": "decoder.onnx", "inputs": names, "mask": MASK_INPUT, "output": IMAGE,
                    "dynamic_grid": True},
        "config": config.to_dict(),
        "source": source,
        "checkpoint": checkpoint,
        "weights": weights,
        "produced_by": {
            "tool": "fqgan.export",
            "fqgan_version": __version__,
            "torch": torch.__version__,
            "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        },
    }


def folder_files(directory: str) -> Dict[str, Dict[str, Any]]:
    """Size and sha256 of every file in the model folder but the manifest: a reader (the service's hot
    pickup) loads a folder only once every listed file is there in full, so a folder being copied
    file by file is never served half-written."""
    return {name: {"bytes": os.path.getsize(os.path.join(directory, name)),
                   "sha256": file_sha256(os.path.join(directory, name))}
            for name in sorted(os.listdir(directory)) if name != "manifest.json"}


def _state_dict_bytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def _check_replaceable(out: str) -> None:
    # The swap in _replace_directory deletes what was at `out`: only ever a previous model dir.
    if os.path.isfile(out):
        raise ExportError(f"--out {out!r} is a file; it must name a model directory.")
    if os.path.isdir(out) and os.listdir(out) and not os.path.exists(os.path.join(out, "manifest.json")):
        raise ExportError(f"--out {out!r} is a non-empty directory without manifest.json; refusing to replace "
                          "something that is not a model directory.")


def _replace_directory(staging: str, out: str) -> None:
    """Move `staging` to `out`; an existing `out` is swapped aside first and removed afterwards."""
    previous = None
    if os.path.exists(out):
        previous = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.old-", dir=os.path.dirname(out))
        os.rmdir(previous)
        os.rename(out, previous)
    os.rename(staging, out)
    if previous:
        shutil.rmtree(previous, ignore_errors=True)


def cpu_float_copy(model: FQGAN) -> FQGAN:
    """A float32 copy of `model` on the CPU, in eval mode, whatever device and dtype it trained in.

    The exporter's example inputs, the ONNX trace and the saved weights are all CPU float32; a model
    still on the GPU (or in another dtype) would meet them half-way. The caller's model is untouched.
    """
    with torch.random.fork_rng(devices=[]):  # the copy's throw-away init must not move the caller's RNG
        copy = FQGAN(model.config)
    state = {k: v.detach().to("cpu", torch.float32) if v.is_floating_point() else v.detach().cpu()
             for k, v in model.state_dict().items()}
    copy.load_state_dict(state, strict=True)
    return copy.eval()


def export_model(model: FQGAN, out: str, source: Dict[str, Any], preset_name: Optional[str],
                 checkpoint: Optional[str], embed_checkpoint: bool) -> Dict[str, Any]:
    """Write the model directory `out` atomically from a CPU float32 copy of `model`; returns the manifest."""
    out = os.path.abspath(out)
    _check_replaceable(out)
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.tmp-", dir=parent)
    try:
        model = cpu_float_copy(model)
        log("exporting encoder.onnx")
        export_encoder(model, os.path.join(staging, "encoder.onnx"))
        log("exporting decoder.onnx")
        export_decoder(model, os.path.join(staging, "decoder.onnx"))
        if embed_checkpoint:
            save_checkpoint(model, os.path.join(staging, "checkpoint.pt"))
            checkpoint = "checkpoint.pt"
            source = {**source, "sha256": file_sha256(os.path.join(staging, "checkpoint.pt"))}
            weights_file = "checkpoint.pt"  # already exactly the serving weights: no second copy
        else:
            # The exported weights alone (the chosen EMA or model weights, no optimizer state),
            # for the torch backend; a training checkpoint is bigger and may be elsewhere.
            weights_file = WEIGHTS_FILE
            save_checkpoint(model, os.path.join(staging, WEIGHTS_FILE))
        weights = {"file": weights_file, "format": WEIGHTS_FORMAT,
                   "sha256": file_sha256(os.path.join(staging, weights_file))}
        manifest = build_manifest(model.config, preset_name, source, checkpoint, weights)
        manifest["files"] = folder_files(staging)
        with open(os.path.join(staging, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=2)
            f.write("\n")
        os.chmod(staging, 0o755)
        _replace_directory(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


# ----------------------------------------------------------------------------- CLI


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fqgan.export", description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="PyTorch checkpoint ({'model': ...} dict or bare state dict)")
    source.add_argument("--random", action="store_true", help="export a seeded random init of --preset")
    parser.add_argument("--out", required=True, help="model directory to write (replaced atomically)")
    parser.add_argument("--weights", choices=("model", "ema"), default="model", help="which weights of the checkpoint")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="architecture for --random")
    parser.add_argument("--variant", choices=("triple", "dual"), default="triple", help="variant for --random")
    parser.add_argument("--seed", type=int, default=0, help="seed for --random")
    parser.add_argument("--image-size", type=int, help="input side for --random (default: the preset's, 256)")
    parser.add_argument("--fixture", help="also write PyTorch reference outputs for the ORT parity test here")
    args = parser.parse_args(argv)
    if args.random and not args.preset:
        parser.error("--random needs --preset")
    if args.image_size is not None and not args.random:
        parser.error("--image-size is for --random; a checkpoint's size comes from its shapes")
    return args


def run(args: argparse.Namespace) -> Dict[str, Any]:
    started = time.monotonic()
    if args.random:
        torch.manual_seed(args.seed)
        overrides = {} if args.image_size is None else {"image_size": args.image_size}
        try:
            config = preset(args.preset, args.variant, **overrides)
        except ValueError as error:
            raise ExportError(str(error)) from None
        log(f"building {args.variant} {args.preset} with seed {args.seed}")
        model = FQGAN(config).eval()
        embed = _state_dict_bytes(model) <= MAX_EMBEDDED_CHECKPOINT_BYTES
        source = {"kind": "random", "path": None, "sha256": None, "weights": "model", "seed": args.seed,
                  "preset": args.preset}
        preset_name, checkpoint = args.preset, None
    else:
        log(f"loading {args.checkpoint} ({args.weights} weights)")
        loaded = load_checkpoint(args.checkpoint, args.weights)
        model, config = loaded.model, loaded.config
        preset_name = preset_name_of(config)
        source = {"kind": "checkpoint", "path": loaded.path, "sha256": loaded.sha256, "weights": args.weights,
                  "seed": None, "preset": preset_name}
        embed, checkpoint = False, loaded.path

    manifest = export_model(model, args.out, source, preset_name, checkpoint, embed)
    out = os.path.abspath(args.out)
    fixture = None
    if args.fixture:
        log(f"writing fixture to {args.fixture}")
        write_fixture(model, args.fixture)
        fixture = os.path.abspath(args.fixture)
    files = {name: os.path.getsize(os.path.join(out, name)) for name in sorted(os.listdir(out))}
    log(f"wrote {out} ({sum(files.values()) / 1e6:.1f} MB) in {time.monotonic() - started:.1f}s")
    return {"ok": True, "out": out, "variant": config.variant, "preset": preset_name, "grid": manifest["grid"],
            "codebooks": manifest["codebooks"], "files": files, "checkpoint": manifest["checkpoint"],
            "fixture": fixture, "seconds": round(time.monotonic() - started, 2)}


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        summary = run(args)
    except (CheckpointError, ExportError, OSError) as error:
        message = str(error) if not isinstance(error, OSError) else f"{error.strerror or error}: {error.filename}"
        print(f"fqgan.export: error: {message}", file=sys.stderr)
        print(json.dumps({"ok": False, "error": message}))
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
