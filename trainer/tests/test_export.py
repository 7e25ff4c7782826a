"""The export CLI: model directory + manifest, fixture, and one clean error per bad input."""
import copy
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TRAINER_DIR, small_config
from fqgan.checkpoint import file_sha256, load_checkpoint, load_served_model, save_checkpoint
from fqgan.config import preset
from fqgan.export import OPSET, export_model, write_fixture
from fqgan.model import FQGAN


@pytest.fixture(scope="module")
def random_export(tmp_path_factory):
    """One `--random` export of the small dual preset with a fixture, shared by the tests below."""
    root = tmp_path_factory.mktemp("export")
    out, fixture = root / "models" / "small-dual", root / "fixture"
    proc = subprocess.run(
        [sys.executable, "-m", "fqgan.export", "--random", "--preset", "test-16", "--variant", "dual",
         "--seed", "7", "--out", str(out), "--fixture", str(fixture)],
        cwd=TRAINER_DIR, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out, fixture, json.loads(proc.stdout), proc.stderr


def read_bin(directory, entry):
    dtype = {"float32": "<f4", "int64": "<i8"}[entry["dtype"]]
    return np.fromfile(os.path.join(directory, entry["file"]), dtype=dtype).reshape(entry["shape"])


def test_random_export_writes_the_model_directory(random_export):
    out, _, summary, stderr = random_export
    assert summary["ok"] is True and summary["out"] == str(out)
    assert sorted(os.listdir(out)) == ["checkpoint.pt", "decoder.onnx", "encoder.onnx", "manifest.json"]
    assert not [p for p in os.listdir(out.parent) if p.startswith(".")]  # no staging dir left behind
    assert "exporting encoder.onnx" in stderr

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "fqtok-model" and manifest["format_version"] == 1
    assert (manifest["variant"], manifest["preset"], manifest["downsample"]) == ("dual", "test-16", 16)
    assert manifest["image_size"] == 256 and manifest["grid"] == [16, 16] and manifest["opset"] == OPSET
    assert manifest["codebooks"] == [{"name": "vis", "size": 256, "dim": 4}, {"name": "sem", "size": 256, "dim": 4}]
    assert manifest["encoder"] == {"file": "encoder.onnx", "input": "image", "outputs": ["vis", "sem"]}
    assert manifest["decoder"]["inputs"] == ["vis", "sem"] and manifest["decoder"]["mask"] == "codebook_mask"
    assert manifest["decoder"]["output"] == "image"
    assert manifest["normalization"] == {"input": "x/255*2-1", "output": "clamp(-1,1) then (x+1)*127.5"}
    assert manifest["config"] == preset("test-16", "dual").to_dict()
    assert manifest["checkpoint"] == "checkpoint.pt"
    assert manifest["weights"]["file"] == "checkpoint.pt"  # the embedded weights serve the torch backend too
    assert manifest["source"] == {"kind": "random", "path": None, "sha256": file_sha256(str(out / "checkpoint.pt")),
                                  "weights": "model", "seed": 7, "preset": "test-16"}
    assert manifest["produced_by"]["tool"] == "fqgan.export"
    # every file but the manifest, with its size and checksum: what a reader checks before it loads the folder
    assert manifest["files"] == {name: {"bytes": os.path.getsize(out / name), "sha256": file_sha256(str(out / name))}
                                 for name in ("checkpoint.pt", "decoder.onnx", "encoder.onnx")}
    for name in ("encoder.onnx", "decoder.onnx"):  # the graph's I/O names are stored as plain strings
        data = (out / name).read_bytes()
        assert b"codebook_mask" in data if name == "decoder.onnx" else b"image" in data
        assert b"vis" in data and b"sem" in data


def test_checkpoint_pt_reproduces_the_fixture(random_export):
    out, fixture, _, _ = random_export
    index = json.loads((fixture / "fixture.json").read_text())
    assert index["codebooks"] == ["vis", "sem"] and index["masks"]["partial"] == [1.0, 0.0]
    model = load_checkpoint(str(out / "checkpoint.pt")).model
    images = torch.from_numpy(read_bin(fixture, index["tensors"]["input"]).copy())
    assert images.shape == (2, 3, 256, 256) and images.min() >= -1 and images.max() <= 1
    with torch.no_grad():
        tokens = model.encode(images).indices
        partial = model.decode_code(tokens, mask=[1.0, 0.0])
    for name in ("vis", "sem"):
        np.testing.assert_array_equal(tokens[name].numpy(), read_bin(fixture, index["tensors"][f"tokens_{name}"]))
    np.testing.assert_allclose(partial.numpy(), read_bin(fixture, index["tensors"]["decoded_partial"]), atol=1e-4)


def test_checkpoint_export_records_the_source(tmp_path, run_cli):
    torch.manual_seed(0)
    model, ema = FQGAN(preset("test-8", "triple")), FQGAN(preset("test-8", "triple"))
    path = tmp_path / "trained.pt"
    save_checkpoint(model, str(path), ema=ema.state_dict())
    out = tmp_path / "converted"
    code, summary, stderr = run_cli("fqgan.export", ["--checkpoint", str(path), "--weights", "ema", "--out", str(out)])
    assert code == 0, stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"] == {"kind": "checkpoint", "path": str(path), "sha256": file_sha256(str(path)),
                                  "weights": "ema", "seed": None, "preset": "test-8"}
    assert manifest["checkpoint"] == str(path) and manifest["grid"] == [32, 32]
    assert summary["files"].keys() == {"encoder.onnx", "decoder.onnx", "manifest.json", "weights.pt"}
    # The torch backend's serving weights: the chosen (EMA) weights alone, listed with their sha256.
    assert manifest["weights"] == {"file": "weights.pt", "format": "fqgan-state-dict",
                                   "sha256": file_sha256(str(out / "weights.pt"))}
    served = load_checkpoint(str(out / "weights.pt")).model.state_dict()
    assert all(torch.equal(served[k], v) for k, v in ema.state_dict().items())

    # Exporting again replaces the directory as a whole.
    (out / "stale.txt").write_text("left over")
    code, _, stderr = run_cli("fqgan.export", ["--checkpoint", str(path), "--out", str(out)])
    assert code == 0, stderr
    assert not (out / "stale.txt").exists()
    assert json.loads((out / "manifest.json").read_text())["source"]["weights"] == "model"


