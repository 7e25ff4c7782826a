"""FQGAN model: reference state-dict layout, shapes, encode/decode API, losses of the forward pass."""
import pytest
import torch

from conftest import small_config
from fqgan.config import ModelConfig, preset
from fqgan.model import FQGAN, disentangle_loss
from reference_layout import reference_shapes


def shapes_of(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("variant", ["triple", "dual"])
@pytest.mark.parametrize("name, ch_mult", [("VQ-16", (1, 1, 2, 2, 4)), ("VQ-8", (1, 2, 2, 4))])
def test_released_sizes_match_the_reference_state_dict_exactly(variant, name, ch_mult):
    expected = reference_shapes(variant, ch_mult)
    actual = shapes_of(FQGAN(preset(name, variant)))
    assert sorted(set(expected) - set(actual)) == []
    assert sorted(set(actual) - set(expected)) == []
    assert {k: v for k, v in actual.items() if expected[k] != v} == {}


def test_codebook_usage_buffer_is_float32_like_the_reference():
    state = FQGAN(small_config()).state_dict()
    assert state["quantize_vis.codebook_used"].dtype == torch.float32
    assert state["quantize_vis.codebook_used"].shape == (65536,)


def test_without_semantic_supervision_there_are_no_head_keys():
    actual = shapes_of(FQGAN(preset("VQ-16", "triple", semantic_heads=False)))
    assert actual == reference_shapes("triple", (1, 1, 2, 2, 4), semantic=False)


@pytest.mark.parametrize("name, grid", [("test-16", 4), ("test-8", 8)])
@pytest.mark.parametrize("variant", ["triple", "dual"])
def test_encode_decode_shapes(name, grid, variant):
    config = small_config(name, variant)
    model = FQGAN(config).eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        encoded = model.encode(x)
        image = model.decode_code(encoded.indices)
    assert list(encoded.indices) == list(config.codebook_names)
    for name_ in config.codebook_names:
        assert encoded.indices[name_].shape == (2, grid, grid)
        assert encoded.indices[name_].dtype == torch.int64
        assert encoded.quantized[name_].shape == (2, config.codebook_embed_dim, grid, grid)
        assert int(encoded.indices[name_].max()) < config.codebook_size
        assert encoded.usage[name_] is None  # usage is tracked in training only
    assert image.shape == (2, 3, 64, 64)


def test_decode_code_equals_decoding_the_quantized_vectors():
    torch.manual_seed(0)
    model = FQGAN(small_config()).eval()
    with torch.no_grad():
        encoded = model.encode(torch.rand(1, 3, 64, 64) * 2 - 1)
        from_vectors = model.decode(encoded.quantized)
        from_tokens = model.decode_code(encoded.indices)
    # The straight-through z + (z_q - z) differs from z_q by float rounding, which the decoder amplifies
    # to ~1e-5; a wrong codebook row would be off by ~1e-1.
    torch.testing.assert_close(from_tokens, from_vectors, atol=1e-4, rtol=1e-4)


def test_mask_zeroes_whole_codebooks():
    model = FQGAN(small_config()).eval()
    with torch.no_grad():
        indices = model.encode(torch.rand(1, 3, 64, 64) * 2 - 1).indices
        masked = model.decode_code(indices, mask=[1.0, 0.0, 0.0])
        vectors = {name: model.quantizer(name).lookup(indices[name]) for name in model.codebook_names}
        by_hand = model.decode({"vis": vectors["vis"], "sem_mid": torch.zeros_like(vectors["sem_mid"]),
                                "sem_high": torch.zeros_like(vectors["sem_high"])})
        unmasked = model.decode_code(indices, mask=torch.ones(3))
    torch.testing.assert_close(masked, by_hand)
    assert not torch.allclose(masked, unmasked)
    with pytest.raises(ValueError, match="mask needs 3 entries"):
        model.decode_code(indices, mask=[1.0, 0.0])


def test_decoder_runs_on_other_grid_sizes():
    model = FQGAN(small_config()).eval()
    indices = {name: torch.zeros(1, 3, 5, dtype=torch.int64) for name in model.codebook_names}
    with torch.no_grad():
        assert model.decode_code(indices).shape == (1, 3, 48, 80)


@pytest.mark.parametrize("variant, widths", [("triple", {"sem_mid": 32, "sem_high": 64}), ("dual", {"sem": 64})])
def test_training_forward_returns_named_losses_and_class_tokens(variant, widths, capsys):
    config = small_config("test-16", variant, disentangle_ratio=0.1, entropy_loss_ratio=0.03)
    model = FQGAN(config).train()
    out = model(torch.rand(2, 3, 64, 64) * 2 - 1)
    assert out.reconstruction.shape == (2, 3, 64, 64)
    assert {k: v.shape for k, v in out.semantic_tokens.items()} == {k: (2, w) for k, w in widths.items()}
    assert set(out.codebook_losses) == set(config.codebook_names)
    for losses in out.codebook_losses.values():
        torch.testing.assert_close(losses.commit, 0.25 * losses.vq)  # same quantity, commit is beta-weighted
        assert losses.entropy.ndim == 0 and losses.entropy.requires_grad
    assert 0 < float(out.disentangle_loss) <= 0.1
    assert all(0 < u <= 1 for u in out.encoded.usage.values())
    assert capsys.readouterr().out == ""  # forward never prints

    loss = out.reconstruction.square().mean() + out.codebook_loss() + out.disentangle_loss
    loss = loss + sum(t.square().mean() for t in out.semantic_tokens.values())
    loss.backward()
    assert model.encoder.conv_in.weight.grad.abs().sum() > 0  # straight-through reaches the encoder
    assert model.semantic_head("sem_high" if variant == "triple" else "sem").upscale[0].weight.grad is not None
    assert model.last_layer is model.decoder.conv_out.weight


def test_forward_without_heads_or_disentanglement():
    model = FQGAN(small_config(semantic_heads=False)).train()
    out = model(torch.rand(1, 3, 64, 64) * 2 - 1)
    assert out.semantic_tokens is None
    assert float(out.disentangle_loss) == 0.0


def test_disentangle_loss_is_mean_squared_cosine_over_pairs():
    a = torch.tensor([1.0, 0.0]).view(1, 2, 1, 1)
    b = torch.tensor([0.0, 2.0]).view(1, 2, 1, 1)
    c = torch.tensor([3.0, 3.0]).view(1, 2, 1, 1)
    assert float(disentangle_loss([a, b])) == pytest.approx(0.0)
    assert float(disentangle_loss([a, a * 5])) == pytest.approx(1.0)
    # pairs (a,b)=0, (a,c)=0.5, (b,c)=0.5 -> mean 1/3
    assert float(disentangle_loss([a, b, c])) == pytest.approx(1 / 3)


def test_config_validation_and_round_trip():
    config = preset("VQ-8", "dual")
    assert config.downsample == 8 and config.grid_size == 32 and config.semantic_head_widths == (1024,)
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="multiple of 32"):
        ModelConfig(ch=48)
    with pytest.raises(ValueError, match="variant"):
        ModelConfig(variant="quad")
    with pytest.raises(ValueError, match="unknown ModelConfig fields"):
        ModelConfig.from_dict({"chanels": 3})


