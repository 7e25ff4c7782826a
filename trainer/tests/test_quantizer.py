"""VectorQuantizer: nearest-code search, ties, L2 normalisation, losses, straight-through, usage window."""
import math

import pytest
import torch

from fqgan.quantizer import VectorQuantizer, entropy_loss


def quantizer_with(codebook, **kwargs) -> VectorQuantizer:
    codebook = torch.tensor(codebook, dtype=torch.float32)
    q = VectorQuantizer(codebook.shape[0], codebook.shape[1], **kwargs)
    with torch.no_grad():
        q.embedding.weight.copy_(codebook)
    return q


def as_map(*vectors):
    """Vectors -> [1, dim, 1, n] feature map, as the encoder hands them over."""
    return torch.tensor(vectors, dtype=torch.float32).t().reshape(1, len(vectors[0]), 1, len(vectors))


def test_first_index_wins_ties():
    # Rows 1 and 2 are identical; (1, 1) is equally close to rows 0 and 1.
    q = quantizer_with([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], show_usage=False)
    assert q(as_map([0.0, 1.0])).indices.flatten().tolist() == [1]
    assert q(as_map([1.0, 1.0])).indices.flatten().tolist() == [0]


def test_search_is_on_directions_and_codes_are_unit_vectors():
    q = quantizer_with([[2.0, 0.0], [0.0, 0.5], [-3.0, 0.1]], show_usage=False).eval()
    out = q(as_map([0.1, 0.2], [100.0, 1.0], [-0.5, 0.0]))
    assert out.indices.flatten().tolist() == [1, 0, 2]
    norms = q.lookup(out.indices).norm(dim=1)
    torch.testing.assert_close(norms, torch.ones_like(norms))


def test_without_l2_norm_the_nearest_code_is_euclidean():
    q = quantizer_with([[0.0, 0.0], [10.0, 0.0]], l2_norm=False, show_usage=False)
    # By direction (1, 0) would pick code 1; by distance code 0 is closer.
    assert q(as_map([1.0, 0.0])).indices.flatten().tolist() == [0]


def test_losses_match_hand_computed_values():
    q = quantizer_with([[1.0, 0.0], [0.0, 1.0]], commit_beta=0.25, show_usage=False)
    out = q(as_map([3.0, 4.0]))  # normalised (0.6, 0.8) -> code 1 = (0, 1)
    assert out.indices.item() == 1
    # mean((0 - 0.6)^2, (1 - 0.8)^2) = 0.2
    assert out.losses.vq.item() == pytest.approx(0.2, abs=1e-6)
    assert out.losses.commit.item() == pytest.approx(0.05, abs=1e-6)
    assert out.losses.entropy.item() == 0.0
    assert out.losses.total().item() == pytest.approx(0.25, abs=1e-6)
    torch.testing.assert_close(out.quantized.flatten(), torch.tensor([0.0, 1.0]))


def test_entropy_loss_matches_hand_computed_value():
    # Rows softmax to (1/4, 3/4) and (3/4, 1/4); their mean is (1/2, 1/2).
    affinity = torch.tensor([[0.0, math.log(3.0)], [math.log(3.0), 0.0]])
    sample_entropy = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    entropy_of_mean = -2 * 0.5 * math.log(0.5 + 1e-5)
    assert entropy_loss(affinity, temperature=1.0).item() == pytest.approx(sample_entropy - entropy_of_mean, abs=1e-6)
    # Temperature divides the affinity first.
    assert entropy_loss(affinity * 0.01, temperature=0.01).item() == pytest.approx(sample_entropy - entropy_of_mean,
                                                                                 abs=1e-5)


def test_entropy_loss_is_weighted_by_its_ratio():
    z = torch.randn(1, 4, 3, 3)
    q = VectorQuantizer(16, 4, entropy_ratio=0.5, show_usage=False)
    out = q(z)
    zn = torch.nn.functional.normalize(z.permute(0, 2, 3, 1).reshape(-1, 4), dim=-1)
    e = q.codebook()
    d = zn.square().sum(1, keepdim=True) + e.square().sum(1) - 2 * zn @ e.t()
    assert out.losses.entropy.item() == pytest.approx(0.5 * entropy_loss(-d, 0.01).item(), rel=1e-4, abs=1e-6)


def test_straight_through_passes_gradients_unchanged():
    q = quantizer_with([[1.0, 0.0], [0.0, 1.0]], l2_norm=False, show_usage=False)
    z = as_map([0.9, 0.2], [0.1, 0.7]).requires_grad_()
    out = q(z)
    torch.testing.assert_close(out.quantized.detach().flatten(), torch.tensor([1.0, 0.0, 0.0, 1.0]))
    out.quantized.sum().backward()
    torch.testing.assert_close(z.grad, torch.ones_like(z))


def test_usage_window_rolls_and_counts_distinct_codes_in_training_only():
    q = VectorQuantizer(8, 2, usage_window=6)
    q.eval()
    q(torch.randn(1, 2, 2, 2))
    assert q.codebook_used.tolist() == [0.0] * 6  # eval leaves the window alone

    q.train()
    with torch.no_grad():
        q.embedding.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]] * 2))
    first = q(as_map([0.0, 1.0], [-1.0, 0.0]))  # codes 1, 2
    assert q.codebook_used.tolist() == [0, 0, 0, 0, 1, 2]
    assert first.usage == pytest.approx(3 / 8)  # {0 (initial zeros), 1, 2}
    q(as_map([0.0, -1.0], [0.0, -1.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0], [0.0, 1.0]))
    assert q.codebook_used.tolist() == [3, 3, 0, 1, 2, 3, 1][-6:]  # only the newest 6 survive
    assert q.codebook_used.dtype == torch.float32