def _bad_checkpoints(tmp_path):
    torch.manual_seed(0)
    state = FQGAN(preset("test-16", "dual")).state_dict()
    good = tmp_path / "good.pt"
    torch.save({"model": state}, good)
    data = good.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 3])
    (tmp_path / "notes.pt").write_text("these are not weights\n")
    Image.new("RGB", (8, 8), "red").save(tmp_path / "picture.pt", format="PNG")
    torch.save({"model": {**state, "post_quant_conv.weight": torch.zeros(32, 3, 1, 1)}}, tmp_path / "shapes.pt")
    torch.save({"model": {k: v for k, v in state.items() if not k.startswith("decoder.conv_out")}},
               tmp_path / "missing.pt")


@pytest.mark.parametrize("file_name, message", [
    ("absent.pt", "does not exist"),
    ("notes.pt", "is not a PyTorch checkpoint: the file is text"),
    ("picture.pt", "is not a PyTorch checkpoint: the file is a PNG image"),
    ("truncated.pt", "probably truncated"),
    ("shapes.pt", r"wrong shapes \(post_quant_conv.weight: checkpoint \(32, 3, 1, 1\) vs model \(32, 8, 1, 1\)\)"),
    ("missing.pt", r"2 missing keys \(decoder.conv_out.bias, decoder.conv_out.weight\)"),
])
def test_bad_checkpoints_fail_with_one_clear_message(tmp_path, run_cli, file_name, message):
    _bad_checkpoints(tmp_path)
    out = tmp_path / "out"
    code, summary, stderr = run_cli("fqgan.export", ["--checkpoint", str(tmp_path / file_name), "--out", str(out)])
    assert code == 1
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("fqgan.export: error: ")
    assert summary["ok"] is False
    assert re.search(message, summary["error"]), summary["error"]
    assert not out.exists()


def test_refuses_to_replace_a_directory_that_is_not_a_model(tmp_path, run_cli):
    (tmp_path / "keep.txt").write_text("important")
    code, summary, stderr = run_cli("fqgan.export", ["--random", "--preset", "test-16", "--out", str(tmp_path)])
    assert code == 1 and "not a model directory" in summary["error"]
    assert (tmp_path / "keep.txt").read_text() == "important"


def test_served_model_is_rebuilt_from_checkpoint_or_seed(random_export, tmp_path):
    out, fixture, _, _ = random_export
    index = json.loads((fixture / "fixture.json").read_text())
    images = torch.from_numpy(read_bin(fixture, index["tensors"]["input"]).copy())
    expected = read_bin(fixture, index["tensors"]["tokens_sem"])

    manifest = json.loads((out / "manifest.json").read_text())
    seeded = tmp_path / "seeded"
    seeded.mkdir()
    (seeded / "manifest.json").write_text(json.dumps({**manifest, "checkpoint": None}))
    for model_dir in (out, seeded):
        with torch.no_grad():
            tokens = load_served_model(str(model_dir)).encode(images).indices["sem"]
        np.testing.assert_array_equal(tokens.numpy(), expected)


