"""The torch worker's wire format (docs/torch-worker-protocol.md), the worker's side, against the recorded
frames in test/fixtures/torch-worker-frames: its own frames rewritten byte for byte, the service's read back."""
import io
import json
import os

import numpy as np
import pytest

from conftest import TRAINER_DIR
from fqgan.serve_worker import read_frame, write_frame

FIXTURE = os.path.join(os.path.dirname(TRAINER_DIR), "test", "fixtures", "torch-worker-frames")
with open(os.path.join(FIXTURE, "frames.json")) as f:
    FRAMES = json.load(f)["frames"]


def frame_bytes(frame):
    with open(os.path.join(FIXTURE, frame["file"]), "rb") as f:
        return f.read()


def as_array(tensor):
    return np.array(tensor["values"], dtype=tensor["dtype"]).reshape(tensor["shape"])


@pytest.mark.parametrize("frame", [f for f in FRAMES if f["writer"] == "worker"], ids=lambda f: f["file"])
def test_the_worker_writes_its_frames_byte_for_byte_as_recorded(frame):
    stream = io.BytesIO()
    write_frame(stream, frame["header"], [(t["name"], as_array(t)) for t in frame["tensors"]])
    assert stream.getvalue() == frame_bytes(frame)


def test_the_worker_reads_the_services_frames_with_their_payloads_then_stops_at_the_end():
    service = [f for f in FRAMES if f["writer"] == "service"]
    assert {f["header"]["op"] for f in service} == {"encode", "decode"}
    stream = io.BytesIO(b"".join(frame_bytes(f) for f in service))
    for want in service:
        header, payload = read_frame(stream)
        assert header == {**want["header"], "bytes": len(payload)}
        # A request's header names no tensors: its op says what the payload holds (float32 images, int32 grids).
        (tensor,) = want["tensors"]
        dtype = {"float32": "<f4", "int32": "<i4"}[tensor["dtype"]]
        assert np.frombuffer(payload, dtype=dtype).reshape(tensor["shape"]).tolist() == as_array(tensor).tolist()
    assert read_frame(stream) is None  # end of stdin: the worker stops


def test_a_header_over_one_mebibyte_is_refused():
    with pytest.raises(ValueError, match="header of"):
        read_frame(io.BytesIO((1 << 20 | 1).to_bytes(4, "little") + b"{}"))
