"""The unconditional GAN game of Goodfellow et al. 2014 and its loss variants."""

from __future__ import annotations

import torch
from torch import nn

from gankit import losses
from gankit.augment import diff_augment, parse_policy
from gankit.nets.batchnorm import batch_norm_parts
from gankit.objectives.base import Objective, PhaseResult


class GANObjective(Objective):
    """D learns to tell real from G(z); G learns to fool D.

    Args:
        generator: z -> sample.
        discriminator: sample -> logit.
        loss: "standard", "least-squares", "hinge" or "wasserstein" (the D loss family).
        generator_loss: with "standard", one of the seeds' three generator losses: "minimax",
            "non-saturating" or "maximum-likelihood". Other families use their own G loss.
        gp_weight: weight of the WGAN-GP gradient penalty (0 disables it).
        r1_weight: gamma of the R1 penalty, added as gamma/2 * E|grad D(x)|^2 (0 disables it).
        r1_every: lazy R1: the penalty on every r1_every-th iteration only, weighted r1_every
            times (the loop sets `iteration`).
        penalty_generator: the RNG for the penalty's interpolation weights and augmentations.
        augment: DiffAugment ops applied to every image D sees, e.g. "color,translation,cutout"
            ("" for none).
        latent_dim, latent, latent_range: the noise prior (see `Objective`).
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: str = "standard",
                 generator_loss: str = "non-saturating", gp_weight: float = 0.0,
                 r1_weight: float = 0.0, r1_every: int = 1,
                 penalty_generator: torch.Generator | None = None,
                 augment: str = "", latent_dim: int = 100, latent: str = "normal",
                 latent_range: float = 1.0):
        super().__init__(latent_dim, latent, latent_range)
        self.generator = generator
        self.discriminator = discriminator
        self.d_loss_kind = loss
        self.g_loss_kind = generator_loss if loss == "standard" else loss
        self.gp_weight = gp_weight
        self.r1_weight = r1_weight
        self.r1_every = r1_every
        self.penalty_generator = penalty_generator
        self.augment_ops = parse_policy(augment)
        # Set by the loop (train.share_fake): the D phase keeps G(z) with its graph for the G
        # phase of the same latent, instead of the G phase generating it again.
        self.share_fake = False
        self._kept: tuple[torch.Tensor, torch.Tensor] | None = None
        # Set by the loop (train.joint_d_batch) for a D whose batch norm, if any, is partwise
        # (gankit.nets.batchnorm): D's phase judges the real and the fake batch in one forward
        # pass of both.
        self.joint_batch = False
        # A generator that can state the distribution it samples (GaussianGenerator) adds
        # that to the G phase's stats, so metrics.jsonl tracks its parameters.
        self.generator_stats = getattr(generator, "parameter_stats", None)

    def fake_for_discriminator(self, latent: torch.Tensor) -> torch.Tensor:
        """G(z) as data for D's phase (no gradient into G from it)."""
        if not self.share_fake:
            return self.generate(latent)
        fake = self.generator(latent)
        self._kept = (latent, fake)
        return fake.detach()

    def fake_for_generator(self, latent: torch.Tensor) -> torch.Tensor:
        """G(z) with its graph for G's phase: the kept one when D's phase made it from `latent`."""
        kept, self._kept = self._kept, None
        if kept is not None and kept[0] is latent:
            return kept[1]
        return self.generator(latent)

    def r1_due(self) -> bool:
        """Whether this iteration's D phase adds R1 (lazy R1 skips all but every r1_every-th)."""
        return self.r1_weight > 0 and self.iteration % self.r1_every == 0

    def r1_term(self, real_logits: torch.Tensor,
                real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The R1 penalty E|grad D(x)|^2 and the loss term it adds (weighted for lazy R1)."""
        penalty = losses.r1_penalty(real_logits, real)
        return penalty, 0.5 * self.r1_weight * self.r1_every * penalty

    def augmented(self, images: torch.Tensor) -> torch.Tensor:
        """What D sees of a batch: the DiffAugment ops applied, or the batch itself."""
        if not self.augment_ops:
            return images
        return diff_augment(images, self.augment_ops, self.penalty_generator)

    def discriminator_phase(self, real: torch.Tensor, latent: torch.Tensor) -> PhaseResult:
        # D's step needs G(z) only as data: no graph through G.
        fake = self.fake_for_discriminator(latent)
        r1_due = self.r1_due()
        if r1_due:
            real = real.detach().requires_grad_(True)
        if self.joint_batch:
            with batch_norm_parts(self.discriminator, 2):
                logits = self.discriminator(self.augmented(torch.cat([real, fake])))
            real_logits, fake_logits = logits.chunk(2)
        else:
            real_logits = self.discriminator(self.augmented(real))
            fake_logits = self.discriminator(self.augmented(fake))
        d_loss = losses.discriminator_loss(real_logits, fake_logits, self.d_loss_kind)
        stats = {"d_loss": d_loss.detach()}
        if self.gp_weight > 0:
            penalty = losses.gradient_penalty(self.discriminator, real, fake,
                                              generator=self.penalty_generator)
            d_loss = d_loss + self.gp_weight * penalty
            stats["gradient_penalty"] = penalty.detach()
        if r1_due:
            penalty, term = self.r1_term(real_logits, real)
            d_loss = d_loss + term
            stats["r1_penalty"] = penalty.detach()
        stats["d_real"] = losses.d_probability(real_logits.detach()).mean()
        stats["d_fake"] = losses.d_probability(fake_logits.detach()).mean()
        return d_loss, stats

    def generator_phase(self, latent: torch.Tensor, real=None) -> PhaseResult:
        fake_logits = self.discriminator(self.augmented(self.fake_for_generator(latent)))
        g_loss = losses.generator_loss(fake_logits, self.g_loss_kind)
        stats = {"g_loss": g_loss.detach(),
                 "d_fake_g": losses.d_probability(fake_logits.detach()).mean()}
        if self.generator_stats is not None:
            stats.update(self.generator_stats())
        return g_loss, stats
