"""PatchGAN and StyleGAN discriminators: shapes and the reference's parameter names."""
import torch
import torch.nn.functional as F

from fqgan.discriminators import Blur, PatchGANDiscriminator, StyleGANDiscriminator, build_discriminator


def test_patchgan_layout_and_output():
    d = PatchGANDiscriminator()
    keys = list(d.state_dict())
    # The reference's NLayerDiscriminator: convs at main.0/2/5/8/11, BatchNorm at main.3/6/9, no bias before BN.
    assert keys[:3] == ["main.0.weight", "main.0.bias", "main.2.weight"]
    assert "main.2.bias" not in keys and "main.3.running_mean" in keys and "main.11.weight" in keys
    assert tuple(d.main[8].weight.shape) == (512, 256, 4, 4)
    assert d(torch.randn(2, 3, 256, 256)).shape == (2, 1, 30, 30)
    assert d(torch.randn(2, 3, 32, 32)).shape == (2, 1, 2, 2)


def test_stylegan_layout_and_output():
    d = StyleGANDiscriminator(image_size=32)
    keys = set(d.state_dict())
    assert {"blocks.0.weight", "blocks.2.conv_res.weight", "blocks.2.net.2.weight", "blocks.2.downsample.0.f",
            "blocks.2.downsample.1.weight", "final_conv.0.weight", "final_linear.2.weight"} <= keys
    assert len([k for k in keys if k.endswith("conv_res.weight")]) == 3  # 32 -> 16 -> 8 -> 4
    assert d(torch.randn(2, 3, 32, 32)).shape == (2, 1)
    assert len(StyleGANDiscriminator(image_size=256).blocks) == 2 + 6


def test_blur_is_a_normalised_binomial_filter_with_reflect_padding():
    x = torch.zeros(1, 2, 5, 5)
    x[0, 0, 2, 2] = 16.0
    y = Blur()(x)
    expected = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]])
    assert torch.allclose(y[0, 0, 1:4, 1:4], expected)
    assert torch.allclose(Blur()(torch.full((1, 1, 4, 4), 3.0)), torch.full((1, 1, 4, 4), 3.0))
    edge = torch.zeros(1, 1, 3, 3)
    edge[0, 0, 0, 0] = 16.0
    assert torch.allclose(Blur()(edge), F.conv2d(F.pad(edge, (1, 1, 1, 1), mode="reflect"),
                                                 expected.view(1, 1, 3, 3) / 16))


def test_build_by_name():
    assert isinstance(build_discriminator("patchgan", 32), PatchGANDiscriminator)
    assert isinstance(build_discriminator("stylegan", 32), StyleGANDiscriminator)
