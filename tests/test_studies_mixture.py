"""The mixture study: closed-form MLE, the numerical reverse-KL fit, grid KLs, and the GAN."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from scipy.optimize import minimize

from gankit import api
from gankit.data.toy import TOY_DATASETS
from gankit.errors import GankitError
from gankit.eval.divergences import js_divergence, toy_divergences
from gankit.studies import mixture, run_study
from gankit.studies.mixture import (
    describe_fit,
    fit_reverse_kl,
    gaussian,
    gaussian_mixture,
    integration_grid,
    jensen_shannon,
    kl_on_grid,
    maximum_likelihood_fit,
    measure_fit,
    reverse_kl,
)


def gaussian_kl(mu_a: float, sigma_a: float, mu_b: float, sigma_b: float) -> float:
    """Closed-form KL(N(mu_a, sigma_a^2) ‖ N(mu_b, sigma_b^2))."""
    return (math.log(sigma_b / sigma_a) + (sigma_a ** 2 + (mu_a - mu_b) ** 2) / (2 * sigma_b ** 2)
            - 0.5)


def as_tensors(mu: float, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.tensor(mu, dtype=torch.float64), torch.tensor(math.log(sigma),
                                                                 dtype=torch.float64))


def test_maximum_likelihood_closed_form_matches_a_numeric_mle_on_samples():
    p = gaussian_mixture((0.3, 0.7), (-2.0, 3.0), (0.5, 1.5))
    # Drawn with an explicit generator (Distribution.sample uses the global RNG).
    generator = torch.Generator().manual_seed(0)
    component = (torch.rand(400_000, generator=generator, dtype=torch.float64) < 0.7).long()
    means, stds = torch.tensor([-2.0, 3.0], dtype=torch.float64), torch.tensor([0.5, 1.5],
                                                                                dtype=torch.float64)
    samples = (means[component] + stds[component] * torch.randn(
        400_000, generator=generator, dtype=torch.float64)).numpy()

    def negative_log_likelihood(params):
        mu, log_sigma = params
        return np.mean(log_sigma + 0.5 * ((samples - mu) / np.exp(log_sigma)) ** 2)

    numeric = minimize(negative_log_likelihood, x0=[0.0, 0.0], method="Nelder-Mead",
                       options={"xatol": 1e-8, "fatol": 1e-12}).x
    mu, sigma = maximum_likelihood_fit(p)
    # mean 0.3 * -2 + 0.7 * 3 = 1.5; variance 0.3 (0.25 + 4) + 0.7 (2.25 + 9) - 1.5^2 = 6.9
    assert mu == pytest.approx(1.5, abs=1e-12)
    assert sigma == pytest.approx(math.sqrt(6.9), abs=1e-12)
    assert numeric[0] == pytest.approx(mu, abs=0.02)  # sampling error ~ 2.6 / sqrt(4e5)
    assert math.exp(numeric[1]) == pytest.approx(sigma, abs=0.02)
    assert sigma ** 2 == pytest.approx(float(p.variance), abs=1e-12)


def test_maximum_likelihood_of_the_study_mixture_is_wide_and_centred():
    mu, sigma = maximum_likelihood_fit(gaussian_mixture())
    assert mu == pytest.approx(0.0, abs=1e-12)
    assert sigma == pytest.approx(math.sqrt(17.0), abs=1e-12)


def test_reverse_kl_integral_matches_the_closed_form_gaussian_kl():
    p = gaussian(1.5, 0.7)
    for mu, sigma in [(1.5, 0.7), (0.0, 2.0), (4.0, 0.1)]:
        value = float(reverse_kl(p, *as_tensors(mu, sigma)))
        assert value == pytest.approx(gaussian_kl(mu, sigma, 1.5, 0.7), abs=1e-9)


def test_reverse_kl_fit_recovers_a_gaussian_p_exactly():
    p = gaussian(1.5, 0.7)
    mu, sigma = fit_reverse_kl(p, starts=[(-2.0, 3.0)])
    assert mu == pytest.approx(1.5, abs=1e-5)
    assert sigma == pytest.approx(0.7, abs=1e-5)
    assert float(reverse_kl(p, *as_tensors(mu, sigma))) == pytest.approx(0.0, abs=1e-9)


def test_reverse_kl_fit_sits_on_one_mode_of_the_separated_mixture():
    p = gaussian_mixture()
    mu, sigma = fit_reverse_kl(p)  # starts at mu = 1: the nearer mode is +4
    assert mu == pytest.approx(4.0, abs=0.05)
    assert sigma == pytest.approx(1.0, abs=0.05)
    # q covers one of two equal modes: KL(q ‖ p) ≈ -log 0.5
    assert float(reverse_kl(p, *as_tensors(mu, sigma))) == pytest.approx(math.log(2), abs=0.01)
    mirrored, _ = fit_reverse_kl(p, starts=[(-1.0, 1.0), (-4.0, 1.0), (4.0, 1.0)])
    assert mirrored == pytest.approx(-4.0, abs=0.05)


def test_grid_kls_match_the_closed_form_gaussian_kl_both_ways():
    p = gaussian(0.5, 1.3)
    for mu, sigma in [(0.5, 1.3), (2.0, 0.6), (-3.0, 2.5)]:
        found = measure_fit(p, mu, sigma)
        assert found["kl_data_model"] == pytest.approx(gaussian_kl(0.5, 1.3, mu, sigma),
                                                       abs=1e-9)
        assert found["kl_model_data"] == pytest.approx(gaussian_kl(mu, sigma, 0.5, 1.3),
                                                       abs=1e-9)
    q = gaussian(4.0, 0.05)  # far and narrow: log densities, not underflowing densities
    grid = integration_grid(p, 4.0, 0.05)
    assert kl_on_grid(p, q, grid) == pytest.approx(gaussian_kl(0.5, 1.3, 4.0, 0.05), rel=1e-9)


def test_differentiable_jsd_matches_the_package_jsd():
    p = gaussian_mixture()
    grid = integration_grid(p, 1.0, 2.0)
    points = torch.from_numpy(grid)
    with torch.no_grad():
        p_density = p.log_prob(points).exp().numpy()
        q_density = gaussian(1.0, 2.0).log_prob(points).exp().numpy()
        ours = float(jensen_shannon(p, *as_tensors(1.0, 2.0), points))
    assert ours == pytest.approx(js_divergence(p_density, q_density, grid), abs=1e-9)
    same = float(jensen_shannon(gaussian(1.0, 2.0), *as_tensors(1.0, 2.0), points))
    assert same == pytest.approx(0.0, abs=1e-12)


def test_describe_fit_names_the_mode_or_the_cover():
    p = gaussian_mixture()
    assert describe_fit(p, 3.9, 1.1) == "on the mode at 4"
    assert describe_fit(p, -4.2, 0.8) == "on the mode at -4"
    assert describe_fit(p, 0.0, 4.1) == "covering both modes"
    assert describe_fit(p, 8.0, 0.5) == "elsewhere"


@pytest.mark.parametrize("weights, means, stds", [
    ((0.5, 0.6), (-4.0, 4.0), (1.0, 1.0)),
    ((0.5, 0.5), (-4.0, 4.0), (1.0, 0.0)),
    ((1.0,), (-4.0, 4.0), (1.0, 1.0)),
])
def test_gaussian_mixture_rejects_bad_parameters(weights, means, stds):
    with pytest.raises(GankitError):
        gaussian_mixture(weights, means, stds)


def test_study_writes_its_files_and_the_gan_settles_on_a_mode(tmp_path, monkeypatch):
    # One GAN, with the study's own settings, keeps the test short.
    monkeypatch.setattr(mixture, "GAN_SETTINGS", {"GAN": mixture.GAN_SETTINGS["GAN"]})
    folder = run_study("mixture", tmp_path / "study", progress=False)
    assert {"mixture.png", "report.md", "results.json"} <= {p.name for p in folder.iterdir()}
    results = json.loads((folder / "results.json").read_text())
    gan = results["fits"]["GAN"]
    print("GAN fit:", gan)
    assert gan["verdict"].startswith("on the mode"), gan
    assert abs(gan["mu"]) == pytest.approx(4.0, abs=0.2)
    assert gan["sigma"] == pytest.approx(1.0, abs=0.2)
    assert results["fits"]["maximum likelihood"]["verdict"] == "covering both modes"
    assert "| GAN |" in (folder / "report.md").read_text()


def test_study_mixture_matches_the_mixture_1d_dataset():
    toy = TOY_DATASETS["mixture-1d"]()
    grid = torch.linspace(-10, 10, 201, dtype=torch.float64)
    assert torch.allclose(toy.log_prob(grid[:, None]), gaussian_mixture().log_prob(grid))


def test_a_gan_run_folder_retrains_from_its_config_alone(tmp_path):
    mu, sigma, run_dir = mixture.fit_gan(tmp_path / "study-gan", steps=60)
    again = api.train(run_dir / "config.yaml", tmp_path / "again", progress=False)
    generator = api.load(again).objective.generator  # the trained weights, not their EMA
    assert (generator.mu.item(), generator.sigma.item()) == (mu, sigma)
    first = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    second = [json.loads(line) for line in (again / "metrics.jsonl").read_text().splitlines()]
    assert [r["g_mu"] for r in first] == [r["g_mu"] for r in second]
    # The run's report compares with the whole mixture: mean 0, std sqrt(1 + 16).
    report = (run_dir / "report.md").read_text()
    assert "| mean | 0.000 |" in report and f"| std | {math.sqrt(17):.3f} |" in report


def test_toy_divergences_see_a_dropped_mode_of_the_mixture():
    # q = N(4, 1) on one mode of p = 0.5 N(-4, 1) + 0.5 N(4, 1): KL(q‖p) = log 2 up to the
    # other mode's mass under q (~1e-14), while KL(p‖q) is large.
    toy = TOY_DATASETS["mixture-1d"]()
    one_mode = np.random.default_rng(0).normal(4.0, 1.0, 100_000)
    found = toy_divergences(one_mode, toy)
    assert found["kl_g_data"] == pytest.approx(math.log(2), abs=0.02)
    assert found["kl_data_g"] > 5
    both = toy.sample(100_000, torch.Generator().manual_seed(0))[:, 0].numpy()
    covered = toy_divergences(both, toy)
    assert covered["kl_g_data"] < 0.02 and covered["kl_data_g"] < 0.02


def test_toy_divergences_of_a_known_density_are_exact():
    toy = TOY_DATASETS["mixture-1d"]()
    one_mode = torch.distributions.Normal(4.0, 1.0)
    found = toy_divergences(None, toy, lambda points: one_mode.log_prob(points[:, 0]).exp())
    # Against scipy's adaptive quadrature of the same two densities (no grid, no samples).
    q = stats.norm(4, 1).pdf

    def p(x):
        return 0.5 * stats.norm(-4, 1).pdf(x) + 0.5 * stats.norm(4, 1).pdf(x)

    def kl(a, b):
        return integrate.quad(lambda x: a(x) * (np.log(a(x)) - np.log(b(x))) if a(x) > 0 else 0,
                              -20, 20, points=[-4, 0, 4], limit=200)[0]

    assert found["kl_g_data"] == pytest.approx(kl(q, p), abs=1e-6)  # log 2, less ~1e-4
    assert found["kl_g_data"] == pytest.approx(math.log(2), abs=2e-4)
    assert found["kl_data_g"] == pytest.approx(kl(p, q), abs=1e-4)  # about 15.3
    itself = toy_divergences(None, toy, toy.density)
    assert max(itself.values()) < 1e-9
