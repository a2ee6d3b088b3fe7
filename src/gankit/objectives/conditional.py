"""Class-conditional GANs: the generator draws a requested label, D judges (image, label).

The latent code of a conditional objective is [z, one_hot(y)]: everything that handles latents
(the loop, the fixed grid noise, sampling, evaluation) works unchanged, and the labels can be
read back from the code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gankit import losses
from gankit.errors import GankitError
from gankit.nets.batchnorm import batch_norm_parts
from gankit.objectives.base import PhaseResult, check_label_range
from gankit.objectives.gan import GANObjective


class ConditionalGANObjective(GANObjective):
    """A GAN conditioned on class labels, by a projection D or an auxiliary classifier.

    Args:
        generator: [z, one_hot(y)] (latent_dim + num_classes) -> sample.
        discriminator: a `ProjectionDiscriminator` ((x, y) -> logits) for "projection", or an
            `AuxiliaryClassifierDiscriminator` (x -> (logits, class logits)) for "acgan".
        num_classes: K.
        conditioning: "projection" (Miyato & Koyama 2018) or "acgan" (Odena et al. 2017).
        class_weight: AC-GAN: weight of the cross-entropy terms (real and fake for D, fake for G).
        **gan_args: the loss family and penalties of `GANObjective`.
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module, num_classes: int,
                 conditioning: str = "projection", class_weight: float = 1.0, **gan_args):
        super().__init__(generator, discriminator, **gan_args)
        if conditioning not in ("projection", "acgan"):
            raise ValueError(f"unknown conditioning {conditioning!r}")
        self.num_classes = num_classes
        self.conditioning = conditioning
        self.class_weight = class_weight

    # ----------------------------------------------------------------- latent codes

    def sample_latent(self, n: int, generator: torch.Generator | None = None,
                      device: torch.device | str = "cpu",
                      labels: torch.Tensor | None = None) -> torch.Tensor:
        """[z, one_hot(y)]: labels uniform over the K classes unless given."""
        noise = super().sample_latent(n, generator, device)
        if labels is None:
            labels = torch.randint(self.num_classes, (n,), generator=generator)
        labels = torch.as_tensor(labels, dtype=torch.int64)
        if labels.shape != (n,) or labels.min() < 0 or labels.max() >= self.num_classes:
            raise GankitError(f"labels must be {n} integers in 0..{self.num_classes - 1}")
        return torch.cat([noise, F.one_hot(labels, self.num_classes).to(noise)], dim=1)

    def fixed_latent(self, n: int, generator: torch.Generator,
                     device: torch.device | str = "cpu") -> torch.Tensor:
        """Grid noise with labels 0, 1, ..., K-1, 0, 1, ...: a K-wide grid has a class a column."""
        return self.sample_latent(n, generator, device, torch.arange(n) % self.num_classes)

    def labels_of(self, latent: torch.Tensor) -> torch.Tensor:
        """The labels a latent code asks for."""
        return latent[:, self.latent_dim:].argmax(dim=1)

    def check_data(self, data) -> None:
        self._require_labels(data)
        check_label_range(data, self.num_classes)

    def _require_labels(self, data) -> None:
        if not hasattr(data, "sample_labeled"):
            raise GankitError(f"{data.name} has no labels: a conditional objective "
                              f"({self.conditioning}) needs a labelled dataset such as mnist")

    def real_batch(self, data, n: int, generator: torch.Generator):
        self._require_labels(data)  # every step, so only this cheap part of check_data
        return data.sample_labeled(n, generator)

    # ----------------------------------------------------------------- the phases

    def _judge(self, images: torch.Tensor, labels: torch.Tensor):
        """(real/fake logits, class logits or None) for images that claim `labels`."""
        if self.conditioning == "projection":
            return self.discriminator(images, labels), None
        return self.discriminator(images)

    def discriminator_phase(self, real, latent: torch.Tensor) -> PhaseResult:
        images, labels = real
        fake_labels = self.labels_of(latent)
        fake = self.fake_for_discriminator(latent)
        r1_due = self.r1_due()
        if r1_due:
            images = images.detach().requires_grad_(True)
        if self.joint_batch:
            with batch_norm_parts(self.discriminator, 2):
                logits, classes = self._judge(self.augmented(torch.cat([images, fake])),
                                              torch.cat([labels, fake_labels]))
            (real_logits, fake_logits), (real_classes, fake_classes) = (
                logits.chunk(2), (None, None) if classes is None else classes.chunk(2))
        else:
            real_logits, real_classes = self._judge(self.augmented(images), labels)
            fake_logits, fake_classes = self._judge(self.augmented(fake), fake_labels)
        d_loss = losses.discriminator_loss(real_logits, fake_logits, self.d_loss_kind)
        stats = {"d_loss": d_loss.detach()}
        if real_classes is not None:
            # AC-GAN's D learns the class of real and of generated images.
            class_loss = (F.cross_entropy(real_classes, labels)
                          + F.cross_entropy(fake_classes, fake_labels))
            d_loss = d_loss + self.class_weight * class_loss
            stats["d_class_loss"] = class_loss.detach()
            stats["d_class_acc"] = (real_classes.argmax(1) == labels).float().mean()
        if self.gp_weight > 0:
            # Interpolates keep the real image's label: the penalty is on x, for a fixed y.
            penalty = losses.gradient_penalty(lambda x: self._judge(x, labels)[0], images, fake,
                                              generator=self.penalty_generator)
            d_loss = d_loss + self.gp_weight * penalty
            stats["gradient_penalty"] = penalty.detach()
        if r1_due:
            penalty, term = self.r1_term(real_logits, images)
            d_loss = d_loss + term
            stats["r1_penalty"] = penalty.detach()
        stats["d_real"] = losses.d_probability(real_logits.detach()).mean()
        stats["d_fake"] = losses.d_probability(fake_logits.detach()).mean()
        return d_loss, stats

    def generator_phase(self, latent: torch.Tensor, real=None) -> PhaseResult:
        labels = self.labels_of(latent)
        fake_logits, fake_classes = self._judge(self.augmented(self.fake_for_generator(latent)),
                                                labels)
        g_loss = losses.generator_loss(fake_logits, self.g_loss_kind)
        stats = {"g_loss": g_loss.detach(),
                 "d_fake_g": losses.d_probability(fake_logits.detach()).mean()}
        if fake_classes is not None:
            class_loss = F.cross_entropy(fake_classes, labels)
            g_loss = g_loss + self.class_weight * class_loss
            stats["g_class_loss"] = class_loss.detach()
        return g_loss, stats
