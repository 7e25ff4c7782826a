"""The loop's small parts: EMA, checkpoint files, the event writer, precision choices."""
import io
import json
import os

import pytest
import torch
from torch import nn

from fqgan import amp
from fqgan.ema import EMA
from fqgan.events import Events
from fqgan.train.checkpoint_store import CheckpointStore


def test_ema_averages_parameters_and_copies_buffers():
    model = nn.BatchNorm1d(2)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema = EMA(model, decay=0.75)
    with torch.no_grad():
        model.weight.fill_(3.0)
        model.running_mean.fill_(5.0)
    ema.update(model)
    assert ema.model.weight.tolist() == [1.5, 1.5]  # 0.75 * 1 + 0.25 * 3
    assert ema.model.running_mean.tolist() == [5.0, 5.0]
    assert not any(p.requires_grad for p in ema.model.parameters()) and not ema.model.training


def test_checkpoint_store_writes_atomically_and_keeps_the_newest(tmp_path):
    store = CheckpointStore(str(tmp_path / "checkpoints"), keep=2)
    for step in (10, 20, 30):
        path = store.save({"steps": step}, step)
        assert path.endswith(f"{step:07d}.pt")
    assert store.steps() == [20, 30]
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["0000020.pt", "0000030.pt"]  # no .partial left
    assert torch.load(store.path(30))["steps"] == 30
    CheckpointStore(str(tmp_path / "all"), keep=0).save({}, 1)
    assert CheckpointStore(str(tmp_path / "all"), keep=0).steps() == [1]


def test_events_are_single_line_json_without_nan():
    stream = io.StringIO()
    events = Events(stream=stream)
    events.emit("progress", step=3, losses={"rec": float("nan"), "vq": 0.5}, eta_s=float("inf"))
    Events(enabled=False, stream=stream).emit("progress", step=4)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["event"] == "progress" and isinstance(event["time"], float)
    assert event["losses"] == {"rec": None, "vq": 0.5} and event["eta_s"] is None


def test_precision_choices():
    cpu = torch.device("cpu")
    assert amp.resolve_precision("auto", cpu) == "fp32"
    with pytest.raises(ValueError, match="needs CUDA"):
        amp.resolve_precision("bf16", cpu)
    scaler = amp.grad_scaler(cpu, "fp32")
    assert not scaler.is_enabled()
    loss = torch.tensor(2.0, requires_grad=True)
    assert scaler.scale(loss) is loss  # a pass-through on CPU: one code path for every precision
