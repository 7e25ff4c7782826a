"""Each term of the FQGAN objective against hand-computed values, and how the objective combines them."""
import math

import pytest
import torch
from torch import nn

from fqgan import losses
from fqgan.config import preset
from fqgan.model import FQGAN, disentangle_loss
from fqgan.objective import Objective
from fqgan.train.spec import Hyperparameters
from train_helpers import one_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")


def sp(x: float) -> float:  # softplus
    return math.log1p(math.exp(x))


def test_reconstruction_losses():
    x = torch.tensor([[0.0, 1.0], [-1.0, 0.5]])
    y = torch.tensor([[0.5, 1.0], [1.0, 0.0]])
    assert losses.l1_loss(x, y).item() == pytest.approx((0.5 + 0 + 2 + 0.5) / 4)
    assert losses.l2_loss(x, y).item() == pytest.approx((0.25 + 0 + 4 + 0.25) / 4)


REAL = torch.tensor([2.0, 0.5, -1.0])
FAKE = torch.tensor([-2.0, 0.0, 1.5])


def test_discriminator_losses():
    hinge = 0.5 * ((0 + 0.5 + 2.0) / 3 + (0 + 1.0 + 2.5) / 3)
    assert losses.hinge_d_loss(REAL, FAKE).item() == pytest.approx(hinge)
    vanilla = 0.5 * (sum(sp(-r) for r in (2.0, 0.5, -1.0)) / 3 + sum(sp(f) for f in (-2.0, 0.0, 1.5)) / 3)
    assert losses.vanilla_d_loss(REAL, FAKE).item() == pytest.approx(vanilla, rel=1e-6)
    # Non-saturating BCE (real -> 1, fake -> 0) equals the vanilla loss; the fake term has a gradient.
    assert losses.non_saturating_d_loss(REAL, FAKE).item() == pytest.approx(vanilla, rel=1e-6)
    fake = FAKE.clone().requires_grad_(True)
    losses.non_saturating_d_loss(REAL, fake).backward()
    assert fake.grad.abs().sum() > 0


def test_generator_losses():
    assert losses.hinge_g_loss(FAKE).item() == pytest.approx(-(-2.0 + 0.0 + 1.5) / 3)
    expected = sum(sp(-f) for f in (-2.0, 0.0, 1.5)) / 3  # -log sigmoid(fake)
    assert losses.non_saturating_g_loss(FAKE).item() == pytest.approx(expected, rel=1e-6)


def test_adversarial_weight_is_gated_by_disc_start():
    assert losses.adversarial_weight(step=0, disc_start=3, disc_weight=0.5) == 0.0
    assert losses.adversarial_weight(step=2, disc_start=3, disc_weight=0.5) == 0.0
    assert losses.adversarial_weight(step=3, disc_start=3, disc_weight=0.5) == 0.5
    assert losses.adversarial_weight(step=10, disc_start=0, disc_weight=0.8) == 0.8


def test_adaptive_weight_is_the_gradient_norm_ratio_on_the_last_layer():
    w = torch.ones(2, 2, requires_grad=True)
    a = torch.tensor([[3.0, 0.0], [0.0, 4.0]])  # d nll / d w, norm 5
    b = torch.tensor([[1.0, 1.0], [1.0, 1.0]])  # d g / d w, norm 2
    weight = losses.adaptive_weight((w * a).sum(), (w * b).sum(), w)
    assert weight.item() == pytest.approx(5.0 / (2.0 + 1e-4))
    assert not weight.requires_grad
    # A generator loss that does not move the last layer would divide by ~0: clamped to 1e4.
    assert losses.adaptive_weight((w * a).sum(), (w * 0.0).sum(), w).item() == pytest.approx(1e4)


def test_info_nce_by_hand():
    student = torch.tensor([[2.0, 0.0], [0.0, 1.0]], requires_grad=True)  # normalised: e1, e2
    teacher = torch.tensor([[1.0, 0.0], [1.0, 1.0]], requires_grad=True)  # normalised: e1, (1,1)/sqrt2
    c = 1 / math.sqrt(2)
    row0 = -math.log(math.exp(1) / (math.exp(1) + math.exp(c)))
    row1 = -math.log(math.exp(c) / (math.exp(0) + math.exp(c)))
    loss = losses.info_nce(student, teacher)
    assert loss.item() == pytest.approx((row0 + row1) / 2, rel=1e-6)
    loss.backward()
    assert student.grad is not None and teacher.grad is None  # the teacher is a fixed target


def test_disentangle_loss_is_the_mean_squared_cosine_over_pairs():
    e1 = torch.tensor([1.0, 0.0]).view(1, 2, 1, 1)
    e2 = torch.tensor([0.0, 3.0]).view(1, 2, 1, 1)
    diag = torch.tensor([1.0, 1.0]).view(1, 2, 1, 1)
    assert disentangle_loss([e1, e2]).item() == pytest.approx(0.0)
    assert disentangle_loss([e1, 2 * e1]).item() == pytest.approx(1.0)
    # pairs (e1,e2)=0, (e1,diag)=1/2, (e2,diag)=1/2 -> mean 1/3
    assert disentangle_loss([e1, e2, diag]).item() == pytest.approx(1.0 / 3.0)


