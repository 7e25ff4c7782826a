"""The torch backend's Python side: fqgan.inference against the model's own API, the worker's
framing and weights checks, and the GPU bench in its quick CPU mode."""
import io
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import TRAINER_DIR, small_config
from fqgan.checkpoint import CheckpointError, save_checkpoint
from fqgan.checkpoint import file_sha256
from fqgan.inference import InferenceModel, InferenceSettings, configure_matmul, to_rgb8
from fqgan.model import FQGAN
from fqgan.precision import restore_tf32, set_tf32, tf32_enabled, tf32_state
from fqgan.serve_worker import load_model, read_frame, resolve_device, serve, write_frame

REPO = os.path.dirname(TRAINER_DIR)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(3)
    return FQGAN(small_config("test-16", "triple")).eval()


def test_fp32_inference_matches_the_model(model):
    runner = InferenceModel(model, InferenceSettings())
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    grids = runner.encode(images)
    expected = model.encode(images).indices
    for name in model.codebook_names:
        assert grids[name].dtype == torch.int32
        assert torch.equal(grids[name].long(), expected[name])
    rgb = runner.decode(grids, [1.0, 0.0, 1.0])
    with torch.no_grad():
        reference = model.decode_code(expected, mask=[1.0, 0.0, 1.0])
    assert rgb.shape == (2, 64, 64, 3) and rgb.dtype == torch.uint8
    assert torch.equal(rgb, to_rgb8(reference))


def test_rgb_mapping_is_the_services():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.00392, 0.5, 0.999, 1.0, 3.0]).view(1, 1, 3, 3).expand(1, 3, 3, 3)
    values = to_rgb8(x)[0, :, :, 0].flatten().tolist()
    # floor(127.5 * clamp(x) + 128), capped at 255 (src/imaging/tensor-to-image.ts)
    assert values == [0, 0, 64, 128, 128, 191, 255, 255, 255]


def test_device_choice_takes_the_workers_cuda_device(monkeypatch):
    """auto and cuda become cuda:N for the worker's device (its local rank); CPU stays cpu."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert resolve_device("auto", 3) == "cuda:3"
    assert resolve_device("cuda", 0) == "cuda:0"
    assert resolve_device("cuda:2", 3) == "cuda:2"  # an explicit device wins
    with pytest.raises(ValueError, match="CUDA device 4 asked for, but this torch sees 4"):
        resolve_device("auto", 4)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto", 3) == "cpu"
    with pytest.raises(ValueError, match="sees no CUDA device"):
        resolve_device("cuda", 0)


def test_reduced_precision_needs_cuda():
    with pytest.raises(ValueError, match="needs a CUDA device"):
        InferenceSettings(device="cpu", precision="bf16")


def frames(*requests):
    stream = io.BytesIO()
    for header, arrays in requests:
        write_frame(stream, header, arrays)
    stream.seek(0)
    return stream


def test_worker_serves_frames_and_survives_a_bad_request(model):
    runner = InferenceModel(model, InferenceSettings())
    images = (torch.rand(1, 3, 64, 64) * 2 - 1).numpy()
    requests = frames(({"id": 1, "op": "encode", "batch": 1}, [("x", images)]), ({"id": 2, "op": "nope"}, []))
    replies = io.BytesIO()
    serve(runner, requests, replies)
    replies.seek(0)
    header, payload = read_frame(replies)
    assert header["ok"] and [t["name"] for t in header["tensors"]] == list(model.codebook_names)
    vis = np.frombuffer(payload[: 4 * 16], dtype="<i4")
    assert np.array_equal(vis, model.encode(torch.from_numpy(images)).indices["vis"].flatten()[:16].numpy())
    header, _ = read_frame(replies)
    assert header == {"id": 2, "ok": False, "error": "ValueError: unknown op 'nope'", "bytes": 0}


def test_weights_are_checked_against_the_manifest(model, tmp_path):
    save_checkpoint(model, str(tmp_path / "weights.pt"))
    manifest = {"config": model.config.to_dict(),
                "weights": {"file": "weights.pt", "sha256": file_sha256(str(tmp_path / "weights.pt"))}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    loaded, name = load_model(str(tmp_path))
    assert name == "weights.pt"
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    with open(tmp_path / "weights.pt", "ab") as f:
        f.write(b"x")
    with pytest.raises(CheckpointError, match="sha256"):
        load_model(str(tmp_path))


def test_worker_process_reports_a_failed_start(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "fqgan.serve_worker", "--model-dir", str(tmp_path)],
                          cwd=TRAINER_DIR, capture_output=True, timeout=120)
    assert proc.returncode == 1
    (length,) = struct.unpack("<I", proc.stdout[:4])
    header = json.loads(proc.stdout[4:4 + length])
    assert header["op"] == "failed" and "manifest.json" in header["error"]


def test_gpu_bench_runs_in_quick_cpu_mode():
    script = os.path.join(REPO, "bench", "gpu-check", "torch_backend.py")
    proc = subprocess.run([sys.executable, script, "--device", "cpu", "--quick", "--preset", "test-16"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["device"] == "cpu" and out["batches"] == [1, 2]
    # TF32 and bf16 are CUDA modes: on a CPU they are named as skipped, not run as fp32 under another name.
    assert [(r["precision"], r["batch"]) for r in out["results"]] == [("fp32", 1), ("fp32", 2)]
    assert out["skipped"] == ["tf32 (needs CUDA)", "bf16 (needs CUDA)"] and out["measured"] == 4
    for row in out["results"]:
        assert row["encode_speedup_vs_baseline"] == round(row["encode_images_per_s"] / next(
            b["encode_images_per_s"] for b in out["baseline"] if b["batch"] == row["batch"]), 2)
    # The reference eager loop (the model's own encode/decode_code) against the serving code (frozen
    # codebooks, fp32 search): two paths, one answer.
    assert [b["batch"] for b in out["baseline"]] == [1, 2]
    assert all(b["token_agreement_with_fp32"] == 1.0 and b["decode_max_level_diff_vs_fp32"] == 0 for b in out["baseline"])


def test_the_worker_precision_sets_tf32_and_cudnn_autotuning_for_cuda():
    """What `--precision tf32|fp32` switches on a CUDA device (the switches exist without a GPU)."""
    saved, benchmark = tf32_state(), torch.backends.cudnn.benchmark
    try:
        configure_matmul(torch.device("cuda"), "tf32")
        assert tf32_enabled() == (True, True) and torch.backends.cudnn.benchmark
        configure_matmul(torch.device("cuda"), "fp32")
        assert tf32_enabled() == (False, False)
        set_tf32(True)
        configure_matmul(torch.device("cpu"), "fp32")  # a CPU worker leaves CUDA's switches alone
        assert tf32_enabled() == (True, True)
    finally:
        restore_tf32(saved)
        torch.backends.cudnn.benchmark = benchmark