NODE = shutil.which("node")
ORT_ENCODE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ort_encode.mjs")


@pytest.mark.skipif(NODE is None, reason="runs the exported graph in the service's onnxruntime-node")
def test_codes_without_l2_norm_export_the_euclidean_search_and_its_margins(tmp_path, run_cli):
    """A checkpoint whose codebooks are not L2-normalised: ONNX tokens, PyTorch tokens and the fixture's
    margins all follow the Euclidean search (float64 distances are the oracle)."""
    torch.manual_seed(0)
    model = FQGAN(preset("test-16", "triple", codebook_l2_norm=False)).eval()
    with torch.no_grad():
        for name in model.codebook_names:  # codes at the scale of the encoder's vectors, as after training
            model.quantizer(name).embedding.weight.normal_(0, 0.5)
    save_checkpoint(model, str(tmp_path / "euclidean.pt"))
    out, fixture = tmp_path / "model", tmp_path / "fixture"
    code, _, stderr = run_cli("fqgan.export", ["--checkpoint", str(tmp_path / "euclidean.pt"), "--out", str(out),
                                               "--fixture", str(fixture)], timeout=300)
    assert code == 0, stderr
    assert json.loads((out / "manifest.json").read_text())["config"]["codebook_l2_norm"] is False
    index = json.loads((fixture / "fixture.json").read_text())
    proc = subprocess.run([NODE, ORT_ENCODE, str(out), str(fixture)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    onnx_tokens = json.loads(proc.stdout)
    images = torch.from_numpy(read_bin(fixture, index["tensors"]["input"]).copy())
    with torch.no_grad():
        vectors = model.pre_quant(images)
    for name in model.codebook_names:
        z = vectors[name].permute(0, 2, 3, 1).reshape(-1, model.config.codebook_embed_dim).double()
        nearest = (torch.cdist(z, model.quantizer(name).embedding.weight.detach().double()) ** 2).topk(2, largest=False)
        gap = (nearest.values[:, 1] - nearest.values[:, 0]).numpy()
        tokens = read_bin(fixture, index["tensors"][f"tokens_{name}"]).reshape(-1)
        margins = read_bin(fixture, index["tensors"][f"margins_{name}"]).reshape(-1)
        np.testing.assert_allclose(margins, gap, atol=1e-4, rtol=1e-4)
        clear = margins > 1e-4  # below this, float32 rounding may pick either code (test/parity.test.ts)
        assert clear.mean() > 0.9, f"{name}: too few clear tokens to compare"
        np.testing.assert_array_equal(tokens[clear], nearest.indices[:, 0].numpy()[clear])
        np.testing.assert_array_equal(np.array(onnx_tokens[name])[clear], tokens[clear])


@pytest.mark.skipif(NODE is None, reason="runs the exported graph in the service's onnxruntime-node")
def test_export_works_from_a_cpu_float_copy_whatever_the_model_trained_in(tmp_path):
    """The trainer hands over its model as it trained: on the GPU, in train mode, maybe not float32.
    The CPU float32 example inputs of the trace meet float64 weights as they would meet CUDA weights
    (the trace fails); float64 is the foreign placement a CPU-only suite can make."""
    torch.manual_seed(0)
    model = FQGAN(small_config())
    reference = copy.deepcopy(model).eval()
    trained = model.double().train()
    out = tmp_path / "model"
    export_model(trained, str(out), {"kind": "test"}, None, None, embed_checkpoint=False)
    assert trained.training and next(trained.parameters()).dtype == torch.float64  # the caller's model as it was

    served = load_checkpoint(str(out / "weights.pt")).model.state_dict()
    for key, value in reference.state_dict().items():
        assert served[key].dtype == value.dtype and served[key].device.type == "cpu" and torch.equal(served[key], value), key
    fixture = tmp_path / "fixture"
    index = write_fixture(reference, str(fixture))
    proc = subprocess.run([NODE, ORT_ENCODE, str(out), str(fixture)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for name, tokens in json.loads(proc.stdout).items():
        expected = read_bin(fixture, index["tensors"][f"tokens_{name}"]).reshape(-1)
        clear = read_bin(fixture, index["tensors"][f"margins_{name}"]).reshape(-1) > 1e-4
        np.testing.assert_array_equal(np.array(tokens)[clear], expected[clear])
