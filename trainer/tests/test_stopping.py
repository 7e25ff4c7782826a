"""Stopping the trainer process: a stop ends the trainer and its DataLoader workers, even when the
service that reads its output is gone or the checkpoint cannot be written."""
import os
import signal
import subprocess
import sys
import time
from typing import List

import pytest

from train_helpers import TRAINER_DIR, cli_env, make_spec, save_spec, write_images

REQUIRED_EXIT_S = 10.0  # the service's promise: a stopped trainer and everything it started are gone by then


def session_members(sid: int) -> List[int]:
    """Live processes of a session (the trainer is started as a session leader, like the service does)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
        if fields[0] != "Z" and int(fields[3]) == sid:  # state, ppid, pgrp, session
            found.append(int(name))
    return found


def wait_until_gone(sid: int, seconds: float) -> List[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = session_members(sid)
        if not left:
            return []
        time.sleep(0.1)
    return session_members(sid)


@pytest.fixture
def start_trainer(tmp_path):
    """Starts `python -m fqgan.train` with DataLoader workers in its own session; kills the session after the test."""
    started: List[subprocess.Popen] = []

    def start(**spec_fields) -> subprocess.Popen:
        dataset = str(tmp_path / "images")
        write_images(dataset, 8)
        spec = make_spec(dataset, str(tmp_path / "out"), steps=100000, eval_images=0)
        spec["device"]["num_workers"] = 2
        spec.update(spec_fields)
        path = save_spec(spec, str(tmp_path / "spec.json"))
        proc = subprocess.Popen([sys.executable, "-m", "fqgan.train", "--spec", path], cwd=TRAINER_DIR, env=cli_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        started.append(proc)
        for line in proc.stdout:  # training has started and the workers exist once a step is done
            if b'"progress"' in line:
                return proc
        pytest.fail(f"the trainer ended before its first step: {proc.stderr.read().decode()[-2000:]}")

    yield start
    for proc in started:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)
        for pid in session_members(proc.pid):  # workers re-parented away from a killed leader
            os.kill(pid, signal.SIGKILL)


def test_sigterm_after_the_service_is_gone_ends_trainer_and_workers(start_trainer, tmp_path):
    proc = start_trainer()
    assert len(session_members(proc.pid)) >= 3, "the trainer runs with its DataLoader workers"
    # The service died: nobody reads stdout or stderr any more, and the kernel sends SIGTERM.
    proc.stdout.close()
    proc.stderr.close()
    os.kill(proc.pid, signal.SIGTERM)
    left = wait_until_gone(proc.pid, REQUIRED_EXIT_S)
    assert not left, f"still running {REQUIRED_EXIT_S} s after SIGTERM: {left}"
    assert proc.wait(timeout=1) == 143
    saved = os.listdir(tmp_path / "out" / "checkpoints")
    assert any(name.endswith(".pt") for name in saved), saved  # the stop still saved its checkpoint


def test_a_stop_whose_checkpoint_cannot_be_written_ends_at_the_deadline(start_trainer, tmp_path):
    # A checkpoint path that blocks forever when opened for writing (a FIFO nobody reads), for any step.
    folder = tmp_path / "out" / "checkpoints"
    folder.mkdir(parents=True)
    for step in range(1, 2000):
        os.mkfifo(folder / f"{step:07d}.pt.partial")
    proc = start_trainer(stop_deadline_s=1.0)
    os.kill(proc.pid, signal.SIGTERM)
    left = wait_until_gone(proc.pid, REQUIRED_EXIT_S)
    assert not left, f"still running {REQUIRED_EXIT_S} s after SIGTERM: {left}"
    assert proc.wait(timeout=1) == -signal.SIGALRM  # the stop deadline passed: no checkpoint, no `cancelled` event
    assert b'"cancelled"' not in proc.stdout.read()
