"""The FQGAN training objective's terms as pure functions, chosen by name in the tables at the bottom."""
from __future__ import annotations

from typing import Callable, Dict

import torch
import torch.nn.functional as F
from torch import Tensor


# --- reconstruction -------------------------------------------------------------------------

def l1_loss(inputs: Tensor, reconstructions: Tensor) -> Tensor:
    return F.l1_loss(reconstructions.float(), inputs.float())


def l2_loss(inputs: Tensor, reconstructions: Tensor) -> Tensor:
    return F.mse_loss(reconstructions.float(), inputs.float())


# --- discriminator losses (lower is better for D) ---------------------------------------------

def hinge_d_loss(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    return 0.5 * (F.relu(1.0 - logits_real.float()).mean() + F.relu(1.0 + logits_fake.float()).mean())


def vanilla_d_loss(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    return 0.5 * (F.softplus(-logits_real.float()).mean() + F.softplus(logits_fake.float()).mean())


def non_saturating_d_loss(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    # Binary cross-entropy with real -> 1, fake -> 0. The reference passes BCE's arguments swapped
    # (the logits as the target), which leaves the fake term constant; this is the intended loss.
    real = logits_real.float()
    fake = logits_fake.float()
    return 0.5 * (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                  + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))


# --- generator adversarial losses -----------------------------------------------------------

def hinge_g_loss(logits_fake: Tensor) -> Tensor:
    return -logits_fake.float().mean()


def non_saturating_g_loss(logits_fake: Tensor) -> Tensor:
    # -log sigmoid(fake); same argument-order fix as non_saturating_d_loss.
    fake = logits_fake.float()
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


# --- weighting --------------------------------------------------------------------------------

def adversarial_weight(step: int, disc_start: int, disc_weight: float) -> float:
    """disc_start gating: 0 before the discriminator starts, disc_weight from step disc_start on."""
    return 0.0 if step < disc_start else disc_weight


def adaptive_weight(nll_loss: Tensor, g_loss: Tensor, last_layer: Tensor,
                    eps: float = 1e-4, max_weight: float = 1e4) -> Tensor:
    """VQGAN's balance of the adversarial term: ||d nll/d W|| / (||d g/d W|| + eps) on the decoder's
    last layer W, clamped to [0, max_weight] and detached."""
    nll_grads = torch.autograd.grad(nll_loss, last_layer, retain_graph=True)[0]
    g_grads = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    weight = torch.norm(nll_grads.float()) / (torch.norm(g_grads.float()) + eps)
    return torch.clamp(weight, 0.0, max_weight).detach()


# --- representation terms -----------------------------------------------------------------------

def info_nce(student: Tensor, teacher: Tensor) -> Tensor:
    """InfoNCE over the batch: sample i's student feature must pick teacher feature i among all.

    Both are L2-normalised, the teacher is detached, and the temperature is 1 (the reference's
    exp(s @ t.T) without a scale). student, teacher: [B, D].
    """
    s = F.normalize(student.float(), dim=-1)
    t = F.normalize(teacher.detach().float(), dim=-1)
    logits = s @ t.t()
    return F.cross_entropy(logits, torch.arange(logits.shape[0], device=logits.device))


RecLoss = Callable[[Tensor, Tensor], Tensor]
DiscLoss = Callable[[Tensor, Tensor], Tensor]
GenLoss = Callable[[Tensor], Tensor]

REC_LOSSES: Dict[str, RecLoss] = {"l1": l1_loss, "l2": l2_loss}
DISC_LOSSES: Dict[str, DiscLoss] = {
    "hinge": hinge_d_loss, "vanilla": vanilla_d_loss, "non-saturating": non_saturating_d_loss,
}
GEN_LOSSES: Dict[str, GenLoss] = {"hinge": hinge_g_loss, "non-saturating": non_saturating_g_loss}
