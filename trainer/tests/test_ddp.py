"""Data-parallel training: two gloo processes (the environment torchrun gives its workers) with
gradient accumulation, and accumulation alone, reproduce a single process's losses for the same
global batch."""
import socket
import subprocess
import sys

import pytest

from train_helpers import TRAINER_DIR, cli_env, make_spec, of_kind, parse_events, run_train, save_spec, write_images

# Only batch-mean losses: the entropy loss's batch-wide term and a per-rank InfoNCE differ by design.
HP = dict(steps=3, batch_size=4, log_every=1, entropy_loss_ratio=0.0, eval_images=0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_ranks(spec_path: str):
    port = str(free_port())
    procs = []
    for rank in (0, 1):
        env = cli_env(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        procs.append(subprocess.Popen([sys.executable, "-m", "fqgan.train", "--spec", spec_path], cwd=TRAINER_DIR,
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=240) for p in procs]
    return [p.returncode for p in procs], outputs


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("ddp") / "images")
    write_images(folder, 8)  # a multiple of the global batch: every layout sees the same batches
    return folder


def losses_by_step(events):
    return {e["step"]: e["losses"] for e in of_kind(events, "progress")}


def assert_same_losses(a, b):
    """Step 1 (before any update) must agree to float precision. Later steps agree closely, not
    exactly: summation order differs, and Adam turns noise-sized gradients into lr-sized steps, which
    the small codebook terms feel most; a rank training on its own half-batch is off by percents."""
    assert sorted(a) == sorted(b) == [1, 2, 3]
    for name in a[1]:
        assert b[1][name] == pytest.approx(a[1][name], rel=1e-5, abs=1e-8), name
    for step in (2, 3):
        assert b[step]["rec"] == pytest.approx(a[step]["rec"], rel=2e-3), step
        assert b[step]["total"] == pytest.approx(a[step]["total"], rel=5e-3), step
        for name in ("vq_vis", "commit_sem_high", "disentangle"):
            assert b[step][name] == pytest.approx(a[step][name], rel=1e-2), (step, name)


def test_two_process_gloo_run_matches_one_process(tmp_path, dataset):
    code, single, stderr = run_train(["--spec", save_spec(make_spec(dataset, str(tmp_path / "one"), **HP),
                                                          str(tmp_path / "one.json"))])
    assert code == 0, stderr

    two = make_spec(dataset, str(tmp_path / "two"), grad_accum=2, **HP)
    codes, outputs = run_two_ranks(save_spec(two, str(tmp_path / "two.json")))
    assert codes == [0, 0], outputs[0][1] + outputs[1][1]
    assert outputs[1][0] == ""  # only rank 0 reports
    events = parse_events(outputs[0][0])
    assert events[0]["world_size"] == 2 and events[0]["micro_batch"] == 1  # 4 = 2 ranks x 2 micro-batches x 1
    assert [e["event"] for e in events][-2:] == ["exported", "finished"]
    assert_same_losses(losses_by_step(single), losses_by_step(events))

    code, accumulated, stderr = run_train(["--spec", save_spec(make_spec(dataset, str(tmp_path / "acc"), grad_accum=2,
                                                                         **HP), str(tmp_path / "acc.json"))])
    assert code == 0, stderr
    assert accumulated[0]["micro_batch"] == 2
    assert_same_losses(losses_by_step(single), losses_by_step(accumulated))
