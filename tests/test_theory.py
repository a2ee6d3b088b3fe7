"""The theory of the seeds, checked against the loop: D* = p_data / (p_data + p_g).

The -log 4 and JSD identities are checked by numerical integration in test_divergences.py.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from conftest import tiny_config
from gankit.data import build_dataset
from gankit.data.toy import ToyDistribution
from gankit.eval.divergences import optimal_discriminator
from gankit.nets import MLPDiscriminator
from gankit.objectives import GANObjective
from gankit.train.loop import Trainer


class FixedMixtureGenerator(nn.Module):
    """p_g = 1/2 N(3, 0.7^2) + 1/2 N(6.5, 0.7^2), pushed forward from z ~ N(0, I_2).

    It has no trainable weights, so the loop runs only the discriminator's phase.
    """

    means = (3.0, 6.5)
    std = 0.7

    def forward(self, latent):
        centre = torch.where(latent[:, :1] > 0, self.means[1], self.means[0])
        return centre + self.std * latent[:, 1:2]


def test_discriminator_trained_by_the_loop_approaches_the_optimal_discriminator(tmp_path):
    config = tiny_config("toy-gaussian", **{
        "train.steps": 1500, "train.batch_size": 512, "train.optimizer": "adam",
        "train.d_lr": 2e-3, "log.every": 500, "log.sample_every": 1500,
        "log.checkpoint_every": 1500, "seed": 1})
    data = build_dataset(config.data)  # p_data = N(5, 1)
    discriminator = MLPDiscriminator((1,), [64, 64, 64], activation="tanh")
    objective = GANObjective(FixedMixtureGenerator(), discriminator, latent_dim=2)
    trainer = Trainer(config, tmp_path / "run", data, objective=objective)
    assert set(trainer.optimizers) == {"discriminator"}
    trainer.fit()
    print("mean |D - D*| on the support:", end=" ")

    grid = np.linspace(0.0, 10.0, 1001)
    p_data = data.distribution.density(torch.from_numpy(grid)[:, None]).numpy()
    p_g = ToyDistribution(torch.tensor([[3.0], [6.5]]), 0.7, "p_g").density(
        torch.from_numpy(grid)[:, None]).numpy()
    d_star = optimal_discriminator(p_data, p_g)
    with torch.no_grad():
        d_learned = torch.sigmoid(discriminator(torch.from_numpy(grid).float()[:, None])).numpy()
    support = (p_data + p_g) > 0.05  # where samples of either kind actually land
    error = np.abs(d_learned - d_star)[support].mean()
    print(f"{error:.4f}")
    assert error < 0.05, error
