"""LPIPS built from local files in their published formats."""
import pytest
import torch

from fqgan.lpips import CHANNELS, LPIPS
from train_helpers import one_thread, write_lpips_weights  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def lpips_files(tmp_path_factory):
    return write_lpips_weights(str(tmp_path_factory.mktemp("lpips")))


@pytest.fixture(scope="module")
def lpips(lpips_files):
    return LPIPS.from_files(*lpips_files)


def test_loads_torchvision_vgg_and_lpips_lin_files(lpips, lpips_files):
    vgg = torch.load(lpips_files[0])
    assert torch.equal(lpips.net.features[28].weight, vgg["features.28.weight"])
    lin = torch.load(lpips_files[1])
    assert torch.equal(lpips.lins[4].weight, lin["lin4.model.1.weight"])
    assert not any(p.requires_grad for p in lpips.parameters())


def test_matches_a_hand_computed_distance(lpips):
    torch.manual_seed(0)
    a, b = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    taps = {3, 8, 15, 22, 29}

    def features(x):
        out, h = [], (x - shift) / scale
        for i, layer in enumerate(lpips.net.features):
            h = layer(h)
            if i in taps:
                out.append(h / (h.norm(dim=1, keepdim=True) + 1e-10))
        return out

    expected = sum(((fa - fb) ** 2 * lin.weight.view(1, -1, 1, 1)).sum(1).mean((1, 2))
                   for fa, fb, lin in zip(features(a), features(b), lpips.lins))
    got = lpips(a, b)
    assert got.shape == (2,)
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-7)
    assert torch.allclose(lpips(a, a), torch.zeros(2), atol=1e-7)
    assert torch.allclose(lpips(b, a), got, rtol=1e-5)


def test_agrees_with_torchvision_vgg16(lpips, lpips_files):
    models = pytest.importorskip("torchvision.models")
    vgg = models.vgg16()
    features = {k: v for k, v in torch.load(lpips_files[0]).items() if k.startswith("features.")}
    vgg.load_state_dict({**vgg.state_dict(), **features})
    x = torch.rand(1, 3, 32, 32)
    assert torch.allclose(vgg.features[:30](x), lpips.net.features(x), atol=1e-6)


def test_gradient_reaches_the_reconstruction(lpips):
    a = torch.rand(1, 3, 32, 32) * 2 - 1
    b = (a + 0.1 * torch.randn_like(a)).requires_grad_(True)
    lpips(a, b).sum().backward()
    assert b.grad.abs().sum() > 0


def test_wrong_files_are_refused_with_the_path(tmp_path, lpips_files):
    lin_only = str(tmp_path / "lin_only.pth")
    torch.save({f"lin{i}.model.1.weight": torch.zeros(1, c, 1, 1) for i, c in enumerate(CHANNELS[:4])}, lin_only)
    with pytest.raises(ValueError, match="lin0..lin4"):
        LPIPS.from_files(lpips_files[0], lin_only)
    with pytest.raises(ValueError, match="vgg16"):
        LPIPS.from_files(lpips_files[1], lpips_files[1])  # the lin file is not a VGG
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        LPIPS.from_files(str(tmp_path / "missing.pth"), lpips_files[1])
