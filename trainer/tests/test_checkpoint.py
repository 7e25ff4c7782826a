"""Checkpoint loading: file formats, safe unpickling, config inference, strict key checks and their messages."""
import argparse
import inspect
import os

import pytest
import torch

from conftest import small_config
from fqgan.checkpoint import (NON_SHAPE_FIELDS, CheckpointError, infer_config, load_checkpoint, read_checkpoint,
                              save_checkpoint)
from fqgan.config import preset
from fqgan.model import FQGAN
from reference_layout import reference_shapes


def make_model(seed=0, **kwargs):
    torch.manual_seed(seed)
    return FQGAN(small_config(**kwargs)).eval()


def assert_same_weights(model, state_dict):
    for key, value in model.state_dict().items():
        assert torch.equal(value, state_dict[key]), key


def shape_fields(config):
    """The fields a state dict's shapes determine (head widths only matter when there are heads)."""
    ignored = set(NON_SHAPE_FIELDS)
    if not config.semantic_heads:
        ignored |= {"semantic_head_widths", "semantic_head_layers"}
    return {k: v for k, v in config.to_dict().items() if k not in ignored}


def test_torch_load_has_weights_only():
    # The safe path: torch >= 1.13 can refuse arbitrary pickled objects itself.
    assert "weights_only" in inspect.signature(torch.load).parameters


@pytest.mark.parametrize("variant", ["triple", "dual"])
@pytest.mark.parametrize("name", ["test-16", "test-8"])
@pytest.mark.parametrize("heads", [True, False])
def test_config_is_inferred_from_shapes(tmp_path, variant, name, heads):
    config = small_config(name, variant, semantic_heads=heads)
    model = FQGAN(config)
    path = tmp_path / "bare.pt"
    torch.save(model.state_dict(), path)  # no stored config: shapes only
    loaded = load_checkpoint(str(path))
    assert shape_fields(loaded.config) == shape_fields(config)
    assert_same_weights(loaded.model, model.state_dict())
    assert not loaded.model.training


def test_stored_config_supplies_what_shapes_cannot(tmp_path):
    config = small_config(adapter_heads=4, disentangle_ratio=0.1)
    path = tmp_path / "ours.pt"
    save_checkpoint(FQGAN(config), str(path))
    assert load_checkpoint(str(path)).config == config


@pytest.mark.parametrize("variant", ["triple", "dual"])
@pytest.mark.parametrize("name, ch_mult", [("VQ-16", (1, 1, 2, 2, 4)), ("VQ-8", (1, 2, 2, 4))])
def test_released_layouts_infer_the_released_presets(variant, name, ch_mult):
    # Shapes only (meta tensors): a release-sized state dict without allocating 600 MB.
    state_dict = {k: torch.empty(s, device="meta") for k, s in reference_shapes(variant, ch_mult).items()}
    assert infer_config(state_dict) == preset(name, variant)


def test_reference_checkpoint_dict_with_args_and_optimizer(tmp_path):
    model = make_model()
    path = tmp_path / "0005000.pt"
    torch.save({
        "model": model.state_dict(),
        "optimizer": torch.optim.Adam(model.parameters()).state_dict(),
        "discriminator": {"main.0.weight": torch.zeros(2)},
        "steps": 5000,
        "args": argparse.Namespace(vq_model="VQ-16", codebook_size=256, with_clip_supervision=True),
    }, path)
    assert_same_weights(load_checkpoint(str(path)).model, model.state_dict())


def test_ema_weights_on_request(tmp_path):
    model, ema = make_model(seed=0), make_model(seed=1)
    path = tmp_path / "with_ema.pt"
    torch.save({"model": model.state_dict(), "ema": ema.state_dict()}, path)
    assert_same_weights(load_checkpoint(str(path), weights="ema").model, ema.state_dict())
    assert_same_weights(load_checkpoint(str(path), weights="model").model, model.state_dict())


def test_ema_missing_says_so(tmp_path):
    path = tmp_path / "no_ema.pt"
    torch.save({"model": make_model().state_dict(), "steps": 1}, path)
    with pytest.raises(CheckpointError, match="no 'ema' weights.*--weights model"):
        load_checkpoint(str(path), weights="ema")


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module._orig_mod."])
def test_wrapper_prefixes_are_stripped(tmp_path, prefix):
    model = make_model()
    path = tmp_path / "ddp.pt"
    torch.save({"model": {prefix + k: v for k, v in model.state_dict().items()}}, path)
    assert_same_weights(load_checkpoint(str(path)).model, model.state_dict())


def test_arbitrary_objects_are_refused_without_running_them(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pt"
    torch.save({"model": make_model().state_dict(), "extra": Payload()}, path)
    with pytest.raises(CheckpointError, match="refused because unpickling them could run arbitrary code"):
        read_checkpoint(str(path))
    assert not marker.exists()


def test_dual_checkpoint_loaded_as_triple_is_named(tmp_path):
    path = tmp_path / "dual.pt"
    torch.save({"model": make_model(variant="dual").state_dict()}, path)
    with pytest.raises(CheckpointError, match="looks like a dual checkpoint"):
        load_checkpoint(str(path), config=small_config(variant="triple"))


def test_semantic_heads_mismatch_is_named(tmp_path):
    path = tmp_path / "noheads.pt"
    torch.save({"model": make_model(semantic_heads=False).state_dict()}, path)
    with pytest.raises(CheckpointError, match="trained without semantic supervision"):
        load_checkpoint(str(path), config=small_config())


def test_optimizer_state_is_named(tmp_path):
    path = tmp_path / "optim.pt"
    torch.save(torch.optim.Adam(make_model().parameters()).state_dict(), path)
    with pytest.raises(CheckpointError, match="optimizer state"):
        load_checkpoint(str(path))


def test_missing_keys_are_listed(tmp_path):
    state = make_model().state_dict()
    del state["decoder.conv_out.weight"], state["post_quant_conv.bias"]
    path = tmp_path / "partial.pt"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError, match=r"2 missing keys \(decoder.conv_out.weight, post_quant_conv.bias\)"):
        load_checkpoint(str(path))


def test_wrong_shapes_are_listed(tmp_path):
    state = make_model().state_dict()
    state["post_quant_conv.weight"] = torch.zeros(32, 7, 1, 1)
    path = tmp_path / "shapes.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"wrong shapes \(post_quant_conv.weight: checkpoint \(32, 7, 1, 1\)"):
        load_checkpoint(str(path))


def test_not_a_tokenizer_state_dict(tmp_path):
    path = tmp_path / "disc.pt"
    torch.save({"main.0.weight": torch.zeros(3), "main.0.bias": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="look like a discriminator"):
        load_checkpoint(str(path))


@pytest.mark.parametrize("content, message", [
    (b"", "the file is empty"),
    (b"model weights go here\n", "the file is text"),
    (b"\x89PNG\r\n\x1a\n" + bytes(64), "PNG image"),
])
def test_non_checkpoint_files(tmp_path, content, message):
    path = tmp_path / "weights.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(str(path))


def test_truncated_file(tmp_path):
    path = tmp_path / "full.pt"
    save_checkpoint(make_model(), str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        read_checkpoint(str(path))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(str(tmp_path / "nope.pt"))
    with pytest.raises(CheckpointError, match="is a directory"):
        read_checkpoint(str(tmp_path))
