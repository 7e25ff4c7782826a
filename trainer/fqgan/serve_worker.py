"""The torch backend's worker: one model version on one device, serving encode/decode over stdin/stdout.

    python -m fqgan.serve_worker --model-dir models/fqgan-triple-vq16-tiny [--device auto] [--precision fp32]

Framing, both ways: a little-endian uint32 header length, the header (UTF-8 JSON), then exactly
header["bytes"] payload bytes (raw little-endian tensors, one after another, C order).

    -> {"id", "op": "encode", "batch", "bytes"} + float32 [B,3,S,S]
    <- {"id", "ok": true, "tensors": [{"name", "dtype": "int32", "shape": [B,h,w]}, ...], "bytes"} + grids
    -> {"id", "op": "decode", "batch", "grid": [h,w], "mask": [..], "bytes"} + int32 [B,h,w] per codebook
    <- {"id", "ok": true, "tensors": [{"name": "image", "dtype": "uint8", "shape": [B,H,W,3]}], "bytes"} + RGB
    -> {"id", "op": "check", "bytes": 0}
    <- tensors "input" float32 [2,3,S,S], then per codebook int32 tokens and float32 "margin_<name>"
    <- {"id", "ok": false, "error": "..."} when a request fails (the worker keeps serving)

The first frame the worker writes is {"op": "ready", "device", "precision", ...} once the model is
loaded, or {"op": "failed", "error"} before it exits with status 1. End of stdin stops it.
"""
from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import traceback
from typing import Any, BinaryIO, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .checkpoint import CheckpointError, file_sha256, load_checkpoint, load_served_model
from .config import ModelConfig
from .export import fixture_images
from .inference import PRECISIONS, InferenceModel, InferenceSettings, compile_available
from .model import FQGAN

HEADER = struct.Struct("<I")
MAX_HEADER_BYTES = 1 << 20


