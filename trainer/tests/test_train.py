"""The `python -m fqgan.train` contract: spec validation, events, learning, checkpoints, resume,
fine-tuning, cancellation."""
import argparse
import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
import typing
from types import SimpleNamespace

import pytest
import torch

from fqgan import distributed
from fqgan.checkpoint import load_checkpoint, read_checkpoint
from fqgan.config import preset
from fqgan.data import eval_loader
from fqgan.events import Events
from fqgan.model import FQGAN
from fqgan.stopping import StopFlag
from fqgan.train.spec import TrainSpec
from fqgan.train.trainer import Trainer
from train_helpers import (TRAINER_DIR, cli_env, make_spec, of_kind, one_thread, parse_events,  # noqa: F401
                           run_train, save_spec, write_corrupt, write_images, write_lpips_weights, write_teachers)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_assets")
    dataset = str(root / "images")
    write_images(dataset, 8)
    corrupt = write_corrupt(os.path.join(dataset, "class1"))
    vgg, lin = write_lpips_weights(str(root / "lpips"))
    dino, clip = write_teachers(str(root / "teachers"))
    return SimpleNamespace(dataset=dataset, corrupt=corrupt, vgg=vgg, lin=lin, dino=dino, clip=clip)


def spec_field_names(cls: type, prefix: str = "") -> set:
    """Every dotted leaf field of the spec dataclasses."""
    hints = typing.get_type_hints(cls)
    names = set()
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            names |= spec_field_names(hints[f.name], prefix + f.name + ".")
        else:
            names.add(prefix + f.name)
    return names


def spec_file(tmp_path, assets, name="spec.json", **hp):
    spec = make_spec(assets.dataset, str(tmp_path / "out"), **hp)
    return save_spec(spec, str(tmp_path / name)), spec


# ----------------------------------------------------------------------------- the spec


