"""Shared pytest setup: import path, thread count, small model configs and a CLI runner."""
import json
import os
import subprocess
import sys
from typing import List

import pytest
import torch

TRAINER_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if TRAINER_DIR not in sys.path:
    sys.path.insert(0, TRAINER_DIR)

from fqgan.config import ModelConfig, preset  # noqa: E402

# Tiny test models gain nothing from intra-op threads; on 2 shared cores a second thread made steps ~10x slower.
torch.set_num_threads(1)


def small_config(name: str = "test-16", variant: str = "triple", **overrides) -> ModelConfig:
    """A test preset at 64 px: same layout as the 256 px model, a 16x faster forward."""
    return preset(name, variant, image_size=64, **overrides)


@pytest.fixture
def run_cli():
    """Run `python -m <module> args...` from the trainer dir; returns (code, stdout JSON or None, stderr)."""

    def run(module: str, args: List[str], timeout: float = 120):
        env = {**os.environ, "PYTHONPATH": TRAINER_DIR}
        proc = subprocess.run([sys.executable, "-m", module, *args], cwd=TRAINER_DIR, env=env,
                              capture_output=True, text=True, timeout=timeout)
        try:
            summary = json.loads(proc.stdout) if proc.stdout.strip() else None
        except json.JSONDecodeError:
            summary = None
        return proc.returncode, summary, proc.stderr

    return run
