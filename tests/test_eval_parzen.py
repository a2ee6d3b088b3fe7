"""Parzen-window log-likelihood against scipy's Gaussian log pdf and a known 1-D density."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from gankit.eval.parzen import DEFAULT_SIGMAS, parzen_log_likelihood, select_sigma


def test_one_sample_gives_the_gaussian_log_pdf():
    rng = np.random.default_rng(0)
    sample = rng.normal(size=(1, 5))
    test = rng.normal(size=(40, 5))
    sigma = 0.7
    expected = stats.multivariate_normal.logpdf(test, mean=sample[0], cov=sigma**2 * np.eye(5))
    mean, standard_error = parzen_log_likelihood(sample, test, sigma, batch_size=16)
    assert mean == pytest.approx(expected.mean(), rel=1e-12)
    assert standard_error == pytest.approx(expected.std() / math.sqrt(40), rel=1e-12)


def test_two_samples_average_their_densities_and_images_are_flattened():
    rng = np.random.default_rng(1)
    samples = rng.normal(size=(2, 1, 2, 2))  # two 2x2 one-channel "images"
    test = rng.normal(size=(10, 1, 2, 2))
    sigma = 0.5
    densities = [
        stats.multivariate_normal.pdf(
            test.reshape(10, 4), mean=sample.reshape(4), cov=sigma**2 * np.eye(4)
        )
        for sample in samples
    ]
    expected = np.log(0.5 * (densities[0] + densities[1])).mean()
    mean, _ = parzen_log_likelihood(torch.from_numpy(samples), torch.from_numpy(test), sigma)
    assert mean == pytest.approx(expected, rel=1e-12)


def test_many_samples_approach_the_true_average_log_density():
    # Samples and test points from N(0, 1). The Parzen estimate has mean N(0, 1 + sigma^2); with
    # sigma = 0.1 its expected log density differs from the true one by only
    # KL(N(0, 1) || N(0, 1.01)) ~ sigma^4 / 4 = 2.5e-5 nats. The rest is the estimate's noise,
    # relative variance v(x) = 1 / (2 sqrt(pi) N sigma p(x)) (3.5e-4 at the mode for N = 20000,
    # 0.014 at |x| = 2.8): it biases log p by -v/2, about -5e-4 averaged over test points, and
    # scatters it by ~1e-3 (seeds 0-3 gave -2.4e-3, -3e-5, -2e-4, -1e-3). Comparing with the
    # true log density at the same test points removes the test set's own spread
    # (0.71 / sqrt(2000) = 0.016). So 0.01 nats holds with margin, while a wrong normaliser
    # (sigma for sigma^2, a lost 1/2, log 2 pi) is off by 0.9 nats or more.
    generator = torch.Generator().manual_seed(0)
    samples = torch.randn(20_000, 1, generator=generator, dtype=torch.float64)
    test = torch.randn(2000, 1, generator=generator, dtype=torch.float64)
    true_mean = stats.norm.logpdf(test.numpy()).mean()
    mean, standard_error = parzen_log_likelihood(samples, test, sigma=0.1)
    assert mean == pytest.approx(true_mean, abs=0.01)
    assert standard_error == pytest.approx(0.71 / math.sqrt(2000), rel=0.1)


def test_select_sigma_picks_the_grid_maximum():
    generator = torch.Generator().manual_seed(1)
    samples = torch.randn(500, 2, generator=generator)
    validation = torch.randn(300, 2, generator=generator)
    sigmas = np.logspace(-2, 1, 12)
    best = select_sigma(samples, validation, sigmas)
    scores = {sigma: parzen_log_likelihood(samples, validation, sigma)[0] for sigma in sigmas}
    assert best == max(scores, key=scores.get)
    # An interior maximum: both neighbours on the grid score lower.
    index = int(np.flatnonzero(sigmas == best)[0])
    assert 0 < index < len(sigmas) - 1
    assert scores[best] > scores[sigmas[index - 1]]
    assert scores[best] > scores[sigmas[index + 1]]
    assert select_sigma(samples, validation) in DEFAULT_SIGMAS


def test_extreme_distances_stay_finite():
    # exp(-d^2 / 2 sigma^2) underflows to 0 for d = 1000, sigma = 0.1 (exponent -5e7), so a
    # naive log of the sum would be -inf; logsumexp keeps the nearest sample's exact term.
    samples = np.array([[0.0, 0.0], [1.0, 0.0]])
    test = np.array([[1000.0, 0.0], [0.0, 3000.0]])
    sigma = 0.1
    mean, standard_error = parzen_log_likelihood(samples, test, sigma)
    assert math.isfinite(mean) and math.isfinite(standard_error)
    log_normaliser = math.log(2) + math.log(2 * math.pi * sigma**2)
    nearest_terms = [-(999.0**2), -(3000.0**2)]  # (1000, 0) is 999 from (1, 0)
    second_terms = [-(1000.0**2), -(3000.0**2 + 1.0)]
    expected = [
        np.logaddexp(a / (2 * sigma**2), b / (2 * sigma**2)) - log_normaliser
        for a, b in zip(nearest_terms, second_terms, strict=True)
    ]
    assert mean == pytest.approx(np.mean(expected), rel=1e-9)


def test_bad_input_raises_value_error():
    samples = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(5, 2\)"):
        parzen_log_likelihood(samples, np.zeros((5, 2)), 0.1)
    with pytest.raises(ValueError, match=r"test must be .*\(5,\)"):
        parzen_log_likelihood(samples, np.zeros(5), 0.1)
    with pytest.raises(ValueError, match=r"sigmas must be positive numbers, got \[0.0\]"):
        parzen_log_likelihood(samples, samples, 0.0)
    with pytest.raises(ValueError, match=r"sigmas must be positive numbers, got \[\]"):
        select_sigma(samples, samples, [])
    with pytest.raises(ValueError, match=r"samples of shape \(1, 3\) contains NaN"):
        parzen_log_likelihood(np.full((1, 3), np.nan), samples, 0.1)
