"""Data-parallel training: two gloo processes (the environment torchrun gives its workers) with
gradient accumulation, and accumulation alone, reproduce a single process's losses for the same
global batch; a rank that never arrives fails the run within its timeout instead of hanging."""
import signal
import socket
import subprocess
import sys
import time

import pytest

from train_helpers import TRAINER_DIR, cli_env, make_spec, of_kind, parse_events, run_train, save_spec, write_images

# Only batch-mean losses: the entropy loss's batch-wide term and a per-rank InfoNCE differ by design.
# lr 1e-5 keeps the trajectory out of Adam's chaotic regime: its first steps are ~lr*sign(grad), so at
# lr 1e-3 float-order noise in near-zero gradients (e.g. biases ahead of a GroupNorm) grows to 1% of a
# loss within two steps, while at 1e-5 the runs agree to ~1e-5 and a real sync fault still shows.
HP = dict(steps=3, batch_size=4, log_every=1, entropy_loss_ratio=0.0, eval_images=0, lr=1e-5, dist_timeout_s=60)
RANK_TIMEOUT_S = 240


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ranks(spec_path: str, ranks, world_size: int):
    port = str(free_port())
    procs = []
    for rank in ranks:
        env = cli_env(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        procs.append(subprocess.Popen([sys.executable, "-m", "fqgan.train", "--spec", spec_path], cwd=TRAINER_DIR,
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return procs


def reap(procs, timeout_s: float):
    """Waits for every rank; whatever happens (timeout, a failed assertion later), none is left running."""
    deadline = time.monotonic() + timeout_s
    try:
        outputs = []
        for p in procs:
            try:
                outputs.append(p.communicate(timeout=max(1.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                pytest.fail(f"a rank was still running after {timeout_s:.0f} s")
        return [p.returncode for p in procs], outputs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()


def spec_with(dataset: str, output_dir: str, **hp):
    spec = make_spec(dataset, output_dir, **{k: v for k, v in hp.items() if k != "dist_timeout_s"})
    if "dist_timeout_s" in hp:
        spec["device"]["dist_timeout_s"] = hp["dist_timeout_s"]
    return spec


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("ddp") / "images")
    write_images(folder, 8)  # a multiple of the global batch: every layout sees the same batches
    return folder


def losses_by_step(events):
    return {e["step"]: e["losses"] for e in of_kind(events, "progress")}


def assert_same_losses(a, b):
    """Step 1 (before any update) agrees to float precision; after updates the measured gap is ~1e-5
    relative on the codebook terms and ~1e-7 on the reconstruction, well inside these tolerances."""
    assert sorted(a) == sorted(b) == [1, 2, 3]
    for name in a[1]:
        assert b[1][name] == pytest.approx(a[1][name], rel=1e-5, abs=1e-8), name
    for step in (2, 3):
        assert b[step]["rec"] == pytest.approx(a[step]["rec"], rel=1e-5), step
        assert b[step]["total"] == pytest.approx(a[step]["total"], rel=1e-5), step
        for name in ("vq_vis", "commit_sem_high", "disentangle"):
            assert b[step][name] == pytest.approx(a[step][name], rel=2e-4, abs=1e-8), (step, name)


def test_two_process_gloo_run_matches_one_process(tmp_path, dataset):
    code, single, stderr = run_train(["--spec", save_spec(spec_with(dataset, str(tmp_path / "one"), **HP),
                                                          str(tmp_path / "one.json"))])
    assert code == 0, stderr

    two = spec_with(dataset, str(tmp_path / "two"), grad_accum=2, **HP)
    codes, outputs = reap(start_ranks(save_spec(two, str(tmp_path / "two.json")), (0, 1), 2), RANK_TIMEOUT_S)
    assert codes == [0, 0], outputs[0][1] + outputs[1][1]
    assert outputs[1][0] == ""  # only rank 0 reports
    events = parse_events(outputs[0][0])
    assert events[0]["world_size"] == 2 and events[0]["micro_batch"] == 1  # 4 = 2 ranks x 2 micro-batches x 1
    assert [e["event"] for e in events][-2:] == ["exported", "finished"]
    assert_same_losses(losses_by_step(single), losses_by_step(events))

    code, accumulated, stderr = run_train(["--spec", save_spec(spec_with(dataset, str(tmp_path / "acc"), grad_accum=2,
                                                                         **HP), str(tmp_path / "acc.json"))])
    assert code == 0, stderr
    assert accumulated[0]["micro_batch"] == 2
    assert_same_losses(losses_by_step(single), losses_by_step(accumulated))


def test_a_rank_that_never_arrives_fails_the_run_within_its_timeout(tmp_path, dataset):
    spec = spec_with(dataset, str(tmp_path / "alone"), **{**HP, "dist_timeout_s": 3})
    started = time.monotonic()
    codes, outputs = reap(start_ranks(save_spec(spec, str(tmp_path / "alone.json")), (0,), 2), 60)
    elapsed = time.monotonic() - started
    assert codes == [1], outputs[0][1]
    errors = of_kind(parse_events(outputs[0][0]), "error")
    assert len(errors) == 1 and "could not join the process group" in errors[0]["message"], errors
    assert "dist_timeout_s" in errors[0]["message"]
    assert elapsed < 60


def test_a_rank_that_hangs_mid_run_fails_the_others_within_their_timeout(tmp_path, dataset):
    spec = spec_with(dataset, str(tmp_path / "hang"), **{**HP, "steps": 10_000, "dist_timeout_s": 5})
    procs = start_ranks(save_spec(spec, str(tmp_path / "hang.json")), (0, 1), 2)
    try:
        first = parse_events(procs[0].stdout.readline())  # "started": both ranks are in the group
        assert first and first[0]["event"] == "started", first
        procs[1].send_signal(signal.SIGSTOP)  # alive but never answering: the case a timeout exists for
        stopped = time.monotonic()
        codes, outputs = reap(procs[:1], 90)
        assert codes == [1], outputs[0][1]
        assert time.monotonic() - stopped < 90
        assert of_kind(parse_events(outputs[0][0]), "error"), outputs[0][1][-2000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
