"""codes.py and precision.py: the one codebook search stays float32 under autocast, margins and the masked
lookup follow the search's own formula, and the TF32 switches are set and restored."""
import pytest
import torch
import torch.nn.functional as F

from conftest import small_config
from fqgan.codes import code_margins, masked_code_vectors, nearest_codes, token_margins
from fqgan.model import FQGAN
from fqgan.precision import exact_fp32, restore_tf32, set_tf32, tf32_enabled, tf32_state
from fqgan.quantizer import VectorQuantizer


def crowded_codebook(seed: int = 0, size: int = 4096, dim: int = 8):
    """Many unit codes in few dimensions: the best scores differ by less than bfloat16 can tell."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(1, dim, 16, 16, generator=g).bfloat16().float()  # exactly representable in bf16
    return F.normalize(torch.randn(size, dim, generator=g), dim=-1), z


def test_training_search_stays_float32_under_bf16_autocast():
    codebook, z = crowded_codebook()
    q = VectorQuantizer(codebook.shape[0], codebook.shape[1], show_usage=False)
    with torch.no_grad():
        q.embedding.weight.copy_(codebook)
    expected = q(z).indices
    # What a bfloat16 search would choose: the case the test must be able to tell apart.
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16_choice = torch.argmax(torch.matmul(q.prepare(z.bfloat16()).bfloat16(), codebook.bfloat16().t()), dim=-1)
        out = q(z.bfloat16())  # the encoder's output arrives in bf16 under autocast
    assert (bf16_choice != expected).any(), "the case is too easy: bf16 agrees with fp32 everywhere"
    assert torch.equal(out.indices, expected)
    assert out.quantized.dtype == torch.float32 and out.losses.vq.dtype == torch.float32


def test_margins_are_the_gap_between_the_two_nearest_codes_without_l2_norm():
    # Unnormalised codes: the margin is the gap in -||z - e||^2 (an independent float64 oracle).
    g = torch.Generator().manual_seed(3)
    codebook, z = torch.randn(64, 4, generator=g), torch.randn(100, 4, generator=g)
    distances = torch.cdist(z.double(), codebook.double()) ** 2
    nearest = distances.topk(2, dim=-1, largest=False)
    assert torch.equal(nearest_codes(z, codebook, l2_norm=False), nearest.indices[:, 0])
    torch.testing.assert_close(code_margins(z, codebook, l2_norm=False).double(),
                               nearest.values[:, 1] - nearest.values[:, 0], atol=1e-4, rtol=1e-5)
    # The unit-vector formula scores by direction and gives other tokens: the two must not be confused.
    assert not torch.equal(nearest_codes(z, codebook, l2_norm=True), nearest.indices[:, 0])


def test_token_margins_follow_the_models_own_search():
    torch.manual_seed(0)
    model = FQGAN(small_config(codebook_l2_norm=False)).eval()
    with torch.no_grad():
        for name in model.codebook_names:  # codes at the scale of the encoder's vectors
            model.quantizer(name).embedding.weight.normal_(0, 0.5)
        images = torch.rand(2, 3, 64, 64) * 2 - 1
        margins = token_margins(model, images)
        for name, z in model.pre_quant(images).items():
            vectors = z.permute(0, 2, 3, 1).double()
            codebook = model.quantizer(name).embedding.weight.double()
            distances = ((vectors[..., None, :] - codebook) ** 2).sum(-1).topk(2, dim=-1, largest=False).values
            torch.testing.assert_close(margins[name].double(), distances[..., 1] - distances[..., 0],
                                       atol=1e-4, rtol=1e-4)


def test_masked_lookup_scales_whole_codebooks_and_checks_the_mask():
    codebooks = {"a": torch.eye(3), "b": 2 * torch.eye(3)}
    indices = {"a": torch.tensor([[[0, 2]]]), "b": torch.tensor([[[1, 1]]])}
    vectors = masked_code_vectors(indices, codebooks, ["a", "b"], [1.0, 0.0])
    assert vectors["a"].shape == (1, 3, 1, 2)
    assert vectors["a"][0, :, 0, 1].tolist() == [0.0, 0.0, 1.0]
    assert vectors["b"].abs().sum() == 0
    assert masked_code_vectors(indices, codebooks, ["a", "b"])["b"][0, :, 0, 0].tolist() == [0.0, 2.0, 0.0]
    with pytest.raises(ValueError, match="mask needs 2 entries"):
        masked_code_vectors(indices, codebooks, ["a", "b"], [1.0])


def test_exact_fp32_turns_tf32_and_autocast_off_and_restores_them():
    saved = tf32_state()
    try:
        set_tf32(True)
        assert tf32_enabled() == (True, True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            with exact_fp32("cpu"):
                assert tf32_enabled() == (False, False)
                assert torch.matmul(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.float32
            assert torch.matmul(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16
        assert tf32_enabled() == (True, True)
        set_tf32(False)
        assert tf32_enabled() == (False, False)
    finally:
        restore_tf32(saved)


def test_torch_2_9s_tf32_api_is_used_alone_where_it_exists(monkeypatch):
    """torch >= 2.9 refuses to mix the legacy allow_tf32 flags with fp32_precision: only the new one is set."""
    import types

    from fqgan import precision

    matmul, conv = types.SimpleNamespace(fp32_precision="none"), types.SimpleNamespace(fp32_precision="tf32")
    monkeypatch.setattr(precision, "NEW_TF32_API", True)
    monkeypatch.setattr(torch.backends.cuda, "matmul", matmul)
    monkeypatch.setattr(torch.backends.cudnn, "conv", conv, raising=False)
    legacy_conv = torch.backends.cudnn.allow_tf32
    set_tf32(True)
    assert (matmul.fp32_precision, conv.fp32_precision) == ("tf32", "tf32") and tf32_enabled() == (True, True)
    with exact_fp32("cpu"):
        assert (matmul.fp32_precision, conv.fp32_precision) == ("ieee", "ieee")
    assert (matmul.fp32_precision, conv.fp32_precision) == ("tf32", "tf32")
    assert torch.backends.cudnn.allow_tf32 == legacy_conv  # the legacy flag was not touched
