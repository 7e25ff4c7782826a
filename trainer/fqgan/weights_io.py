"""Reading weight files without third-party packages: torch pickles (safely) and safetensors."""
from __future__ import annotations

import inspect
import json
import os
import struct
from typing import Any, Dict, Mapping

import torch
from torch import Tensor

_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
_HAS_WEIGHTS_ONLY = "weights_only" in inspect.signature(torch.load).parameters


def torch_load(path: str) -> Any:
    """torch.load on CPU with weights_only where torch has it (>= 1.13): a weights file cannot run code."""
    if _HAS_WEIGHTS_ONLY:
        return torch.load(path, map_location="cpu", weights_only=True)
    return torch.load(path, map_location="cpu")


def load_safetensors(path: str) -> Dict[str, Tensor]:
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
        data = bytearray(f.read())
    out: Dict[str, Tensor] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        dtype = _SAFETENSORS_DTYPES[entry["dtype"]]
        if begin == end:
            out[name] = torch.empty(entry["shape"], dtype=dtype)
            continue
        flat = torch.frombuffer(data, dtype=dtype, count=(end - begin) // _itemsize(dtype), offset=begin)
        out[name] = flat.reshape(entry["shape"]).clone()
    return out


def save_safetensors(tensors: Mapping[str, Tensor], path: str) -> None:
    names = {v: k for k, v in _SAFETENSORS_DTYPES.items()}
    header: Dict[str, Any] = {}
    blobs = []
    offset = 0
    for name, tensor in tensors.items():
        t = tensor.detach().cpu().contiguous()
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)  # the format aligns the data to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for raw in blobs:
            f.write(raw)


def load_state_dict(path: str) -> Dict[str, Tensor]:
    """A flat name -> tensor dict from a .safetensors file or a torch pickle (bare or under
    `state_dict` / `model`)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.endswith(".safetensors"):
        return load_safetensors(path)
    state = torch_load(path)
    for key in ("state_dict", "model"):
        if isinstance(state, Mapping) and key in state and isinstance(state[key], Mapping):
            state = state[key]
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: expected a state_dict, got {type(state).__name__}")
    return {k: v for k, v in state.items() if isinstance(v, Tensor)}


def _itemsize(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()
