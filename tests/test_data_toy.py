"""Toy distributions: exact parameters, seeded sampling that matches the density, and densities
checked against scipy and against hand-computed mixtures."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats

from gankit.config import DataConfig
from gankit.data import PointData, build_dataset
from gankit.data.toy import TOY_DATASETS, ToyDistribution, gaussian_1d, grid, mixture_1d, ring

N = 20_000


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- parameters


def test_ring_has_8_distinct_modes_on_the_unit_circle_at_2pi_k_over_8():
    dist = ring()
    means = dist.means
    assert means.shape == (8, 2)
    assert dist.n_modes == 8 and dist.dim == 2
    radii = means.norm(dim=1)
    assert torch.allclose(radii, torch.ones(8, dtype=torch.float64), rtol=0, atol=1e-12)
    expected = torch.tensor([[math.cos(2 * math.pi * k / 8), math.sin(2 * math.pi * k / 8)]
                             for k in range(8)], dtype=torch.float64)
    assert torch.allclose(means, expected, rtol=0, atol=1e-12)
    assert dist.std == 0.01


def test_ring_modes_never_coincide():
    # linspace(0, 2*pi, 8) would put modes 0 and 7 on the same point.
    means = ring().means
    distances = torch.cdist(means, means)
    off_diagonal = distances[~torch.eye(8, dtype=torch.bool)]
    assert off_diagonal.min().item() >= 2 * math.sin(math.pi / 8) - 1e-9
    assert len({(round(x, 9), round(y, 9)) for x, y in means.tolist()}) == 8


@pytest.mark.parametrize("n_modes", [3, 5, 12])
def test_ring_other_sizes_are_evenly_spaced(n_modes):
    means = ring(n_modes=n_modes, radius=2.0).means
    angles = torch.atan2(means[:, 1], means[:, 0]).remainder(2 * math.pi)
    expected = torch.arange(n_modes, dtype=torch.float64) * 2 * math.pi / n_modes
    assert torch.allclose(angles, expected, atol=1e-12)
    assert torch.allclose(means.norm(dim=1), torch.full((n_modes,), 2.0, dtype=torch.float64))


def test_grid_has_25_modes_on_the_lattice():
    dist = grid()
    assert dist.means.shape == (25, 2)
    assert dist.n_modes == 25
    got = {tuple(p) for p in dist.means.tolist()}
    assert got == set(itertools.product([-4.0, -2.0, 0.0, 2.0, 4.0], repeat=2))
    assert dist.std == 0.05


def test_gaussian_1d_parameters():
    dist = gaussian_1d()
    assert dist.means.tolist() == [[5.0]]
    assert dist.std == 1.0
    assert dist.dim == 1 and dist.n_modes == 1


def test_mixture_1d_parameters_and_density():
    dist = mixture_1d()
    assert dist.means.tolist() == [[-4.0], [4.0]]
    assert dist.std == 1.0 and dist.dim == 1 and dist.n_modes == 2
    # 0.5 N(-4, 1) + 0.5 N(4, 1) by hand at three points.
    points = torch.tensor([[-4.0], [0.0], [4.0]])
    normal = lambda x, m: math.exp(-0.5 * (x - m) ** 2) / math.sqrt(2 * math.pi)  # noqa: E731
    expected = [0.5 * normal(x, -4.0) + 0.5 * normal(x, 4.0) for x in (-4.0, 0.0, 4.0)]
    assert dist.density(points).tolist() == pytest.approx(expected, rel=1e-12)


def test_registry_and_build_dataset():
    assert set(TOY_DATASETS) == {"gaussian-1d", "mixture-1d", "ring", "grid"}
    data = build_dataset(DataConfig(name="ring"))
    assert isinstance(data, PointData)
    assert data.kind == "points"
    assert data.shape == (2,)
    assert data.name == "ring of 8"
    assert build_dataset(DataConfig(name="gaussian-1d")).shape == (1,)
    batch = data.sample(10, seeded(0))
    assert batch.shape == (10, 2) and batch.dtype == torch.float32


# ---------------------------------------------------------------- sampling


@pytest.mark.parametrize("make", [gaussian_1d, mixture_1d, ring, grid])
def test_sampling_is_reproducible_and_leaves_global_rng_alone(make):
    dist = make()
    before = torch.get_rng_state().clone()
    a = dist.sample(500, seeded(123))
    b = dist.sample(500, seeded(123))
    c = dist.sample(500, seeded(124))
    assert torch.equal(torch.get_rng_state(), before)
    assert a.shape == (500, dist.dim)
    assert a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert (a - c).abs().max().item() > dist.std  # not a tiny perturbation


def test_one_generator_gives_a_fresh_stream():
    generator = seeded(5)
    first = ring().sample(100, generator)
    second = ring().sample(100, generator)
    assert not torch.equal(first, second)


def test_1d_samples_follow_n_5_1():
    samples = gaussian_1d().sample(N, seeded(0)).double().squeeze(1).numpy()
    result = stats.kstest(samples, stats.norm(loc=5.0, scale=1.0).cdf)
    assert result.pvalue > 0.001
    assert abs(samples.mean() - 5.0) < 0.03
    assert abs(samples.std() - 1.0) < 0.03


@pytest.mark.parametrize("make", [ring, grid])
def test_2d_samples_sit_on_the_modes_uniformly(make):
    dist = make()
    samples = dist.sample(N, seeded(1)).double()
    distances = torch.cdist(samples, dist.means)
    nearest_distance, nearest = distances.min(dim=1)
    within = (nearest_distance <= 4 * dist.std).double().mean().item()
    assert within >= 0.999
    counts = torch.bincount(nearest, minlength=dist.n_modes).numpy()
    assert len(counts) == dist.n_modes
    assert counts.min() > 0
    assert stats.chisquare(counts).pvalue > 0.001
    # The spread around the mode is the advertised std: E|x - mu|^2 = 2 sigma^2 in 2D.
    mean_square = (nearest_distance ** 2).mean().item()
    assert mean_square == pytest.approx(2 * dist.std ** 2, rel=0.05)


# ---------------------------------------------------------------- densities


def test_1d_density_matches_scipy():
    dist = gaussian_1d()
    x = torch.linspace(-3.0, 13.0, 161, dtype=torch.float64)
    density = dist.density(x.unsqueeze(1))
    assert density.dtype == torch.float64
    assert density.shape == (161,)
    expected = stats.norm.pdf(x.numpy(), loc=5.0, scale=1.0)
    np.testing.assert_allclose(density.numpy(), expected, rtol=0, atol=1e-10)
    np.testing.assert_allclose(dist.log_prob(x.unsqueeze(1)).numpy(),
                               stats.norm.logpdf(x.numpy(), 5.0, 1.0), rtol=1e-10)


def mixture_pdf_by_hand(point, means, std):
    total = 0.0
    for mx, my in means:
        r2 = (point[0] - mx) ** 2 + (point[1] - my) ** 2
        total += math.exp(-r2 / (2 * std ** 2)) / (2 * math.pi * std ** 2)
    return total / len(means)


@pytest.mark.parametrize("make", [ring, grid])
def test_mixture_density_is_the_average_of_component_pdfs(make):
    dist = make()
    means = dist.means.tolist()
    s = dist.std
    points = [
        means[0],  # on a mode
        [means[1][0] + 0.7 * s, means[1][1] - 1.1 * s],  # near a mode
        [(means[2][0] + means[3][0]) / 2 + 0.01, (means[2][1] + means[3][1]) / 2],  # between
        [0.013, -0.021],
        [means[-1][0] + 2.5 * s, means[-1][1] + 1.5 * s],
    ]
    got = dist.density(torch.tensor(points, dtype=torch.float64))
    for value, point in zip(got.tolist(), points, strict=True):
        expected = mixture_pdf_by_hand(point, means, s)
        assert value == pytest.approx(expected, rel=1e-10, abs=1e-10)
    # On a mode of the ring the other modes contribute nothing: 1 / (8 * 2 pi sigma^2).
    if make is ring:
        assert got[0].item() == pytest.approx(1 / (8 * 2 * math.pi * s ** 2), rel=1e-10)


def test_density_accepts_float32_points():
    dist = ring()
    points = dist.sample(50, seeded(2))
    assert points.dtype == torch.float32
    np.testing.assert_allclose(dist.log_prob(points).numpy(),
                               dist.log_prob(points.double()).numpy(), rtol=1e-12)


@pytest.mark.parametrize("make, half_width, n", [(ring, 1.5, 601), (grid, 5.0, 401)])
def test_mixture_density_integrates_to_one(make, half_width, n):
    dist = make()
    axis = torch.linspace(-half_width, half_width, n, dtype=torch.float64)
    spacing = (axis[1] - axis[0]).item()
    # h = sigma / 2 resolves every bump: the trapezoid rule's error on a Gaussian is about
    # exp(-2 pi^2 sigma^2 / h^2), far below the tolerance.
    assert spacing <= dist.std / 2 + 1e-12
    xs, ys = torch.meshgrid(axis, axis, indexing="ij")
    density = dist.density(torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)).reshape(n, n)
    integral = torch.trapezoid(torch.trapezoid(density, axis, dim=1), axis).item()
    assert integral == pytest.approx(1.0, abs=1e-6)


def test_toy_distribution_from_custom_means():
    means = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    dist = ToyDistribution(means, std=0.5, name="two")
    assert dist.dim == 3 and dist.n_modes == 2 and dist.means.dtype == torch.float64
    point = torch.tensor([[0.2, -0.1, 0.3]], dtype=torch.float64)
    by_hand = sum(stats.multivariate_normal(m, 0.25 * np.eye(3)).pdf(point[0].numpy())
                  for m in means.tolist()) / 2
    assert dist.density(point).item() == pytest.approx(by_hand, rel=1e-10)
