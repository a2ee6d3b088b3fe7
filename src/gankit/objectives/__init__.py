"""Objectives: what one discriminator phase and one generator phase compute from a batch."""

from __future__ import annotations

import torch

from gankit.config import RunConfig
from gankit.nets import build_discriminator, build_generator
from gankit.objectives.base import Objective
from gankit.objectives.gan import GANObjective


def build_objective(config: RunConfig, sample_shape: tuple[int, ...],
                    penalty_generator: torch.Generator | None = None) -> Objective:
    """The objective (with freshly initialised players) that a run config describes."""
    model, loss = config.model, config.loss
    return GANObjective(
        build_generator(model, sample_shape), build_discriminator(model, sample_shape),
        loss=loss.name, generator_loss=loss.generator, gp_weight=loss.gp_weight,
        r1_weight=loss.r1_weight, penalty_generator=penalty_generator,
        latent_dim=model.latent_dim, latent=model.latent, latent_range=model.latent_range)


__all__ = ["GANObjective", "Objective", "build_objective"]
