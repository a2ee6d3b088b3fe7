"""The unit of variation: an objective knows its players and what each phase computes.

The training loop (gankit.train.loop) knows everything else: optimizers, the k-step schedule,
logging, samples and checkpoints. A phase returns a scalar loss to minimise and a dict of
detached scalar statistics for the logs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gankit.errors import GankitError

PhaseResult = tuple[torch.Tensor, dict[str, torch.Tensor]]


def check_label_range(data, num_classes: int) -> None:
    """Refuse labels past model.num_classes up front, rather than as an index error in the
    first step that draws one (data without a `labels` tensor is not checked)."""
    labels = getattr(data, "labels", None)
    if labels is not None and int(labels.max()) >= num_classes:
        raise GankitError(f"model.num_classes={num_classes}, but {data.name} has labels up to "
                          f"{int(labels.max())}; set model.num_classes={int(labels.max()) + 1}")


class Objective(nn.Module):
    """Base class. Subclasses set `self.generator` and `self.discriminator` (or None).

    Args:
        latent_dim: size of the noise vector z.
        latent: "normal" for N(0, I) or "uniform" for U[-latent_range, latent_range]^d.
        latent_range: half-width of the uniform noise.
    """

    generator: nn.Module
    discriminator: nn.Module | None
    # Whether `generator_phase` needs a real batch (a VAE's reconstruction or feature matching
    # does; a plain GAN's G step does not, and drawing one would cost a batch every step).
    generator_uses_real = False

    def __init__(self, latent_dim: int, latent: str = "normal", latent_range: float = 1.0):
        super().__init__()
        self.latent_dim = latent_dim
        self.latent = latent
        self.latent_range = latent_range
        # A moving average of the generator's weights, set by the loop when train.ema > 0;
        # samples and pictures come from it when it exists.
        self.generator_ema: nn.Module | None = None
        # The loop's iteration (0-based), set before each one: for terms on a schedule (lazy R1).
        self.iteration = 0

    @property
    def device(self) -> torch.device:
        """Where the players live (the first weight found)."""
        return next(self.parameters()).device

    def players(self) -> dict[str, nn.Module]:
        """The nets that have an optimizer each, by name."""
        found = {"generator": self.generator, "discriminator": self.discriminator}
        return {name: net for name, net in found.items() if net is not None}

    def sample_latent(self, n: int, generator: torch.Generator | None = None,
                      device: torch.device | str = "cpu") -> torch.Tensor:
        """n noise vectors from the prior p_z, drawn with `generator` (on the CPU, then moved)."""
        if self.latent == "uniform":
            unit = torch.rand(n, self.latent_dim, generator=generator)
            noise = (2 * unit - 1) * self.latent_range
        else:
            noise = torch.randn(n, self.latent_dim, generator=generator)
        return noise.to(device)

    def fixed_latent(self, n: int, generator: torch.Generator,
                     device: torch.device | str = "cpu") -> torch.Tensor:
        """The noise of the run's picture grids (conditional objectives order the labels)."""
        return self.sample_latent(n, generator, device)

    @property
    def sampler(self) -> nn.Module:
        """The generator to draw samples from: the weight average where one exists."""
        return self.generator_ema if self.generator_ema is not None else self.generator

    @torch.no_grad()
    def generate(self, latent: torch.Tensor) -> torch.Tensor:
        """G(z) from the training generator without building a graph (e.g. for D's phase)."""
        return self.generator(latent)

    @torch.no_grad()
    def sample(self, latent: torch.Tensor) -> torch.Tensor:
        """G(z) from `sampler`, for pictures, sampling and evaluation."""
        return self.sampler(latent)

    def evaluate_extra(self, data_root=None) -> dict[str, float]:
        """Numbers the objective measures about its own players (a semi-supervised D's test
        error), logged at every log.eval_every with the sample metrics; none by default.

        Args:
            data_root: where datasets live, for objectives that read a test split.

        Returns:
            A flat dict of floats, keyed like gankit.eval's results ("metric/nN").
        """
        return {}

    def check_data(self, data) -> None:
        """Raise `GankitError` if this game cannot train on `data` (the loop asks before its
        first picture or step); objectives that need labels or pairs override this."""

    def real_batch(self, data, n: int, generator: torch.Generator) -> Any:
        """The real minibatch a phase receives: images or points here; objectives that need
        labels or pairs override this (a tensor or a tuple of tensors, moved to the device)."""
        return data.sample(n, generator)

    def discriminator_phase(self, real: Any, latent: torch.Tensor) -> PhaseResult:
        raise NotImplementedError

    def generator_phase(self, latent: torch.Tensor, real: Any = None) -> PhaseResult:
        """G's loss; `real` is a real batch only when `generator_uses_real` is set."""
        raise NotImplementedError