@pytest.mark.parametrize("variant, expected", [
    # Read off the reference's __init__ methods (vq_model_triple.py / vq_model_dual.py).
    ("triple", ["encoder.conv_in", "encoder.conv_blocks", "encoder.mid", "encoder.semantic_head_mid",
                "encoder.semantic_head_high", "encoder.visual_head", "encoder.norm_out_sem_mid",
                "encoder.conv_out_sem_mid", "encoder.norm_out_sem_high", "encoder.conv_out_sem_high",
                "encoder.norm_out_vis", "encoder.conv_out_vis", "quantize_vis", "quant_conv_vis",
                "quantize_sem_mid", "quant_conv_sem_mid", "quantize_sem_high", "quant_conv_sem_high",
                "post_quant_conv", "decoder", "mid_sem_feat_pred", "high_sem_feat_pred"]),
    ("dual", ["encoder.conv_in", "encoder.conv_blocks", "encoder.mid", "encoder.semantic_head",
              "encoder.visual_head", "encoder.norm_out_sem", "encoder.conv_out_sem", "encoder.norm_out_vis",
              "encoder.conv_out_vis", "quantize_sem", "quant_conv_sem", "quantize_vis", "quant_conv_vis",
              "post_quant_conv", "decoder", "feat_pred_head"]),
])
def test_parameters_come_in_the_reference_registration_order(variant, expected):
    """Optimizer state is stored by parameter position, so the order must be the reference's."""
    model = FQGAN(preset("test-16", variant, semantic_heads=True))
    seen = []
    for key, _ in model.named_parameters():
        parts = key.split(".")
        module = ".".join(parts[:2]) if parts[0] == "encoder" else parts[0]
        if not seen or seen[-1] != module:
            seen.append(module)
    assert seen == expected
