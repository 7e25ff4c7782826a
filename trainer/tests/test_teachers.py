"""Semantic teachers: loading DINOv2 / CLIP towers from local files, and the preprocessing contract."""
import json
import os

import pytest
import torch
import torch.nn.functional as F

from fqgan.teachers import Teacher, load_teacher
from fqgan.weights_io import load_safetensors, save_safetensors
from teacher_fixtures import save_pretrained, tiny_backbone
from train_helpers import one_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")


def test_safetensors_round_trip(tmp_path):
    tensors = {"a": torch.randn(2, 3), "b": torch.arange(5), "c": torch.randn(4).to(torch.bfloat16),
               "d": torch.empty(0)}
    save_safetensors(tensors, str(tmp_path / "t.safetensors"))
    back = load_safetensors(str(tmp_path / "t.safetensors"))
    assert set(back) == set(tensors)
    for name, tensor in tensors.items():
        assert back[name].dtype == tensor.dtype and torch.equal(back[name], tensor)


@pytest.mark.parametrize("kind,dim", [("dino", 32), ("clip", 64)])
def test_directory_and_bare_file_load_the_same_tower(tmp_path, kind, dim):
    backbone = tiny_backbone(kind, dim)
    save_pretrained(backbone, kind, str(tmp_path / kind))
    bare = str(tmp_path / f"{kind}.bin")
    prefix = "dinov2." if kind == "dino" else ""  # wrappers some files add are stripped
    torch.save({prefix + k: v for k, v in backbone.state_dict().items()}, bare)

    images = torch.rand(2, 3, 48, 40) * 2 - 1
    from_dir = load_teacher(kind, str(tmp_path / kind), loader="native")
    from_file = load_teacher(kind, bare, loader="native")
    assert from_dir.dim == from_file.dim == dim
    out = from_dir(images)
    assert out.shape == (2, dim) and not out.requires_grad
    assert torch.allclose(out, from_file(images), atol=1e-6)


def test_preprocessing_is_the_references(tmp_path):
    backbone = tiny_backbone("clip", 64)
    teacher = Teacher("clip", backbone, 64)
    images = torch.rand(1, 3, 32, 32) * 2 - 1
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    pixels = (F.interpolate(images * 0.5 + 0.5, size=(224, 224)) - mean) / std  # nearest, as the reference
    assert torch.allclose(teacher(images), backbone(pixels), atol=1e-6)
    parent = torch.nn.ModuleDict({"t": teacher}).train()
    assert not parent["t"].training and not any(p.requires_grad for p in teacher.parameters())


def test_dino_interpolates_its_position_grid(tmp_path):
    backbone = tiny_backbone("dino", 32)  # trained grid 4x4; 224 px gives 16x16 patches
    pos = backbone.embeddings._positions(16, 16)
    assert pos.shape == (1, 1 + 256, 32)
    assert torch.equal(pos[:, 0], backbone.embeddings.position_embeddings[:, 0])
    assert torch.equal(backbone.embeddings._positions(4, 4), backbone.embeddings.position_embeddings)


def test_clip_model_files_keep_only_the_vision_tower(tmp_path):
    backbone = tiny_backbone("clip", 64)
    state = {**backbone.state_dict(), "text_model.embeddings.token_embedding.weight": torch.zeros(3, 4),
             "vision_model.embeddings.position_ids": torch.arange(197)[None]}
    folder = tmp_path / "clip-full"
    folder.mkdir()
    torch.save(state, str(folder / "pytorch_model.bin"))
    config = {"model_type": "clip", "vision_config": backbone.config.to_hf("clip"), "text_config": {}}
    (folder / "config.json").write_text(json.dumps(config))
    assert load_teacher("clip", str(folder), loader="native").dim == 64


def test_missing_or_foreign_weights_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_teacher("dino", str(tmp_path / "nowhere"))
    save_pretrained(tiny_backbone("clip", 64), "clip", str(tmp_path / "clip"))
    with open(tmp_path / "clip" / "config.json") as f:
        config = json.load(f)
    os.makedirs(tmp_path / "wrong")
    with open(tmp_path / "wrong" / "config.json", "w") as f:
        json.dump(config, f)
    save_safetensors({"vision_model.post_layernorm.weight": torch.ones(64)},
                     str(tmp_path / "wrong" / "model.safetensors"))
    with pytest.raises(ValueError, match="missing"):
        load_teacher("clip", str(tmp_path / "wrong"), loader="native")


class _Untested:
    """Stands in for an installed transformers package: any use of it is recorded and refused."""

    def __init__(self) -> None:
        self.used = []

    def __getattr__(self, name):
        self.used.append(name)
        raise RuntimeError("the transformers loader was used")


def test_the_native_loader_is_the_default_even_where_transformers_is_installed(tmp_path, monkeypatch):
    import sys

    fake = _Untested()
    monkeypatch.setitem(sys.modules, "transformers", fake)
    save_pretrained(tiny_backbone("dino", 32), "dino", str(tmp_path / "dino"))
    assert load_teacher("dino", str(tmp_path / "dino")).dim == 32
    assert fake.used == []
    # Opting in reaches transformers; a bare file is refused with a reason, an unknown loader by name.
    with pytest.raises(RuntimeError, match="transformers loader was used"):
        load_teacher("dino", str(tmp_path / "dino"), loader="transformers")
    torch.save(tiny_backbone("dino", 32).state_dict(), str(tmp_path / "dino.bin"))
    with pytest.raises(ValueError, match="reads a model directory"):
        load_teacher("dino", str(tmp_path / "dino.bin"), loader="transformers")
    with pytest.raises(ValueError, match="unknown teacher loader 'auto'"):
        load_teacher("dino", str(tmp_path / "dino"), loader="auto")


@pytest.mark.parametrize("kind,dim", [("dino", 64), ("clip", 64)])
def test_transformers_and_native_loaders_agree(tmp_path, kind, dim):
    pytest.importorskip("transformers")  # runs where transformers is installed (the GPU image)
    save_pretrained(tiny_backbone(kind, dim), kind, str(tmp_path / kind))
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    native = load_teacher(kind, str(tmp_path / kind), loader="native")
    hf = load_teacher(kind, str(tmp_path / kind), loader="transformers")
    assert hf.dim == native.dim == dim
    torch.testing.assert_close(hf(images), native(images), atol=1e-4, rtol=1e-4)
