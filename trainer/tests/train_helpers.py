"""Builders shared by the trainer tests: generated images, weight files in their real formats, specs,
and a runner for `python -m fqgan.train` that parses its event stream."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pytest
import torch
from PIL import Image

TRAINER_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A fast model for loop tests: test-8 at 32 px is a 4x4 token grid, semantic heads 32 (DINO) / 64 (CLIP).
TEST_MODEL = {"preset": "test-8", "variant": "triple", "overrides": {"image_size": 32}}
DINO_DIM, CLIP_DIM = 32, 64


@pytest.fixture
def one_thread():
    """One torch thread for in-process tests: on a shared 2-core box two threads run ~10x slower
    (OpenBLAS spinning against other work). Subprocesses get OMP_NUM_THREADS=1 from cli_env."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_images(folder: str, count: int, seed: int = 0, size: Tuple[int, int] = (40, 48),
                 nested: bool = True) -> List[str]:
    """Smooth colour gradients (learnable by a tiny model), PNG and JPEG, in class sub-folders."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    paths = []
    for i in range(count):
        a, b = rng.random(3) * 255, rng.random(3) * 255
        arr = a * (1 - xx[..., None] / w) + b * (yy[..., None] / h)
        sub = os.path.join(folder, f"class{i % 2}") if nested else folder
        os.makedirs(sub, exist_ok=True)
        path = os.path.join(sub, f"img{i}.{'png' if i % 3 else 'jpg'}")
        Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def write_corrupt(folder: str, name: str = "broken.jpg") -> str:
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    with open(path, "wb") as f:
        f.write(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    return path


def write_lpips_weights(folder: str, seed: int = 0) -> Tuple[str, str]:
    """A torchvision-format vgg16 state_dict (features.* and classifier.*) and LPIPS v0.1 lin layers."""
    from fqgan.lpips import CHANNELS, VGG16Features

    torch.manual_seed(seed)
    os.makedirs(folder, exist_ok=True)
    vgg = {f"features.{k}": v for k, v in VGG16Features().features.state_dict().items()}
    vgg["classifier.6.weight"] = torch.zeros(10, 4)  # torchvision files carry the classifier too
    vgg_path, lin_path = os.path.join(folder, "vgg16.pth"), os.path.join(folder, "vgg.pth")
    torch.save(vgg, vgg_path)
    torch.save({f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) * 0.1 for i, c in enumerate(CHANNELS)}, lin_path)
    return vgg_path, lin_path


def write_teachers(folder: str) -> Tuple[str, str]:
    """Tiny DINOv2 and CLIP towers as Hugging Face directories (config.json + model.safetensors)."""
    from teacher_fixtures import save_pretrained, tiny_backbone

    dino, clip = os.path.join(folder, "dinov2-tiny"), os.path.join(folder, "clip-tiny")
    save_pretrained(tiny_backbone("dino", DINO_DIM, seed=1), "dino", dino)
    save_pretrained(tiny_backbone("clip", CLIP_DIM, seed=2), "clip", clip)
    return dino, clip


def make_spec(dataset: str, output_dir: str, **hyperparameters: Any) -> Dict[str, Any]:
    """A quick spec: only reconstruction + codebook losses unless the caller turns more on."""
    hp = {"steps": 4, "batch_size": 2, "lr": 1e-3, "perceptual_weight": 0.0, "semantic_weight": 0.0,
          "disc_start": 1000, "eval_images": 2, "eval_every": 0, "checkpoint_every": 0, "log_every": 1}
    hp.update(hyperparameters)
    return {"dataset": dataset, "output_dir": output_dir, "model": dict(TEST_MODEL),
            "hyperparameters": hp, "device": {"device": "cpu", "precision": "fp32", "num_workers": 0}}


def save_spec(spec: Dict[str, Any], path: str) -> str:
    with open(path, "w") as f:
        json.dump(spec, f)
    return path


def cli_env(**extra: str) -> Dict[str, str]:
    return {**os.environ, "PYTHONPATH": TRAINER_DIR, "OMP_NUM_THREADS": "1", **extra}


def run_train(args: List[str], timeout: float = 180, env: Optional[Dict[str, str]] = None):
    """Run `python -m fqgan.train args`; returns (exit code, events, stderr). Fails on non-JSON stdout."""
    proc = subprocess.run([sys.executable, "-m", "fqgan.train", *args], cwd=TRAINER_DIR, env=env or cli_env(),
                          capture_output=True, text=True, timeout=timeout)
    return proc.returncode, parse_events(proc.stdout), proc.stderr


def parse_events(stdout: str) -> List[Dict[str, Any]]:
    events = []
    for line in stdout.splitlines():
        event = json.loads(line)  # every stdout line must be one JSON object
        assert isinstance(event, dict) and "event" in event and isinstance(event["time"], float), line
        events.append(event)
    return events


def of_kind(events: List[Dict[str, Any]], kind: str) -> List[Dict[str, Any]]:
    return [e for e in events if e["event"] == kind]
