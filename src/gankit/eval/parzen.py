"""Parzen-window log-likelihood of test data under generated samples (Goodfellow et al. 2014).

The generator's density is estimated by a mixture of isotropic Gaussians of width sigma, one on
each generated sample, and scored by the mean log-likelihood of held-out test points;
sigma is chosen to maximise the log-likelihood of a separate validation set. The estimate is
known to be poor in high dimensions (Theis et al. 2016): report it only next to the protocol.

Written here rather than with scikit-learn's KernelDensity or scipy's gaussian_kde: the former
recomputes every distance for each sigma of the search, the latter sets its own bandwidth
matrix from the data's covariance instead of sigma^2 I. Here the squared distances of a batch
are computed once and scored for every sigma, in float64 with logsumexp, so far-away points
give large negative but finite log-likelihoods, never -inf.
"""

from __future__ import annotations

import math

import numpy as np
import torch

# Goodfellow et al.'s sigma grid for data in [0, 1].
DEFAULT_SIGMAS: tuple[float, ...] = tuple(float(sigma) for sigma in np.logspace(-1, 0, 10))
# Test points per block: a block holds batch_size x n_samples float64 squared distances.
DEFAULT_BATCH_SIZE = 256


def _as_flat_float64(values, name: str) -> torch.Tensor:
    """(n, ...) array or tensor -> (n, prod(...)) float64 tensor; images are flattened."""
    if not isinstance(values, torch.Tensor):
        values = torch.from_numpy(np.asarray(values))
    values = values.detach().to(device="cpu", dtype=torch.float64)
    if values.ndim < 2 or len(values) == 0:
        raise ValueError(
            f"{name} must be a non-empty (n, dims) or (n, ...) array, got shape "
            f"{tuple(values.shape)}"
        )
    if not torch.isfinite(values).all():
        raise ValueError(f"{name} of shape {tuple(values.shape)} contains NaN or inf")
    return values.reshape(len(values), -1)


def _log_likelihoods(samples, test, sigmas, batch_size: int) -> np.ndarray:
    """Log-likelihood of every test point under the Parzen window of every sigma.

    Returns:
        A float64 array of shape (len(sigmas), n_test).
    """
    samples = _as_flat_float64(samples, "samples")
    test = _as_flat_float64(test, "test")
    if samples.shape[1] != test.shape[1]:
        raise ValueError(
            f"dimensions differ: samples flatten to shape {tuple(samples.shape)}, test to "
            f"{tuple(test.shape)}"
        )
    sigmas = [float(sigma) for sigma in sigmas]
    if not sigmas or not all(math.isfinite(sigma) and sigma > 0 for sigma in sigmas):
        raise ValueError(f"sigmas must be positive numbers, got {sigmas}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    # Centring leaves distances unchanged and keeps ||x||^2 + ||s||^2 - 2 x·s from cancelling.
    center = samples.mean(dim=0)
    samples, test = samples - center, test - center
    n_samples, dims = samples.shape
    sample_norms = (samples * samples).sum(dim=1)
    log_likelihoods = np.empty((len(sigmas), len(test)))
    for start in range(0, len(test), batch_size):
        batch = test[start : start + batch_size]
        batch_norms = (batch * batch).sum(dim=1, keepdim=True)
        squared_distances = (batch_norms + sample_norms - 2.0 * batch @ samples.T).clamp_min(0.0)
        for index, sigma in enumerate(sigmas):
            # log (1/N sum_i N(x; s_i, sigma^2 I)), the exponentials summed in log space.
            log_kernel_sum = torch.logsumexp(squared_distances / (-2.0 * sigma**2), dim=1)
            log_normaliser = math.log(n_samples) + 0.5 * dims * math.log(2.0 * math.pi * sigma**2)
            log_likelihoods[index, start : start + batch_size] = (
                log_kernel_sum - log_normaliser
            ).numpy()
    return log_likelihoods


def parzen_log_likelihood(
    samples, test, sigma: float, batch_size: int = DEFAULT_BATCH_SIZE
) -> tuple[float, float]:
    """Mean log-likelihood of test points under a Gaussian Parzen window on the samples.

    log p(x) = log (1/N sum_i N(x; s_i, sigma^2 I)), computed in float64 with logsumexp.

    Args:
        samples: (N, ...) generated samples, numpy array or torch tensor; trailing dimensions
            are flattened, so (N, C, H, W) images work as they are.
        test: (n_test, ...) held-out points with the same trailing shape (after flattening).
        sigma: the window's standard deviation, > 0, in the data's units.
        batch_size: test points per block; memory is batch_size x N float64 numbers.

    Returns:
        ``(mean, standard_error)`` in nats: the mean over test points and std / sqrt(n_test),
        with the population std (1 / n_test) as in Goodfellow et al.'s code.

    Raises:
        ValueError: inputs with fewer than 2 dimensions, empty or not finite, dimensions that
            differ, sigma not positive, or batch_size < 1.
    """
    log_likelihoods = _log_likelihoods(samples, test, [sigma], batch_size)[0]
    return (
        float(log_likelihoods.mean()),
        float(log_likelihoods.std() / math.sqrt(len(log_likelihoods))),
    )


def select_sigma(
    samples,
    validation,
    sigmas=DEFAULT_SIGMAS,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> float:
    """The sigma of a grid that maximises the mean validation log-likelihood.

    Args:
        samples: (N, ...) generated samples, numpy array or torch tensor.
        validation: (n_validation, ...) held-out points, disjoint from the test set.
        sigmas: candidate widths, all > 0; default 10 log-spaced values from 0.1 to 1, the grid
            of Goodfellow et al. for data in [0, 1].
        batch_size: validation points per block, as in ``parzen_log_likelihood``.

    Returns:
        The best sigma of ``sigmas`` (the first one on a tie).

    Raises:
        ValueError: as for ``parzen_log_likelihood``, or an empty grid.
    """
    sigmas = [float(sigma) for sigma in sigmas]
    mean_log_likelihoods = _log_likelihoods(samples, validation, sigmas, batch_size).mean(axis=1)
    return sigmas[int(np.argmax(mean_log_likelihoods))]
