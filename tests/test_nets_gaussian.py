"""model.arch=gaussian: G(z) = mu + sigma z, its gradients, its config and a GAN that fits it."""

from __future__ import annotations

import math

import pytest
import torch

from gankit import api
from gankit.config import load_config
from gankit.errors import GankitError
from gankit.eval.evaluate import evaluate
from gankit.nets import GaussianGenerator, MLPDiscriminator
from gankit.objectives import build_objective


def test_samples_are_mu_plus_sigma_times_the_latent():
    generator = GaussianGenerator(2, (2,), mu=1.5, sigma=0.5)
    latent = torch.tensor([[0.0, 1.0], [-2.0, 4.0]])
    assert generator(latent).tolist() == [[1.5, 2.0], [0.5, 3.5]]
    assert generator.sigma.tolist() == pytest.approx([0.5, 0.5])


def test_gradients_match_the_closed_form():
    # L = sum_i G(z_i) = n mu + sigma sum_i z_i: dL/dmu = n, dL/dlog_sigma = sigma sum_i z_i.
    generator = GaussianGenerator(1, (1,), mu=0.3, sigma=2.0)
    latent = torch.tensor([[0.5], [-1.0], [2.0]])
    generator(latent).sum().backward()
    assert generator.mu.grad.item() == pytest.approx(3.0)
    assert generator.log_sigma.grad.item() == pytest.approx(2.0 * 1.5)


def test_parameter_stats_report_what_it_samples():
    generator = GaussianGenerator(1, (1,), mu=-4.0, sigma=math.e)
    stats = generator.parameter_stats()
    assert stats["g_mu"].item() == pytest.approx(-4.0)
    assert stats["g_sigma"].item() == pytest.approx(math.e)


def test_density_is_the_normal_it_samples():
    generator = GaussianGenerator(1, (1,), mu=-4.0, sigma=0.5)
    points = torch.tensor([[-4.0], [-3.0], [0.0]])
    expected = [math.exp(-((x + 4.0) / 0.5) ** 2 / 2) / (0.5 * math.sqrt(2 * math.pi))
                for x in (-4.0, -3.0, 0.0)]
    assert generator.density(points).tolist() == pytest.approx(expected, rel=1e-5)
    two = GaussianGenerator(2, (2,), mu=0.0, sigma=1.0)  # independent coordinates: a product
    assert two.density(torch.zeros(1, 2)).item() == pytest.approx(1 / (2 * math.pi), rel=1e-6)


def test_the_run_picture_draws_the_exact_density(tmp_path, monkeypatch):
    from gankit.data import build_dataset
    from gankit.train import pictures
    from gankit.train.loop import Trainer

    drawn = {}
    monkeypatch.setattr(pictures, "plot_1d_frame",
                        lambda path, grid, *args, p_g=None, **kwargs: drawn.update(grid=grid,
                                                                                 p_g=p_g))
    config = load_config("toy-gaussian", ["model.arch=gaussian", "model.latent=normal",
                                          "model.latent_dim=1", "model.g_start=[5, 2]"])
    trainer = Trainer(config, tmp_path / "run", build_dataset(config.data), progress=False)
    trainer.pictures.snapshot(0)
    assert drawn["p_g"] == pytest.approx(
        [math.exp(-((x - 5) / 2) ** 2 / 2) / (2 * math.sqrt(2 * math.pi)) for x in drawn["grid"]],
        rel=1e-5)


@pytest.mark.parametrize("latent_dim, sigma", [(2, 1.0), (1, 0.0)])
def test_constructor_refuses_a_wrong_latent_or_sigma(latent_dim, sigma):
    with pytest.raises(ValueError, match="latent_dim|sigma"):
        GaussianGenerator(latent_dim, (1,), sigma=sigma)


def test_config_builds_a_gaussian_g_and_an_mlp_d():
    config = load_config("toy-gaussian", {"model.arch": "gaussian", "model.latent": "normal",
                                          "model.g_start": [2.0, 3.0]})
    objective = build_objective(config, (1,))
    assert isinstance(objective.generator, GaussianGenerator)
    assert isinstance(objective.discriminator, MLPDiscriminator)
    assert objective.generator.mu.item() == 2.0
    assert objective.generator.sigma.item() == pytest.approx(3.0)


@pytest.mark.parametrize("overrides, message", [
    ({"model.g_start": [0.0, 2.0]}, "model.g_start applies to model.arch=gaussian only"),
    ({"model.arch": "gaussian", "model.g_start": [0.0, -1.0]}, "sigma > 0"),
    ({"model.arch": "gaussian", "model.g_start": [0.0]}, "two numbers"),
    # toy-gaussian's U[-8, 8] noise: G's samples would be uniform, not the density it states.
    ({"model.arch": "gaussian"}, "model.arch=gaussian needs model.latent=normal, not 'uniform'"),
])
def test_config_refuses_bad_starts(overrides, message):
    with pytest.raises(GankitError, match=message):
        load_config("toy-gaussian", overrides)


def test_wrong_latent_dim_is_a_one_line_error_naming_the_arch():
    config = load_config("toy-gaussian", {"model.arch": "gaussian", "model.latent": "normal",
                                          "model.latent_dim": 3})
    with pytest.raises(GankitError, match="model.arch='gaussian'.*latent_dim=1, not 3"):
        build_objective(config, (1,))


def test_a_gan_fits_the_seeds_gaussian_with_it(tmp_path):
    # The seed's N(5, 1) is in the generator's family: the game's optimum is mu = 5, sigma = 1.
    run = api.train("toy-gaussian", tmp_path / "run", progress=False, **{
        "model.arch": "gaussian", "model.latent": "normal", "model.g_start": [1.0, 2.0],
        "model.d_activation": "leaky_relu", "model.d_hidden": [64, 64],
        "train.optimizer": "adam", "train.g_lr": 0.02, "train.d_lr": 0.02, "train.ema": 0.0,
        "train.steps": 1000, "log.sample_every": 1000, "log.checkpoint_every": 1000,
        "log.tensorboard": False})
    generator = api.load(run).generator
    print("mu, sigma:", generator.mu.item(), generator.sigma.item())
    assert generator.mu.item() == pytest.approx(5.0, abs=0.1)
    assert generator.sigma.item() == pytest.approx(1.0, abs=0.1)
    last = (run / "metrics.jsonl").read_text().splitlines()[-1]
    assert '"g_mu"' in last and '"g_sigma"' in last
    # G knows its density, so the divergences are exact: N(mu, sigma) against N(5, 1) in
    # closed form, KL(q‖p) = log(1 / sigma) + (sigma^2 + (mu - 5)^2) / 2 - 1/2.
    mu, sigma = generator.mu.item(), generator.sigma.item()
    results = evaluate(run, metrics=["divergences"])
    assert set(results) == {"kl_data_g/exact", "kl_g_data/exact", "jsd/exact"}
    assert results["kl_g_data/exact"] == pytest.approx(
        -math.log(sigma) + (sigma ** 2 + (mu - 5) ** 2) / 2 - 0.5, abs=1e-6)
    assert "(20,000 samples, p_g exact)" in (run / "report.md").read_text()