def log(message: str) -> None:
    print(f"[fqgan.serve_worker] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- loading


def load_model(model_dir: str) -> Tuple[FQGAN, str]:
    """The model of a model folder: the manifest's serving `weights` file (checked against its
    sha256, read with the safe loader), else its fine-tuning checkpoint as before."""
    with open(os.path.join(model_dir, "manifest.json")) as f:
        manifest = json.load(f)
    weights = manifest.get("weights")
    if not weights:
        return load_served_model(model_dir), "checkpoint"
    path = os.path.join(model_dir, weights["file"])
    if not os.path.isfile(path):
        raise CheckpointError(f"{path!r} (the manifest's weights file) does not exist.")
    digest = file_sha256(path)
    if weights.get("sha256") and digest != weights["sha256"]:
        raise CheckpointError(f"{path!r} has sha256 {digest}, the manifest says {weights['sha256']}: "
                              "the file was changed or damaged.")
    config = ModelConfig.from_dict(manifest["config"])
    return load_checkpoint(path, "model", config).model, weights["file"]


def resolve_device(name: str, cuda_device: int = 0) -> str:
    """cpu, or cuda:N: `auto` and `cuda` take device `cuda_device` (a worker's local rank picks it)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda, but this torch sees no CUDA device")
    if name == "cuda":
        count = torch.cuda.device_count()
        if not 0 <= cuda_device < count:
            raise ValueError(f"CUDA device {cuda_device} asked for, but this torch sees {count} (0 to {count - 1})")
        return f"cuda:{cuda_device}"
    return name


# ----------------------------------------------------------------------------- framing


def read_exact(stream: BinaryIO, count: int) -> Optional[bytes]:
    chunks, remaining = [], count
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(stream: BinaryIO) -> Optional[Tuple[Dict[str, Any], bytes]]:
    head = read_exact(stream, HEADER.size)
    if head is None:
        return None
    (length,) = HEADER.unpack(head)
    if length > MAX_HEADER_BYTES:
        raise ValueError(f"header of {length} bytes")
    raw = read_exact(stream, length)
    if raw is None:
        return None
    header = json.loads(raw)
    payload = read_exact(stream, int(header.get("bytes", 0))) if header.get("bytes") else b""
    if payload is None:
        return None
    return header, payload


def write_frame(stream: BinaryIO, header: Dict[str, Any], tensors: Sequence[Tuple[str, np.ndarray]] = ()) -> None:
    arrays = [np.ascontiguousarray(a) for _, a in tensors]
    header = {**header, "bytes": sum(a.nbytes for a in arrays)}
    if tensors:
        header["tensors"] = [{"name": n, "dtype": str(a.dtype), "shape": list(a.shape)} for (n, _), a in zip(tensors, arrays)]
    raw = json.dumps(header).encode("utf-8")
    stream.write(HEADER.pack(len(raw)) + raw)
    for a in arrays:
        stream.write(memoryview(a).cast("B"))
    stream.flush()


# ----------------------------------------------------------------------------- requests


def handle(runner: InferenceModel, header: Dict[str, Any], payload: bytes) -> List[Tuple[str, np.ndarray]]:
    op = header.get("op")
    size = runner.model.config.image_size
    if op == "encode":
        batch = int(header["batch"])
        images = torch.from_numpy(np.frombuffer(payload, dtype="<f4").reshape(batch, 3, size, size).copy())
        grids = runner.encode(images)
        return [(name, grids[name].numpy()) for name in runner.names]
    if op == "decode":
        batch, (h, w) = int(header["batch"]), header["grid"]
        flat = np.frombuffer(payload, dtype="<i4").reshape(len(runner.names), batch, h, w)
        grids = {name: torch.from_numpy(flat[i].copy()) for i, name in enumerate(runner.names)}
        return [("image", runner.decode(grids, header["mask"]).numpy())]
    if op == "check":
        images = fixture_images(size)
        grids = runner.encode(images)
        margins = runner.margins(images)
        return ([("input", images.numpy())] + [(n, grids[n].numpy()) for n in runner.names]
                + [(f"margin_{n}", margins[n].numpy()) for n in runner.names])
    raise ValueError(f"unknown op {op!r}")


def serve(runner: InferenceModel, requests: BinaryIO, replies: BinaryIO) -> None:
    while True:
        frame = read_frame(requests)
        if frame is None:
            return  # the service closed our stdin: it is stopping, or gone
        header, payload = frame
        try:
            tensors = handle(runner, header, payload)
        except Exception as error:  # one bad request must not take the model down
            log(f"request {header.get('id')} ({header.get('op')}) failed: {traceback.format_exc()}")
            write_frame(replies, {"id": header.get("id"), "ok": False, "error": f"{type(error).__name__}: {error}"})
            continue
        write_frame(replies, {"id": header.get("id"), "ok": True}, tensors)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fqgan.serve_worker", description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--cuda-device", type=int, default=0, help="the CUDA device that auto and cuda take (FQ_CUDA_DEVICE_ID)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help="used on CUDA; CPU runs fp32")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument("--compile", action="store_true", help="torch.compile encoder and decoder (torch >= 2)")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    # stdout carries frames only: keep a private handle on it and point fd 1 at stderr, so that a
    # stray print (ours or a library's, C level included) cannot corrupt the stream.
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    requests = sys.stdin.buffer
    try:
        if args.threads > 0:
            torch.set_num_threads(args.threads)
        device = resolve_device(args.device, args.cuda_device)
        if device.startswith("cuda"):
            torch.cuda.set_device(torch.device(device))  # anything made on "cuda" lands on this worker's GPU too
        precision = args.precision
        if not device.startswith("cuda") and precision != "fp32":
            log(f"precision {precision} applies on CUDA only; running fp32 on {device}")
            precision = "fp32"
        if args.compile and not compile_available():
            log(f"--compile needs torch >= 2 (this is {torch.__version__}); running eager")
        model, weights = load_model(args.model_dir)
        runner = InferenceModel(model, InferenceSettings(device=device, precision=precision, compile=args.compile))
    except Exception as error:
        log(traceback.format_exc())
        write_frame(replies, {"op": "failed", "error": f"{type(error).__name__}: {error}"})
        return 1
    write_frame(replies, {"op": "ready", "pid": os.getpid(), "device": device, "precision": precision,
                          "torch": torch.__version__, "weights": weights, "channels_last": runner.channels_last,
                          "compiled": runner.compiled, "codebooks": runner.names})
    log(f"serving {args.model_dir} on {device} in {precision} (torch {torch.__version__})")
    try:
        serve(runner, requests, replies)
    except BrokenPipeError:
        pass  # the service went away while we answered
    return 0


if __name__ == "__main__":
    sys.exit(main())
