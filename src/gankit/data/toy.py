"""Toy distributions with known densities: the seed's 1D Gaussian and PacGAN's 2D mixtures.

Each one wraps a `torch.distributions` object, so it knows its own density (`log_prob`) for
the pictures, for D* and for exact divergences. Sampling is done by hand from the same
parameters because `Distribution.sample()` draws from torch's global RNG, while gankit draws
everything from explicit per-run `torch.Generator`s so a run is reproducible from its seed.
"""

from __future__ import annotations

import math

import torch
from torch import distributions as D


class ToyDistribution:
    """A 1D Gaussian or a mixture of isotropic Gaussians in d dimensions.

    Args:
        means: (K, d) component means.
        std: the common standard deviation of every component.
        name: a short label for pictures and reports.
    """

    def __init__(self, means: torch.Tensor, std: float, name: str):
        self.means = means.to(torch.float64)
        self.std = float(std)
        self.name = name
        self.dim = self.means.shape[1]
        components = D.Independent(D.Normal(self.means, torch.full_like(self.means, self.std)), 1)
        mixing = D.Categorical(torch.full((len(self.means),), 1.0 / len(self.means),
                                          dtype=torch.float64))
        self.distribution = D.MixtureSameFamily(mixing, components)

    @property
    def n_modes(self) -> int:
        return len(self.means)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw n points (float32, n x d) from the mixture using `generator`."""
        component = torch.randint(len(self.means), (n,), generator=generator)
        noise = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return (self.means[component] + self.std * noise).to(torch.float32)

    def log_prob(self, points: torch.Tensor) -> torch.Tensor:
        """Log density at `points` (n x d), in float64."""
        return self.distribution.log_prob(points.to(torch.float64))

    def density(self, points: torch.Tensor) -> torch.Tensor:
        return self.log_prob(points).exp()


def gaussian_1d(mean: float = 5.0, std: float = 1.0) -> ToyDistribution:
    """The seed's 1D example: real data from N(5, 1)."""
    return ToyDistribution(torch.tensor([[mean]]), std, name=f"N({mean:g}, {std:g}^2)")


# mixture-1d's modes and std, which gankit.studies.mixture fits as well.
MIXTURE_MEANS, MIXTURE_STD = (-4.0, 4.0), 1.0


def mixture_1d(means: tuple[float, ...] = MIXTURE_MEANS, std: float = MIXTURE_STD
               ) -> ToyDistribution:
    """The seeds' mode-dropping example: an equal mixture of 1D Gaussians, by default
    0.5 N(-4, 1) + 0.5 N(4, 1), modes eight standard deviations apart."""
    name = " + ".join(f"{1 / len(means):g} N({m:g},{std:g})" for m in means)
    return ToyDistribution(torch.tensor(means)[:, None], std, name=name)


def ring(n_modes: int = 8, radius: float = 1.0, std: float = 0.01) -> ToyDistribution:
    """PacGAN's ring: modes at angles 2*pi*k/n for k = 0..n-1.

    `linspace(0, 2*pi, n)` would put the first and last mode on the same point, leaving n-1
    distinct modes; arange(n) * 2*pi/n gives n distinct ones.
    """
    angles = torch.arange(n_modes, dtype=torch.float64) * (2 * math.pi / n_modes)
    means = radius * torch.stack([angles.cos(), angles.sin()], dim=1)
    return ToyDistribution(means, std, name=f"ring of {n_modes}")


def grid(side: int = 5, spacing: float = 2.0, std: float = 0.05) -> ToyDistribution:
    """PacGAN's grid: side x side modes on {-4, -2, 0, 2, 4}^2 for the default 5 x 2."""
    ticks = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * spacing
    xs, ys = torch.meshgrid(ticks, ticks, indexing="ij")
    means = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)
    return ToyDistribution(means, std, name=f"grid of {side * side}")


TOY_DATASETS = {"gaussian-1d": gaussian_1d, "mixture-1d": mixture_1d, "ring": ring,
                "grid": grid}
