"""The smallest generator: a Gaussian with learnable mean and std (model.arch=gaussian).

It is the model family of the seeds' mode-dropping picture (one Gaussian fitted to a mixture),
so a GAN can be compared exactly with maximum likelihood and reverse KL, which have closed or
numerical solutions in the same family.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class GaussianGenerator(nn.Module):
    """G(z) = mu + sigma * z per coordinate: fed z ~ N(0, I), its samples are N(mu, diag sigma^2).

    sigma is kept as log sigma so that a gradient step can never make it negative.

    Args:
        latent_dim: size of the noise vector: one coordinate per sample coordinate.
        out_shape: shape of one sample.
        mu: the starting mean of every coordinate.
        sigma: the starting std of every coordinate, positive.
    """

    def __init__(self, latent_dim: int, out_shape: tuple[int, ...], mu: float = 0.0,
                 sigma: float = 1.0):
        super().__init__()
        self.out_shape = tuple(out_shape)
        if latent_dim != math.prod(self.out_shape):
            raise ValueError(f"a Gaussian generator of samples {self.out_shape} needs "
                             f"latent_dim={math.prod(self.out_shape)}, not {latent_dim}")
        if not sigma > 0:
            raise ValueError(f"a Gaussian generator's starting sigma={sigma} must be > 0")
        self.latent_dim = latent_dim
        self.mu = nn.Parameter(torch.full(self.out_shape, float(mu)))
        self.log_sigma = nn.Parameter(torch.full(self.out_shape, math.log(sigma)))

    @property
    def sigma(self) -> torch.Tensor:
        return self.log_sigma.exp()

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.mu + self.sigma * latent.view(len(latent), *self.out_shape)

    def density(self, points: torch.Tensor) -> torch.Tensor:
        """p_g at `points` (N, *out_shape), exactly: the product of the coordinates' normals."""
        normal = torch.distributions.Normal(self.mu, self.sigma)
        return normal.log_prob(points).flatten(1).sum(1).exp()

    def parameter_stats(self) -> dict[str, torch.Tensor]:
        """What it samples, for metrics.jsonl: mu and sigma, averaged over the coordinates."""
        return {"g_mu": self.mu.detach().mean(), "g_sigma": self.sigma.detach().mean()}