class CountingDiscriminator(nn.Module):
    def __init__(self, logit: float) -> None:
        super().__init__()
        self.logit = nn.Parameter(torch.tensor(logit))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.logit.expand(x.shape[0], 1) + 0 * x.mean()


def _model(**overrides):
    torch.manual_seed(0)
    return FQGAN(preset("test-8", "triple", image_size=32, **overrides)).train()


def test_generator_objective_sums_every_codebook_term_and_gates_the_discriminator():
    hp = Hyperparameters(perceptual_weight=0.0, semantic_weight=0.0, disc_start=5, disc_weight=0.5,
                         codebook_weight=2.0, disentangle_ratio=0.1)
    model = _model(disentangle_ratio=0.1, entropy_loss_ratio=0.03)
    objective = Objective(hp)
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    out = model(images)
    disc = CountingDiscriminator(logit=-0.75)

    before = objective.generator(images, out, step=4, discriminator=disc, last_layer=model.last_layer)
    assert disc.calls == 0 and "gen_adv" not in before.terms  # idle before disc_start
    for name in ("vis", "sem_mid", "sem_high"):
        cb = out.codebook_losses[name]
        assert before.terms[f"vq_{name}"].item() == pytest.approx(2.0 * cb.vq.item())
        assert before.terms[f"commit_{name}"].item() == pytest.approx(2.0 * cb.commit.item())
        assert before.terms[f"entropy_{name}"].item() == pytest.approx(2.0 * cb.entropy.item())
    assert before.terms["rec"].item() == pytest.approx(torch.mean((out.reconstruction - images) ** 2).item())
    assert before.terms["disentangle"].item() == pytest.approx(out.disentangle_loss.item())
    assert before.total.item() == pytest.approx(sum(v.item() for v in before.terms.values()), rel=1e-6)

    after = objective.generator(images, out, step=5, discriminator=disc, last_layer=model.last_layer)
    assert disc.calls == 1
    assert after.terms["gen_adv"].item() == pytest.approx(0.5 * 0.75)  # hinge: -mean(logits) times disc_weight


def test_adaptive_weight_scales_the_generator_adversarial_term():
    hp = Hyperparameters(perceptual_weight=0.0, semantic_weight=0.0, disc_start=0, disc_weight=1.0,
                         adaptive_weight=True, gen_loss="non-saturating")
    model = _model()
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    out = model(images)
    disc = nn.Sequential(nn.Conv2d(3, 1, 3), nn.Flatten())
    result = Objective(hp).generator(images, out, step=1, discriminator=disc, last_layer=model.last_layer)
    g = losses.non_saturating_g_loss(disc(out.reconstruction))
    expected = losses.adaptive_weight(losses.l2_loss(images, out.reconstruction), g, model.last_layer)
    assert result.adaptive_weight.item() == pytest.approx(expected.item(), rel=1e-5)
    assert result.terms["gen_adv"].item() == pytest.approx((expected * g).item(), rel=1e-5)


def test_no_semantic_supervision_does_not_crash():
    # The reference multiplies by semantic_weight=None when supervision is off; here it is just absent.
    hp = Hyperparameters(perceptual_weight=0.0, semantic_weight=0.0)
    model = _model(semantic_heads=False)
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    out = model(images)
    assert out.semantic_tokens is None
    result = Objective(hp).generator(images, out, step=1, discriminator=None, last_layer=model.last_layer)
    assert not any(k.startswith("semantic") for k in result.terms)
    result.total.backward()


def test_semantic_terms_use_the_right_teacher_per_codebook():
    class ConstantTeacher(nn.Module):
        def __init__(self, dim, value):
            super().__init__()
            self.dim, self.value = dim, value

        def forward(self, images):
            return torch.full((images.shape[0], self.dim), self.value) + torch.arange(images.shape[0])[:, None]

    hp = Hyperparameters(perceptual_weight=0.0, semantic_weight=0.5)
    model = _model()
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    out = model(images)
    teachers = {"dino": ConstantTeacher(32, 1.0), "clip": ConstantTeacher(64, -1.0)}
    result = Objective(hp, teachers=teachers).generator(images, out, 1, None, model.last_layer)
    for codebook, kind in (("sem_mid", "dino"), ("sem_high", "clip")):
        expected = 0.5 * losses.info_nce(out.semantic_tokens[codebook], teachers[kind](images))
        assert result.terms[f"semantic_{codebook}"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_discriminator_objective_uses_detached_inputs_and_the_gate():
    class Pair(nn.Module):
        def forward(self, real, fake):
            assert not real.requires_grad and not fake.requires_grad
            return torch.full((2, 1), 0.5), torch.full((2, 1), -0.25)

    objective = Objective(Hyperparameters(perceptual_weight=0.0, disc_start=3, disc_weight=0.5))
    x = torch.zeros(2, 3, 8, 8, requires_grad=True)
    assert objective.discriminator(x, x * 2, step=2, discriminator=Pair()).total.item() == 0.0
    d = objective.discriminator(x, x * 2, step=3, discriminator=Pair())
    assert d.total.item() == pytest.approx(0.5 * 0.5 * (0.5 + 0.75))
    assert d.logits_real.item() == pytest.approx(0.5)
