"""Sample reconstruction grids written at each evaluation, and the request fields described as data (`fqgan.spec_fields`)."""
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from fqgan import distributed
from fqgan.config import preset
from fqgan.data import eval_loader
from fqgan.events import Events
from fqgan.metrics import to_uint8
from fqgan.model import FQGAN
from fqgan.sample_grid import GAP, MAX_SAMPLES, grid_image, sample_file, write_sample_grid
from fqgan.spec_fields import SECTIONS, describe
from fqgan.stopping import StopFlag
from fqgan.train.spec import TrainSpec
from fqgan.train.trainer import Trainer
from train_helpers import TRAINER_DIR, cli_env, make_spec, one_thread, write_corrupt, write_images  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")


def cell(grid: np.ndarray, row: int, column: int, size: int) -> np.ndarray:
    y = GAP + row * (size + GAP)
    x = GAP + column * (size + GAP)
    return grid[y:y + size, x:x + size]


def test_grid_puts_inputs_above_their_reconstructions():
    torch.manual_seed(0)
    inputs = torch.rand(3, 3, 8, 8) * 2 - 1
    recons = torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8)
    grid = np.asarray(grid_image(inputs, recons))
    assert grid.shape == (2 * 8 + 3 * GAP, 3 * 8 + 4 * GAP, 3)
    for i in range(3):
        assert np.array_equal(cell(grid, 0, i, 8), to_uint8(inputs[i]).permute(1, 2, 0).numpy())
        assert np.array_equal(cell(grid, 1, i, 8), recons[i].permute(1, 2, 0).numpy())


def test_write_sample_grid_reconstructs_through_the_tokens_and_skips_unreadable_files(tmp_path):
    folder = str(tmp_path / "images")
    paths = write_images(folder, 3, nested=False, size=(40, 48))
    paths.insert(1, write_corrupt(folder))
    torch.manual_seed(0)
    model = FQGAN(preset("test-8", "dual", image_size=32)).eval()
    written = write_sample_grid(model, paths, 32, str(tmp_path / "out"), 7, torch.device("cpu"))
    assert written == sample_file(str(tmp_path / "out"), 7) == str(tmp_path / "out" / "samples" / "step-000007.png")
    assert not os.path.exists(written + ".partial")
    grid = np.asarray(Image.open(written).convert("RGB"))
    assert grid.shape == (2 * 32 + 3 * GAP, 3 * 32 + 4 * GAP, 3)  # the corrupt file is left out
    images = torch.cat([b.images for b in eval_loader([p for p in paths if "broken" not in p], 32, 8)])
    with torch.no_grad():
        expected = to_uint8(model.decode_code(model.encode(images).indices))
    for i in range(3):
        assert np.array_equal(cell(grid, 0, i, 32), to_uint8(images[i]).permute(1, 2, 0).numpy())
        assert np.array_equal(cell(grid, 1, i, 32), expected[i].permute(1, 2, 0).numpy())
    assert model.training is False  # the caller's mode is kept


def test_at_most_max_samples_and_nothing_for_no_readable_image(tmp_path):
    paths = write_images(str(tmp_path / "many"), MAX_SAMPLES + 3, nested=False)
    model = FQGAN(preset("test-8", "dual", image_size=32)).train()
    written = write_sample_grid(model, paths, 32, str(tmp_path / "out"), 1, torch.device("cpu"))
    assert Image.open(written).size == (MAX_SAMPLES * 32 + (MAX_SAMPLES + 1) * GAP, 2 * 32 + 3 * GAP)
    assert model.training is True
    broken = [write_corrupt(str(tmp_path / "bad"))]
    assert write_sample_grid(model, broken, 32, str(tmp_path / "out"), 2, torch.device("cpu")) is None


class EvalWatcher(io.StringIO):
    """An event stream that notes, as each `eval` line is written, whether its sample grid is on disk already."""

    def __init__(self, output_dir: str):
        super().__init__()
        self.output_dir = output_dir
        self.seen = []

    def write(self, text: str) -> int:
        event = json.loads(text)
        if event["event"] == "eval":
            self.seen.append((event["step"], os.path.exists(sample_file(self.output_dir, event["step"]))))
        return super().write(text)


def test_each_evaluation_of_a_run_writes_its_grid_before_the_eval_event(tmp_path):
    dataset = str(tmp_path / "images")
    write_images(dataset, 6)
    out = str(tmp_path / "out")
    spec = TrainSpec.from_dict(make_spec(dataset, out, steps=4, eval_every=2, eval_images=2))
    stream = EvalWatcher(out)
    trainer = Trainer(spec, Events(stream=stream), distributed.DistInfo(0, 1, 0), torch.device("cpu"), "fp32",
                      StopFlag())
    trainer.setup()
    assert trainer.run() == 0
    assert stream.seen == [(2, True), (4, True)]
    assert sorted(os.listdir(os.path.join(out, "samples"))) == ["step-000002.png", "step-000004.png"]
    assert Image.open(sample_file(out, 4)).size == (2 * 32 + 3 * GAP, 2 * 32 + 3 * GAP)  # two held-out images


# ----------------------------------------------------------------------------- spec_fields


def test_every_request_field_is_described_with_the_trainers_default():
    described = describe()
    example = TrainSpec.example().to_dict()
    assert set(described) == set(SECTIONS)
    for section, fields in described.items():
        assert [f["name"] for f in fields] == list(example[section])
        for f in fields:
            assert f["default"] == example[section][f["name"]]
            assert f["type"] in ("boolean", "integer", "number", "string")
            assert f["help"]
    steps = next(f for f in described["hyperparameters"] if f["name"] == "steps")
    assert steps == {**steps, "type": "integer", "nullable": False, "exclusiveMinimum": 0}
    image_size = next(f for f in described["hyperparameters"] if f["name"] == "image_size")
    assert image_size["nullable"] is True and image_size["default"] is None


def check_of(section: str, name: str):
    cls = SECTIONS[section]
    return next(f for f in cls.__dataclass_fields__.values() if f.name == name).metadata["check"]


def test_described_limits_are_the_limits_the_trainer_enforces():
    """Each limit is probed against the field's own check: inside is accepted, just outside refused."""
    probed = 0
    for section, fields in describe().items():
        for f in fields:
            check = check_of(section, f["name"])
            if "enum" in f:
                assert all(check(v) is None for v in f["enum"]) and check("nonsense") is not None
                probed += 1
            if "minimum" in f:
                assert check(f["minimum"]) is None and check(f["minimum"] - 1e-9) is not None
                probed += 1
            if "exclusiveMinimum" in f:
                assert check(f["exclusiveMinimum"]) is not None and check(f["exclusiveMinimum"] + 1e-9) is None
                probed += 1
            if "exclusiveMaximum" in f:
                assert check(f["exclusiveMaximum"]) is not None and check(f["exclusiveMaximum"] - 1e-9) is None
                probed += 1
            if check is not None:
                assert {"enum", "minimum", "exclusiveMinimum"} & set(f), f"{f['name']} has a check but no limits"
    assert probed > 30


def test_cli_prints_the_description_as_json_without_importing_torch():
    proc = subprocess.run([sys.executable, "-m", "fqgan.spec_fields"], cwd=TRAINER_DIR, env=cli_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == describe()
    probe = subprocess.run([sys.executable, "-c", "import sys, fqgan.spec_fields; print('torch' in sys.modules)"],
                           cwd=TRAINER_DIR, env=cli_env(), capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == "False", probe.stderr
