"""Exact 1D divergences by numerical integration, for the theory of the GAN game.

Densities are float64 arrays sampled on a 1D grid and integrated with the trapezoid rule, so
the results are as exact as the grid is fine and wide. With them one can check Goodfellow et
al. (2014): for a fixed generator the best discriminator is D* = p_data / (p_data + p_g), and
V(G, D*) = -log 4 + 2 JSD(p_data || p_g).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.integrate import trapezoid
from scipy.stats import gaussian_kde

# Stands in for q where q underflowed to 0 but p > 0: KL is then truly infinite, and the
# floor turns it into a large finite penalty (about 708 nats per unit of such mass).
_DENSITY_FLOOR = np.finfo(np.float64).tiny
# Keeps log D and log(1 - D) finite in gan_value.
_PROBABILITY_CLIP = 1e-12
# Points of each of toy_divergences' integration grids.
GRID_POINTS = 4001


def _as_float64(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def optimal_discriminator(p_data: np.ndarray, p_g: np.ndarray) -> np.ndarray:
    """Best discriminator for a fixed generator: D*(x) = p_data(x) / (p_data(x) + p_g(x)).

    Args:
        p_data: data density on a grid.
        p_g: generator density on the same grid.

    Returns:
        D* on the grid, float64; 0.5 where both densities are 0 (either answer is as good).
    """
    p_data, p_g = _as_float64(p_data), _as_float64(p_g)
    total = p_data + p_g
    return np.divide(p_data, total, out=np.full_like(total, 0.5), where=total > 0)


def kl_divergence(p: np.ndarray, q: np.ndarray, grid: np.ndarray,
                  log_q: np.ndarray | None = None) -> float:
    """Kullback-Leibler divergence KL(p || q) = integral of p log(p / q), in nats.

    Points where p = 0 contribute 0 (0 log 0 = 0). Where p > 0 but q = 0 the divergence is
    infinite; q is floored there at the smallest positive float64 (~2e-308), so the result
    stays finite but large. Given `log_q`, no floor is needed: q's density far in its tail,
    where it underflows, still counts at its true value.

    Args:
        p: density on the grid.
        q: density on the same grid.
        grid: increasing 1D grid of points.
        log_q: log q on the grid, where known exactly.

    Returns:
        The trapezoid-rule integral.
    """
    p, q, grid = _as_float64(p), _as_float64(q), _as_float64(grid)
    log_q = np.log(np.maximum(q, _DENSITY_FLOOR)) if log_q is None else _as_float64(log_q)
    support = p > 0
    integrand = np.zeros_like(p)
    # A difference of logs rather than log(p / q): p / floor would overflow for p > ~4.
    integrand[support] = p[support] * (np.log(p[support]) - log_q[support])
    return float(trapezoid(integrand, grid))


def js_divergence(p: np.ndarray, q: np.ndarray, grid: np.ndarray) -> float:
    """Jensen-Shannon divergence 1/2 KL(p || m) + 1/2 KL(q || m), with m = (p + q) / 2.

    Args:
        p: density on the grid.
        q: density on the same grid.
        grid: increasing 1D grid of points.

    Returns:
        JSD in nats (natural log), between 0 and log 2.
    """
    p, q = _as_float64(p), _as_float64(q)
    mixture = 0.5 * (p + q)
    return 0.5 * kl_divergence(p, mixture, grid) + 0.5 * kl_divergence(q, mixture, grid)


def gan_value(
    p_data: np.ndarray, p_g: np.ndarray, discriminator: np.ndarray, grid: np.ndarray
) -> float:
    """Value of the GAN game V(G, D) = integral of p_data log D + p_g log(1 - D).

    Args:
        p_data: data density on the grid.
        p_g: generator density on the same grid.
        discriminator: D(x) on the grid, a probability; clipped to [1e-12, 1 - 1e-12] so the
            logs stay finite.
        grid: increasing 1D grid of points.

    Returns:
        The trapezoid-rule integral; -log 4 when p_g = p_data and D = D* = 1/2.
    """
    p_data, p_g, grid = _as_float64(p_data), _as_float64(p_g), _as_float64(grid)
    d = np.clip(_as_float64(discriminator), _PROBABILITY_CLIP, 1.0 - _PROBABILITY_CLIP)
    return float(trapezoid(p_data * np.log(d) + p_g * np.log1p(-d), grid))


def kde_density(
    samples: np.ndarray, grid: np.ndarray, bandwidth: float | None = None
) -> np.ndarray:
    """Gaussian kernel density estimate of 1D samples, evaluated on a grid.

    Args:
        samples: 1D samples (any array-like; flattened).
        grid: points to evaluate the density at.
        bandwidth: standard deviation of the Gaussian kernel, in the samples' units; None uses
            Scott's rule.

    Returns:
        Float64 density on the grid, non-negative; exactly 0 (never NaN) far from the samples,
        which the 0 log 0 = 0 convention of ``kl_divergence`` handles.

    Raises:
        ValueError: fewer than two samples, or all samples equal (a fully collapsed generator):
            a kernel estimate of a point mass is undefined.
    """
    samples = _as_float64(samples).ravel()
    if samples.size < 2 or np.ptp(samples) == 0:
        raise ValueError(
            f"kde_density needs at least two distinct samples; got {samples.size} sample(s) "
            "with no spread"
        )
    # scipy's KDE rather than a hand-written one. Its scalar bw_method is a factor on the
    # sample standard deviation (ddof=1), so an absolute bandwidth is divided by that first.
    bw_method = None if bandwidth is None else bandwidth / samples.std(ddof=1)
    return gaussian_kde(samples, bw_method=bw_method)(_as_float64(grid))


def density_on_grid(distribution: torch.distributions.Distribution, grid: np.ndarray) -> np.ndarray:
    """Density exp(log_prob(x)) of a scalar torch distribution on a grid, in float64.

    The grid is passed in float64; parameters keep their own dtype, so build the distribution
    with float64 parameters for full precision.

    Args:
        distribution: a 1D distribution with batch shape () and event shape (), e.g. Normal
            or a MixtureSameFamily of Normals.
        grid: points to evaluate the density at.

    Returns:
        Float64 numpy array of densities, same shape as ``grid``.

    Raises:
        ValueError: the distribution is batched or multivariate.
    """
    if distribution.batch_shape != torch.Size() or distribution.event_shape != torch.Size():
        raise ValueError(
            "density_on_grid needs a scalar distribution (batch and event shape ()), got batch "
            f"shape {tuple(distribution.batch_shape)} and event shape "
            f"{tuple(distribution.event_shape)}"
        )
    points = torch.from_numpy(_as_float64(grid))
    with torch.no_grad():
        log_density = distribution.log_prob(points)
    return log_density.exp().cpu().numpy()


def known_density(generator):
    """The generator's own density as a function points (on the CPU) -> densities, or None
    where it has none (most do not: then p_g is estimated from samples)."""
    density = getattr(generator, "density", None)
    if density is None:
        return None
    device = next(generator.parameters()).device
    return lambda points: density(points.to(device)).cpu()


def toy_divergences(samples: np.ndarray | None, distribution, density=None) -> dict[str, float]:
    """KL both ways and the JSD between a 1D toy distribution and a generator's density.

    Args:
        samples: 1D generated samples, whose KDE is p_g; unused when `density` is given.
        distribution: a `gankit.data.toy.ToyDistribution` in 1D (it knows its density).
        density: the generator's own density, for a generator that knows it (e.g.
            `GaussianGenerator.density`): points (G, 1) -> densities (G,), torch tensors.

    Returns:
        {"kl_data_g", "kl_g_data", "jsd"} in nats, integrated from 10 std below the lowest mode
        to 10 std above the highest, and, where samples are given, also over their range
        widened by 10 of their std: p_g's mass outside the data's range counts in KL(p_g ‖
        p_data) (a G of std 10 around the data's mean lost most of it).

    Raises:
        ValueError: all samples equal (a collapsed generator has no density), from kde_density.
    """
    means, std = distribution.means[:, 0], distribution.std
    grid = np.linspace(float(means.min()) - 10 * std, float(means.max()) + 10 * std, GRID_POINTS)
    if samples is not None:
        values = _as_float64(samples).ravel()
        spread = 10 * values.std()
        # A second grid of its own, so that a wide G does not coarsen the data's.
        grid = np.union1d(grid, np.linspace(values.min() - spread, values.max() + spread,
                                            GRID_POINTS))
    points = torch.from_numpy(grid)[:, None]
    log_p_data = distribution.log_prob(points).numpy()
    p_data = np.exp(log_p_data)
    if density is None:
        p_g = kde_density(samples, grid)
    else:
        with torch.no_grad():
            p_g = density(points).double().cpu().numpy()
    return {"kl_data_g": kl_divergence(p_data, p_g, grid),
            "kl_g_data": kl_divergence(p_g, p_data, grid, log_q=log_p_data),
            "jsd": js_divergence(p_data, p_g, grid)}