def test_example_spec_is_complete_and_round_trips():
    proc = subprocess.run([sys.executable, "-m", "fqgan.train", "--example-spec"], cwd=TRAINER_DIR, env=cli_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    values = json.loads(proc.stdout)
    assert TrainSpec.from_dict(values).to_dict() == values

    def flatten(d, prefix=""):
        nested = lambda key, v: isinstance(v, dict) and key != "overrides"  # noqa: E731
        return {k for key, v in d.items()
                for k in (flatten(v, f"{prefix}{key}.") if nested(key, v) else {prefix + key})}

    assert flatten(values) == set(spec_field_names(TrainSpec))
    assert values["hyperparameters"]["disc_start"] == 20000 and values["weights"]["dino"].startswith("/path/to/")


def test_check_refuses_the_example_placeholders(tmp_path):
    path = save_spec(TrainSpec.example().to_dict(), str(tmp_path / "example.json"))
    code, events, _ = run_train(["--spec", path, "--check"])
    assert code == 2
    assert {e["field"] for e in events} == {"dataset", "output_dir", "weights.lpips_vgg", "weights.lpips_lin",
                                           "weights.dino", "weights.clip"}


def test_check_accepts_a_valid_spec_without_importing_torch(tmp_path, assets):
    path, _ = spec_file(tmp_path, assets)
    code, events, _ = run_train(["--spec", path, "--check"])
    assert code == 0 and [e["event"] for e in events] == ["valid"]
    probe = ("import sys; from fqgan.train.spec import TrainSpec; from fqgan.train.validate import check_spec; "
             f"import json; print(check_spec(TrainSpec.from_dict(json.load(open({path!r}))))); "
             "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=TRAINER_DIR, env=cli_env(), capture_output=True,
                         text=True, timeout=60).stdout.split()
    assert out == ["[]", "False"]


def test_check_names_every_bad_field(tmp_path, assets):
    spec = make_spec(assets.dataset, str(tmp_path / "out"), lr=-1, disc_loss="wasserstein", batch_size=2.5,
                     perceptual_weight=1.0, semantic_weight=0.5, image_size=64)
    spec["hyperparameters"]["lrr"] = 1
    spec["weights"] = {"clip": str(tmp_path / "missing-clip"), "teacher_loader": "auto"}
    code, events, _ = run_train(["--spec", save_spec(spec, str(tmp_path / "bad.json")), "--check"])
    assert code == 2
    fields = {e["field"] for e in events}
    assert fields == {"hyperparameters.lr", "hyperparameters.disc_loss", "hyperparameters.batch_size",
                      "hyperparameters.lrr", "weights.teacher_loader"}  # type errors stop parsing before file checks
    assert all(e["event"] == "error" and e["field"] in e["message"] for e in events)

    spec = make_spec(assets.dataset, str(tmp_path / "out"), perceptual_weight=1.0, semantic_weight=0.5, image_size=64)
    spec["weights"] = {"clip": str(tmp_path / "missing-clip")}
    code, events, _ = run_train(["--spec", save_spec(spec, str(tmp_path / "bad2.json")), "--check"])
    assert code == 2
    assert {e["field"] for e in events} == {"weights.lpips_vgg", "weights.lpips_lin", "weights.clip",
                                           "weights.dino", "hyperparameters.image_size"}


def test_check_refuses_an_empty_dataset_and_a_too_large_batch(tmp_path):
    write_corrupt(str(tmp_path / "junk"))
    spec = make_spec(str(tmp_path / "junk"), str(tmp_path / "out"))
    code, events, _ = run_train(["--spec", save_spec(spec, str(tmp_path / "s.json")), "--check"])
    assert code == 2 and [e["field"] for e in events] == ["dataset"]
    write_images(str(tmp_path / "few"), 3)
    spec = make_spec(str(tmp_path / "few"), str(tmp_path / "out"), batch_size=2, eval_images=2)
    code, events, _ = run_train(["--spec", save_spec(spec, str(tmp_path / "s2.json"))])
    assert code == 2 and [e["field"] for e in events] == ["hyperparameters.batch_size"]


def test_default_batch_and_holdout_fit_a_small_dataset(tmp_path):
    """With batch_size and eval_images left null, 6 images train: one is held out, the batch is the other 5."""
    write_images(str(tmp_path / "six"), 6)
    spec = make_spec(str(tmp_path / "six"), str(tmp_path / "out"), steps=1, eval_every=0)
    del spec["hyperparameters"]["batch_size"], spec["hyperparameters"]["eval_images"]
    path = save_spec(spec, str(tmp_path / "s.json"))
    code, events, stderr = run_train(["--spec", path, "--check"])
    assert code == 0 and [e["event"] for e in events] == ["valid"], events
    code, events, stderr = run_train(["--spec", path])
    assert code == 0, stderr
    started = of_kind(events, "started")[0]
    assert (started["dataset"], started["eval_images"], started["batch_size"]) == (5, 1, 5)
    # An explicit hold-out of everything is refused, naming its field once.
    spec["hyperparameters"]["eval_images"] = 6
    code, events, _ = run_train(["--spec", save_spec(spec, str(tmp_path / "all.json")), "--check"])
    assert code == 2 and [e["field"] for e in events] == ["hyperparameters.eval_images"]
    assert events[0]["message"].count("hyperparameters.eval_images") == 1


def test_dual_models_need_no_dino_teacher(tmp_path, assets):
    spec = make_spec(assets.dataset, str(tmp_path / "out"), semantic_weight=0.5)
    spec["model"] = {"preset": "test-8", "variant": "dual", "overrides": {"image_size": 32}}
    spec["weights"] = {"clip": assets.clip}
    code, events, _ = run_train(["--spec", save_spec(spec, str(tmp_path / "dual.json")), "--check"])
    assert code == 0, events


# ----------------------------------------------------------------------------- training


def test_tiny_model_halves_its_reconstruction_loss(tmp_path, assets):
    spec = TrainSpec.from_dict(make_spec(assets.dataset, str(tmp_path / "out"), steps=24, lr=2e-3, eval_images=0,
                                         disentangle_ratio=0.0))
    stream = io.StringIO()
    trainer = Trainer(spec, Events(stream=stream), distributed.DistInfo(0, 1, 0), torch.device("cpu"), "fp32",
                      StopFlag())
    trainer.setup()
    fixed = next(iter(eval_loader(trainer.train_paths, 32, batch_size=8))).images

    def rec_loss():
        trainer.model.eval()
        with torch.no_grad():
            loss = torch.mean((trainer.model(fixed).reconstruction - fixed) ** 2).item()
        trainer.model.train()
        return loss

    before = rec_loss()
    assert trainer.run() == 0
    after = rec_loss()
    assert after <= 0.5 * before, (before, after)
    events = parse_events(stream.getvalue())
    assert [e["event"] for e in events][-2:] == ["exported", "finished"]


def test_full_objective_run_emits_the_event_contract(tmp_path, assets):
    path, spec = spec_file(tmp_path, assets, steps=3, perceptual_weight=1.0, semantic_weight=0.5, disc_start=2,
                           adaptive_weight=True, disc_loss="non-saturating",
                           gen_loss="non-saturating", ema=True, entropy_loss_ratio=0.03, checkpoint_every=2,
                           eval_every=2, log_every=1)
    spec["weights"] = {"lpips_vgg": assets.vgg, "lpips_lin": assets.lin, "dino": assets.dino, "clip": assets.clip}
    save_spec(spec, path)
    code, events, stderr = run_train(["--spec", path])
    assert code == 0, stderr
    kinds = [e["event"] for e in events]
    assert kinds == ["started", "progress", "progress", "checkpoint", "eval", "progress", "checkpoint", "eval",
                     "exported", "finished"]
    started = events[0]
    assert started["world_size"] == 1 and started["dataset"] == 6 and started["skipped"] == 1
    assert started["skipped_files"] == [assets.corrupt] and assets.corrupt in stderr

    first, second = of_kind(events, "progress")[:2]
    codebook_terms = {f"{t}_{c}" for t in ("vq", "commit", "entropy") for c in ("vis", "sem_mid", "sem_high")}
    common = {"rec", "perceptual", "semantic_sem_mid", "semantic_sem_high", "disentangle", "total"} | codebook_terms
    assert set(first["losses"]) == common  # the discriminator starts at step 2
    assert set(second["losses"]) == common | {"gen_adv", "disc"} and 0 < second["gan"]["adaptive_weight"]
    assert set(first["usage"]) == {"vis", "sem_mid", "sem_high"}
    assert first["step"] == 1 and first["total"] == 3 and first["images_per_s"] > 0 and first["eta_s"] >= 0

    evaluation = of_kind(events, "eval")[-1]
    assert evaluation["images"] == 2 and 0 < evaluation["psnr"] < 100 and -1 <= evaluation["ssim"] <= 1
    model_dir = events[-2]["path"]
    # weights.pt: the exported (EMA) weights the torch backend serves, listed in the manifest
    assert sorted(os.listdir(model_dir)) == ["decoder.onnx", "encoder.onnx", "manifest.json", "weights.pt"]
    with open(os.path.join(model_dir, "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["weights"]["file"] == "weights.pt"
    assert manifest["source"]["weights"] == "ema" and manifest["source"]["steps"] == 3

    checkpoint = of_kind(events, "checkpoint")[-1]["path"]
    assert checkpoint.endswith(os.path.join("checkpoints", "0000003.pt"))
    state = read_checkpoint(checkpoint)
    assert {"model", "optimizer", "discriminator", "optimizer_disc", "steps", "args", "ema"} <= set(state)
    assert state["steps"] == 3 and state["args"]["hyperparameters"]["disc_loss"] == "non-saturating"
    loaded = load_checkpoint(checkpoint, "ema")
    FQGAN(loaded.config).load_state_dict(state["model"])  # strict, as the reference's resume does


def test_resume_reproduces_an_uninterrupted_run(tmp_path, assets):
    hp = dict(steps=4, disc_start=2, ema=True, checkpoint_every=2, log_every=1, entropy_loss_ratio=0.03)
    path, _ = spec_file(tmp_path, assets, **hp)
    code, straight, stderr = run_train(["--spec", path])
    assert code == 0, stderr
    middle = of_kind(straight, "checkpoint")[0]["path"]
    spec = make_spec(assets.dataset, str(tmp_path / "resumed"), **hp)
    spec["resume"] = middle
    code, resumed, stderr = run_train(["--spec", save_spec(spec, str(tmp_path / "resume.json"))])
    assert code == 0, stderr
    assert resumed[0]["start_step"] == 2
    expected = {e["step"]: e["losses"] for e in of_kind(straight, "progress") if e["step"] > 2}
    got = {e["step"]: e["losses"] for e in of_kind(resumed, "progress")}
    assert sorted(got) == [3, 4] and set(got[4]) == set(expected[4])
    for step in (3, 4):
        for name, value in expected[step].items():
            assert got[step][name] == pytest.approx(value, rel=1e-5, abs=1e-7), (step, name)


def test_finetune_from_a_released_style_checkpoint(tmp_path, assets):
    torch.manual_seed(3)
    released = FQGAN(preset("test-8", "triple", image_size=32, semantic_heads=False))
    base = str(tmp_path / "released.pt")
    # Released files hold the training args as an argparse.Namespace, and no semantic heads here.
    torch.save({"model": released.state_dict(), "steps": 400000, "args": argparse.Namespace(lr=1e-4)}, base)
    spec = make_spec(assets.dataset, str(tmp_path / "out"), steps=2, semantic_weight=0.5)
    spec.update(base_checkpoint=base, model={"variant": "triple"}, weights={"dino": assets.dino, "clip": assets.clip})
    code, events, stderr = run_train(["--spec", save_spec(spec, str(tmp_path / "ft.json"))])
    assert code == 0, (events, stderr)
    assert events[0]["start_step"] == 0 and [e["step"] for e in of_kind(events, "progress")] == [1, 2]
    assert "semantic_sem_mid" in of_kind(events, "progress")[0]["losses"] and "no semantic heads" in stderr
    state = read_checkpoint(of_kind(events, "checkpoint")[-1]["path"])
    assert state["steps"] == 2 and "mid_sem_feat_pred.class_embedding" in state["model"]

    spec.update(base_weights="ema")
    code, events, _ = run_train(["--spec", save_spec(spec, str(tmp_path / "ft-ema.json"))])
    assert code == 2 and events[0]["field"] == "base_checkpoint" and "ema" in events[0]["message"].lower()
    spec.update(base_weights="model", model={"variant": "dual"})
    code, events, _ = run_train(["--spec", save_spec(spec, str(tmp_path / "ft-dual.json"))])
    assert code == 2 and events[0]["field"] == "model.variant"


def test_sigterm_saves_a_loadable_checkpoint(tmp_path, assets):
    path, spec = spec_file(tmp_path, assets, steps=10000, log_every=1)
    spec["device"]["num_workers"] = 1
    save_spec(spec, path)
    proc = subprocess.Popen([sys.executable, "-m", "fqgan.train", "--spec", path], cwd=TRAINER_DIR, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if '"progress"' in line:
                proc.send_signal(signal.SIGTERM)
                break
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    events = parse_events("".join(lines) + out)
    assert proc.returncode == 143
    cancelled = events[-1]
    assert cancelled["event"] == "cancelled" and 1 <= cancelled["step"] < 10000
    state = read_checkpoint(cancelled["checkpoint"])
    assert state["steps"] == cancelled["step"]
    load_checkpoint(cancelled["checkpoint"])  # the model package's loader accepts it


def test_mixed_precision_on_cpu_is_refused(tmp_path, assets):
    path, spec = spec_file(tmp_path, assets)
    spec["device"]["precision"] = "bf16"
    code, events, _ = run_train(["--spec", save_spec(spec, path), "--check"])
    assert code == 2 and [e["field"] for e in events] == ["device.precision"]
    spec["device"].update(device="auto", precision="fp16")  # known only at start-up: refused there
    code, events, _ = run_train(["--spec", save_spec(spec, path)])
    if not torch.cuda.is_available():
        assert code == 2 and [e["field"] for e in events] == ["device.precision"]


def test_an_unexpected_failure_is_an_error_event(tmp_path, assets, monkeypatch, capsys):
    from fqgan import train

    def explode(self):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Trainer, "run", explode)
    monkeypatch.setattr(StopFlag, "install", lambda self: None)  # keep pytest's own signal handlers
    path, _ = spec_file(tmp_path, assets, steps=1)
    assert train.main(["--spec", path]) == 1
    events = parse_events(capsys.readouterr().out)
    assert events[-1]["event"] == "error" and events[-1]["message"] == "RuntimeError: disk full"


def test_throughput_bench_prints_json():
    script = os.path.join(os.path.dirname(TRAINER_DIR), "bench", "train_throughput.py")
    proc = subprocess.run([sys.executable, script, "--objective", "rec", "--steps", "1", "--warmup", "0"],
                          env=cli_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["images_per_s"] > 0 and result["device"] == "cpu" and result["batch"] == 2
