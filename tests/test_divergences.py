"""Grid divergences against closed forms and against quad integrals of scipy.stats densities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from gankit.data.toy import gaussian_1d
from gankit.eval.divergences import (
    density_on_grid,
    gan_value,
    js_divergence,
    kde_density,
    kl_divergence,
    optimal_discriminator,
    toy_divergences,
)

GRID = np.linspace(-5.0, 15.0, 20001)
LOG_4 = math.log(4.0)


def normal(loc: float, scale: float) -> torch.distributions.Normal:
    return torch.distributions.Normal(
        torch.tensor(loc, dtype=torch.float64), torch.tensor(scale, dtype=torch.float64)
    )


MIXTURE_WEIGHTS, MIXTURE_LOCS, MIXTURE_SCALES = (0.3, 0.7), (0.0, 6.0), (1.0, 0.8)


def mixture() -> torch.distributions.MixtureSameFamily:
    return torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(probs=torch.tensor(MIXTURE_WEIGHTS, dtype=torch.float64)),
        torch.distributions.Normal(
            torch.tensor(MIXTURE_LOCS, dtype=torch.float64),
            torch.tensor(MIXTURE_SCALES, dtype=torch.float64),
        ),
    )


def mixture_logpdf(x: float) -> float:
    return float(
        np.logaddexp.reduce(
            [
                math.log(w) + stats.norm.logpdf(x, loc, scale)
                for w, loc, scale in zip(MIXTURE_WEIGHTS, MIXTURE_LOCS, MIXTURE_SCALES, strict=True)
            ]
        )
    )


def quad_jsd(logpdf_p, logpdf_q, lower: float, upper: float) -> float:
    """JSD by adaptive quadrature, in log space so the integrand is defined in the far tails."""

    def integrand(x: float) -> float:
        log_p, log_q = logpdf_p(x), logpdf_q(x)
        log_m = np.logaddexp(log_p, log_q) - math.log(2.0)
        return 0.5 * math.exp(log_p) * (log_p - log_m) + 0.5 * math.exp(log_q) * (log_q - log_m)

    value, _ = integrate.quad(integrand, lower, upper, points=[0.0, 3.0, 5.0, 6.0], limit=200)
    return value


P_DATA_LOGPDF = stats.norm(5.0, 1.0).logpdf
GENERATORS = {
    "normal": (lambda: normal(3.0, 1.5), stats.norm(3.0, 1.5).logpdf),
    "mixture": (mixture, mixture_logpdf),
}


def test_optimal_discriminator_is_the_density_ratio_and_half_where_both_vanish():
    p_data = np.array([0.0, 1.0, 0.0, 3.0])
    p_g = np.array([0.0, 0.0, 2.0, 1.0])
    np.testing.assert_array_equal(optimal_discriminator(p_data, p_g), [0.5, 1.0, 0.0, 0.75])


def test_value_at_equilibrium_is_minus_log_4():
    p = density_on_grid(normal(5.0, 1.0), GRID)
    value = gan_value(p, p, optimal_discriminator(p, p), GRID)
    assert value == pytest.approx(-LOG_4, abs=1e-3)


@pytest.mark.parametrize("generator", sorted(GENERATORS))
def test_value_at_optimal_discriminator_is_minus_log_4_plus_twice_jsd(generator):
    make_distribution, generator_logpdf = GENERATORS[generator]
    p_data = density_on_grid(normal(5.0, 1.0), GRID)
    p_g = density_on_grid(make_distribution(), GRID)
    reference_jsd = quad_jsd(P_DATA_LOGPDF, generator_logpdf, -40.0, 50.0)

    value = gan_value(p_data, p_g, optimal_discriminator(p_data, p_g), GRID)

    assert value == pytest.approx(-LOG_4 + 2.0 * reference_jsd, abs=1e-4)
    assert js_divergence(p_data, p_g, GRID) == pytest.approx(reference_jsd, abs=1e-5)


@pytest.mark.parametrize("shift", [-0.05, 0.05])
def test_optimal_discriminator_maximises_the_value(shift):
    p_data = density_on_grid(normal(5.0, 1.0), GRID)
    p_g = density_on_grid(normal(3.0, 1.5), GRID)
    best = optimal_discriminator(p_data, p_g)
    perturbed = np.clip(best + shift, 0.0, 1.0)

    best_value = gan_value(p_data, p_g, best, GRID)
    assert gan_value(p_data, p_g, perturbed, GRID) < best_value - 1e-4


def test_kl_divergence_of_gaussians_matches_closed_form():
    grid = np.linspace(-20.0, 20.0, 40001)
    (mu1, sigma1), (mu2, sigma2) = (0.0, 1.0), (1.0, 2.0)
    p = stats.norm.pdf(grid, mu1, sigma1)
    q = stats.norm.pdf(grid, mu2, sigma2)
    closed_form = (
        math.log(sigma2 / sigma1) + (sigma1**2 + (mu1 - mu2) ** 2) / (2.0 * sigma2**2) - 0.5
    )
    assert kl_divergence(p, q, grid) == pytest.approx(closed_form, abs=1e-6)
    assert kl_divergence(p, p, grid) == 0.0


def test_kl_divergence_stays_finite_where_q_vanishes_on_p_support():
    grid = np.linspace(-60.0, 60.0, 12001)
    p = stats.norm.pdf(grid, 0.0, 1.0)
    q = stats.norm.pdf(grid, 50.0, 1.0)  # underflows to exactly 0 near x = 0
    assert not np.all(q[p > 0] > 0)
    divergence = kl_divergence(p, q, grid)
    assert math.isfinite(divergence)
    assert divergence > 700.0


def test_jsd_of_disjoint_gaussians_is_log_2_and_of_equal_ones_is_0():
    grid = np.linspace(-15.0, 15.0, 30001)
    p = stats.norm.pdf(grid, -10.0, 0.1)
    q = stats.norm.pdf(grid, 10.0, 0.1)
    assert js_divergence(p, q, grid) == pytest.approx(math.log(2.0), abs=1e-6)
    assert js_divergence(p, p, grid) == pytest.approx(0.0, abs=1e-12)


def test_kde_density_of_normal_samples_approximates_the_normal():
    samples = np.random.default_rng(0).standard_normal(20000)
    grid = np.linspace(-6.0, 6.0, 1201)
    density = kde_density(samples, grid)

    assert density.dtype == np.float64
    assert integrate.trapezoid(density, grid) == pytest.approx(1.0, abs=1e-2)
    assert density[600] == pytest.approx(1.0 / math.sqrt(2.0 * math.pi), abs=0.02)


def test_kde_density_bandwidth_is_the_kernel_standard_deviation():
    samples = np.array([-1.0, 2.0])
    grid = np.array([-3.0, 0.0, 0.5, 4.0, 1e3])
    expected = 0.5 * (stats.norm.pdf(grid, -1.0, 0.3) + stats.norm.pdf(grid, 2.0, 0.3))
    np.testing.assert_allclose(kde_density(samples, grid, bandwidth=0.3), expected, rtol=1e-10)


def test_kde_density_rejects_collapsed_samples():
    with pytest.raises(ValueError, match="two distinct samples"):
        kde_density(np.full(10, 3.0), GRID)


def test_density_on_grid_matches_scipy_in_float64():
    grid = np.linspace(-4.0, 4.0, 81)
    np.testing.assert_allclose(
        density_on_grid(normal(0.5, 2.0), grid), stats.norm.pdf(grid, 0.5, 2.0), rtol=1e-12
    )
    expected_mixture = sum(
        w * stats.norm.pdf(grid, loc, scale)
        for w, loc, scale in zip(MIXTURE_WEIGHTS, MIXTURE_LOCS, MIXTURE_SCALES, strict=True)
    )
    np.testing.assert_allclose(density_on_grid(mixture(), grid), expected_mixture, rtol=1e-12)


def test_density_on_grid_returns_float64_for_float32_parameters():
    grid = np.linspace(-4.0, 4.0, 81)
    float32_normal = torch.distributions.Normal(torch.tensor(0.5), torch.tensor(2.0))
    density = density_on_grid(float32_normal, grid)
    assert density.dtype == np.float64
    # log(scale) is taken in the parameters' float32, hence single-precision agreement.
    np.testing.assert_allclose(density, stats.norm.pdf(grid, 0.5, 2.0), rtol=1e-6)


def test_density_on_grid_rejects_batched_distributions():
    batched = torch.distributions.Normal(torch.zeros(2), torch.ones(2))
    with pytest.raises(ValueError, match=r"batch shape \(2,\)"):
        density_on_grid(batched, GRID)


@pytest.mark.parametrize("scale", [4.0, 10.0])
def test_toy_divergences_count_a_wide_generators_mass_beyond_the_data(scale):
    # Data N(5, 1), G N(5, scale^2): KL(G || data) = -log(scale) + (scale^2 - 1) / 2 and
    # KL(data || G) = log(scale) + (1 / scale^2 - 1) / 2. The grid was the data's 5 +- 10 only:
    # 5.38 for 6.11 and 8.27 for 47.20.
    data = gaussian_1d()
    generator = normal(5.0, scale)
    samples = np.random.default_rng(0).normal(5.0, scale, 20000)
    exact = toy_divergences(samples, data, lambda points: generator.log_prob(points[:, 0]).exp())
    assert exact["kl_g_data"] == pytest.approx(-math.log(scale) + (scale**2 - 1) / 2, rel=1e-4)
    assert exact["kl_data_g"] == pytest.approx(math.log(scale) + (1 / scale**2 - 1) / 2,
                                               rel=1e-4)
    estimated = toy_divergences(samples, data)  # p_g a KDE of the same samples
    assert estimated["kl_g_data"] == pytest.approx(exact["kl_g_data"], rel=0.05)
