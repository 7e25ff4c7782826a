"""Reconstruction metrics and `python -m fqgan.evaluate`."""
import json
import subprocess
import sys

import pytest
import torch

from fqgan.checkpoint import save_checkpoint
from fqgan.config import preset
from fqgan.data import eval_loader
from fqgan.images import scan_images
from fqgan.metrics import psnr, ssim, to_uint8
from fqgan.model import FQGAN
from train_helpers import one_thread, TRAINER_DIR, cli_env, write_corrupt, write_images  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")


def test_metrics_follow_skimage_with_the_references_arguments():
    metrics = pytest.importorskip("skimage.metrics")
    torch.manual_seed(0)
    a = torch.rand(2, 3, 24, 20)
    b = (a + 0.1 * torch.randn_like(a)).clamp(0, 1)
    for i in range(2):
        x, y = a[i].permute(1, 2, 0).double().numpy(), b[i].permute(1, 2, 0).double().numpy()
        assert psnr(a, b)[i].item() == pytest.approx(metrics.peak_signal_noise_ratio(x, y), rel=1e-9)
        expected = metrics.structural_similarity(x, y, data_range=2.0, channel_axis=-1)
        assert ssim(a, b)[i].item() == pytest.approx(expected, rel=1e-9)
    assert ssim(a, a).tolist() == pytest.approx([1.0, 1.0])


def test_to_uint8_rounds_like_the_reference():
    x = torch.tensor([-1.5, -1.0, 0.0, 1.0 / 255, 1.0])
    assert to_uint8(x).tolist() == [0, 0, 128, 128, 255]


def test_evaluate_cli_reports_psnr_ssim_usage_and_skipped_files(tmp_path):
    folder = str(tmp_path / "images")
    write_images(folder, 3)
    broken = write_corrupt(folder)
    torch.manual_seed(0)
    model = FQGAN(preset("test-8", "dual", image_size=32)).eval()
    checkpoint = str(tmp_path / "model.pt")
    save_checkpoint(model, checkpoint)

    proc = subprocess.run([sys.executable, "-m", "fqgan.evaluate", "--checkpoint", checkpoint, "--images", folder,
                           "--batch-size", "2", "--device", "cpu"], cwd=TRAINER_DIR, env=cli_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["images"] == 3 and result["skipped"] == [broken]

    images = torch.cat([b.images for b in eval_loader(scan_images(folder).paths, 32, 4)])
    with torch.no_grad():
        indices = model.encode(images).indices
        restored = to_uint8(model.decode_code(indices)).double() / 255
    target = (images.double() + 1) / 2
    # rel 1e-4: another batch size can flip a few 8-bit roundings
    assert result["psnr"] == pytest.approx(psnr(restored, target).mean().item(), rel=1e-4)
    assert result["ssim"] == pytest.approx(ssim(restored, target).mean().item(), rel=1e-4)
    for name in ("vis", "sem"):
        assert result["usage"][name] == pytest.approx(torch.unique(indices[name]).numel() / 256)


def test_evaluate_cli_fails_cleanly_on_a_bad_checkpoint(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    write_images(str(tmp_path / "images"), 1)
    proc = subprocess.run([sys.executable, "-m", "fqgan.evaluate", "--checkpoint", str(bad), "--images",
                           str(tmp_path / "images")], cwd=TRAINER_DIR, env=cli_env(), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1 and "error" in json.loads(proc.stdout)
