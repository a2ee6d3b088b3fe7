from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import tiny_config
from gankit.data import build_dataset
from gankit.objectives.gan import GANObjective
from gankit.train.loop import Trainer


def linear_game(**penalties) -> GANObjective:
    # D(x) = w.x has grad_x D = w for every x, so R1 = |w|^2 exactly.
    discriminator = nn.Linear(2, 1, bias=False, dtype=torch.float64)
    with torch.no_grad():
        discriminator.weight.copy_(torch.tensor([[3.0, 4.0]]))
    generator = nn.Linear(2, 2, dtype=torch.float64)
    return GANObjective(generator, discriminator, latent_dim=2, **penalties)


def test_lazy_r1_adds_the_penalty_every_nth_iteration_weighted_n_times():
    real = torch.randn(6, 2, dtype=torch.float64)
    latent = torch.randn(6, 2, dtype=torch.float64)
    plain = linear_game()
    lazy = linear_game(r1_weight=0.2, r1_every=3)
    lazy.generator.load_state_dict(plain.generator.state_dict())
    for iteration in range(6):
        plain.iteration = lazy.iteration = iteration
        base, _ = plain.discriminator_phase(real, latent)
        loss, stats = lazy.discriminator_phase(real, latent)
        due = iteration % 3 == 0
        assert ("r1_penalty" in stats) == due
        # gamma/2 * N * |w|^2 = 0.1 * 3 * 25 on iterations 0 and 3, nothing on the others.
        expected = 0.1 * 3 * 25.0 if due else 0.0
        assert (loss - base).item() == pytest.approx(expected, rel=1e-12, abs=1e-12)
        # ...and its gradient, gamma * N * w, reaches D's weight.
        lazy.discriminator.zero_grad()
        plain.discriminator.zero_grad()
        loss.backward()
        base.backward()
        extra = lazy.discriminator.weight.grad - plain.discriminator.weight.grad
        expected_grad = 0.2 * 3 * torch.tensor([[3.0, 4.0]], dtype=torch.float64)
        torch.testing.assert_close(extra, expected_grad if due else torch.zeros_like(extra))


def test_the_loop_counts_iterations_for_lazy_r1(tmp_path):
    config = tiny_config("toy-grid", **{"loss.r1_weight": 0.1, "loss.r1_every": 3})
    trainer = Trainer(config, tmp_path / "lazy", build_dataset(config.data))
    penalised = []
    for step in range(7):  # fit() advances trainer.step after each train_step
        trainer.step = step
        penalised.append("r1_penalty" in trainer.train_step())
    assert penalised == [True, False, False, True, False, False, True]
