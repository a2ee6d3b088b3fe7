"""Objectives: what one discriminator phase and one generator phase compute from a batch.

`model.objective` names the game; each entry of `BUILDERS` turns a run config into that
objective with freshly initialised players. The paired objectives also hold their task, which
draws the input images their generator is fed, so they are built from the data itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from gankit.config import PAIRED_OBJECTIVES, RunConfig
from gankit.errors import GankitError
from gankit.nets import build_discriminator, build_generator
from gankit.nets.conditional import AuxiliaryClassifierDiscriminator, ProjectionDiscriminator
from gankit.objectives.base import Objective
from gankit.objectives.conditional import ConditionalGANObjective
from gankit.objectives.gan import GANObjective
from gankit.objectives.paired import PairedGANObjective, PairedMSEObjective, build_paired
from gankit.objectives.semisupervised import SemiSupervisedObjective, build_semi_supervised
from gankit.objectives.vae import VAEObjective, build_vae


def _gan(config: RunConfig, sample_shape: tuple[int, ...],
         penalty_generator: torch.Generator | None) -> Objective:
    model, loss = config.model, config.loss
    return GANObjective(
        build_generator(model, sample_shape),
        build_discriminator(model, sample_shape, pack=loss.pack),
        loss=loss.name, generator_loss=loss.generator, gp_weight=loss.gp_weight,
        r1_weight=loss.r1_weight, r1_every=loss.r1_every, penalty_generator=penalty_generator,
        augment=loss.augment, latent_dim=model.latent_dim, latent=model.latent,
        latent_range=model.latent_range)


def _conditional(config: RunConfig, sample_shape: tuple[int, ...],
                 penalty_generator: torch.Generator | None) -> Objective:
    model, loss = config.model, config.loss
    classes = model.num_classes
    # The generator reads [z, one_hot(y)]: an ordinary generator with K more inputs.
    generator = build_generator(dataclasses.replace(model, latent_dim=model.latent_dim + classes),
                                sample_shape)
    body = build_discriminator(model, sample_shape)
    if model.objective == "projection":
        discriminator = ProjectionDiscriminator(body, classes)
    else:
        discriminator = AuxiliaryClassifierDiscriminator(body, classes)
    return ConditionalGANObjective(
        generator, discriminator, classes, conditioning=model.objective, loss=loss.name,
        generator_loss=loss.generator, gp_weight=loss.gp_weight, r1_weight=loss.r1_weight,
        r1_every=loss.r1_every, penalty_generator=penalty_generator, augment=loss.augment,
        latent_dim=model.latent_dim, latent=model.latent, latent_range=model.latent_range)


# model.objective -> builder(config, sample_shape, penalty_generator) -> Objective
BUILDERS: dict[str, Callable[..., Objective]] = {
    "gan": _gan, "projection": _conditional, "acgan": _conditional, "vae": build_vae,
    "semi-supervised": build_semi_supervised}


def build_objective(config: RunConfig, sample_shape: tuple[int, ...],
                    penalty_generator: torch.Generator | None = None, data=None) -> Objective:
    """The objective (with freshly initialised players) that a run config describes.

    `data` (the run's dataset) is needed by the paired objectives only.
    """
    if config.loss.augment and len(sample_shape) != 3:
        # DiffAugment's ops shift, crop and recolour C x H x W images.
        raise GankitError(f"loss.augment={config.loss.augment!r} needs images; "
                          f"{config.data.name} gives samples of shape {tuple(sample_shape)}")
    if config.model.objective in PAIRED_OBJECTIVES:
        if data is None:
            raise GankitError(f"model.objective={config.model.objective} is built from its "
                              f"dataset ({config.data.name}); none was given")
        return build_paired(config, data)
    try:
        return BUILDERS[config.model.objective](config, sample_shape, penalty_generator)
    except ValueError as error:  # the nets' constructors refuse shapes they cannot take
        hint = " (data.size=S resizes a folder's images)" if config.data.name == "folder" else ""
        raise GankitError(f"model.arch={config.model.arch!r} on {config.data.name} samples of "
                          f"shape {tuple(sample_shape)}: {error}{hint}") from None


__all__ = ["BUILDERS", "ConditionalGANObjective", "GANObjective", "Objective",
           "PairedGANObjective", "PairedMSEObjective", "SemiSupervisedObjective", "VAEObjective",
           "build_objective"]
