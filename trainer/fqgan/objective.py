"""The FQGAN objective (the reference's VQLoss_*_codebook): generator and discriminator losses of one batch."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Optional

from torch import Tensor, nn

from . import losses
from .lpips import LPIPS
from .model import ForwardResult
from .teachers import Teacher
from .train.spec import Hyperparameters

# Which teacher supervises which semantic codebook (reference: DINOv2 -> mid, CLIP -> high / dual).
TEACHER_FOR_CODEBOOK = {"sem_mid": "dino", "sem_high": "clip", "sem": "clip"}


@dataclass
class GeneratorLoss:
    total: Tensor
    terms: Dict[str, Tensor]  # weighted contributions that sum to `total`, detached
    adaptive_weight: Optional[Tensor]  # the VQGAN balance when it was applied, else None


@dataclass
class DiscriminatorLoss:
    total: Tensor
    logits_real: Tensor  # detached batch means, for logging
    logits_fake: Tensor


class Objective:
    """Holds the frozen helpers (LPIPS, teachers) and the weights; the discriminator is passed in,
    because the trainer owns it (its optimizer, its DDP wrapper)."""

    def __init__(self, hp: Hyperparameters, lpips: Optional[LPIPS] = None,
                 teachers: Optional[Mapping[str, Teacher]] = None) -> None:
        if hp.perceptual_weight > 0 and lpips is None:
            raise ValueError("perceptual_weight > 0 needs the LPIPS network")
        self.hp = hp
        self.lpips = lpips
        self.teachers = dict(teachers or {})
        self.rec_loss = losses.REC_LOSSES[hp.rec_loss]
        self.disc_loss = losses.DISC_LOSSES[hp.disc_loss]
        self.gen_loss = losses.GEN_LOSSES[hp.gen_loss]

    def adversarial_factor(self, step: int) -> float:
        return losses.adversarial_weight(step, self.hp.disc_start, self.hp.disc_weight)

    def generator(self, images: Tensor, out: ForwardResult, step: int,
                  discriminator: Optional[nn.Module], last_layer: Optional[Tensor]) -> GeneratorLoss:
        """step is 1-based (the reference passes train_steps + 1). The discriminator is only run
        once the adversarial factor is non-zero: before disc_start its term is exactly 0."""
        hp = self.hp
        recon = out.reconstruction
        terms: Dict[str, Tensor] = {}
        terms["rec"] = hp.rec_weight * self.rec_loss(images, recon)
        if hp.perceptual_weight > 0:
            terms["perceptual"] = hp.perceptual_weight * self.lpips(images, recon).mean()
        nll = sum(terms.values())

        adaptive = None
        factor = self.adversarial_factor(step)
        if factor > 0 and discriminator is not None:
            g_loss = self.gen_loss(discriminator(recon))
            if hp.adaptive_weight:
                adaptive = losses.adaptive_weight(nll, g_loss, last_layer)
                g_loss = adaptive * g_loss
            terms["gen_adv"] = factor * g_loss

        for name, cb in out.codebook_losses.items():
            terms[f"vq_{name}"] = hp.codebook_weight * cb.vq
            terms[f"commit_{name}"] = hp.codebook_weight * cb.commit
            terms[f"entropy_{name}"] = hp.codebook_weight * cb.entropy

        # Semantic distillation only when asked for: with no supervision the weight is 0 and
        # nothing is computed (the reference multiplies by a None weight there and crashes).
        if hp.semantic_weight > 0:
            if not out.semantic_tokens:
                raise ValueError("semantic_weight > 0 but the model has no semantic heads")
            for name, tokens in out.semantic_tokens.items():
                teacher = self.teachers.get(TEACHER_FOR_CODEBOOK[name])
                if teacher is None:
                    raise ValueError(f"no {TEACHER_FOR_CODEBOOK[name]} teacher for codebook {name}")
                terms[f"semantic_{name}"] = hp.semantic_weight * losses.info_nce(tokens, teacher(images))

        if hp.disentangle_ratio > 0:
            terms["disentangle"] = out.disentangle_loss  # already times the disentanglement ratio

        total = sum(terms.values())
        return GeneratorLoss(total=total, terms={k: v.detach().float() for k, v in terms.items()},
                             adaptive_weight=adaptive)

    def discriminator(self, images: Tensor, reconstructions: Tensor, step: int,
                      discriminator: nn.Module) -> DiscriminatorLoss:
        logits_real, logits_fake = discriminator(images.detach(), reconstructions.detach())
        total = self.adversarial_factor(step) * self.disc_loss(logits_real, logits_fake)
        return DiscriminatorLoss(total=total, logits_real=logits_real.detach().float().mean(),
                                 logits_fake=logits_fake.detach().float().mean())


class DiscriminatorPair(nn.Module):
    """Runs the discriminator on real and fake batches in one forward call, so DDP sees one
    forward per backward; the two batches keep separate BatchNorm statistics, as in the reference."""

    def __init__(self, discriminator: nn.Module) -> None:
        super().__init__()
        self.discriminator = discriminator

    def forward(self, real: Tensor, fake: Tensor):
        return self.discriminator(real), self.discriminator(fake)


class GeneratorStep(nn.Module):
    """model forward + generator loss as one module, so DDP sees a loss tensor as the output (it
    cannot look inside the model's dataclass result to find the unused parameters)."""

    def __init__(self, model: nn.Module, objective: Objective, discriminator: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.objective = objective  # plain object: LPIPS and teachers stay out of DDP
        self._discriminator = [discriminator]  # a list keeps it unregistered: D has its own optimizer and DDP

    def forward(self, images: Tensor, step: int):
        out = self.model(images)
        loss = self.objective.generator(images, out, step, self._discriminator[0], self.model.last_layer)
        return loss.total, loss, out
