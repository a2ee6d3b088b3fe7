"""Fréchet distance (FID) and kernel distance (KID) between two sets of feature vectors.

Both take features already extracted (e.g. Inception pool3 activations, one row per image), so
they say nothing about the extractor: report it, and the sample counts, next to every number.

FID (Heusel et al. 2017) fits a Gaussian to each set and returns the Fréchet distance between
the two Gaussians. KID (Bińkowski et al. 2018) is the unbiased estimate of the squared maximum
mean discrepancy with the cubic polynomial kernel k(x, y) = (x·y / d + 1)^3, averaged over
random subsets; unlike FID it has no bias that depends on the number of samples.

Everything is computed in float64 numpy; inputs may be numpy arrays or torch tensors.
"""

from __future__ import annotations

import numpy as np
import torch


def _as_float64_numpy(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.float64)


def _feature_matrix(features, name: str) -> np.ndarray:
    """Checks that ``features`` is a finite (n_samples, n_dims) matrix with n_samples >= 2."""
    features = _as_float64_numpy(features)
    if features.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D (n_samples, n_dims) array, got shape {features.shape}"
        )
    if features.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 samples, got shape {features.shape}")
    if not np.isfinite(features).all():
        raise ValueError(f"{name} of shape {features.shape} contains NaN or inf")
    return features


def _check_same_dims(features_a: np.ndarray, features_b: np.ndarray) -> None:
    if features_a.shape[1] != features_b.shape[1]:
        raise ValueError(
            f"feature dimensions differ: features_a has shape {features_a.shape}, "
            f"features_b has shape {features_b.shape}"
        )


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a set of feature vectors.

    Args:
        features: (n_samples, n_dims) numpy array or torch tensor, n_samples >= 2.

    Returns:
        ``(mu, sigma)`` as float64 numpy arrays of shapes (n_dims,) and (n_dims, n_dims); the
        covariance uses the unbiased 1 / (n - 1) normalisation, as pytorch-fid and clean-fid do.

    Raises:
        ValueError: ``features`` is not 2-D, has fewer than 2 rows, or is not finite.
    """
    features = _feature_matrix(features, "features")
    # atleast_2d: np.cov of one feature is a 0-d array, not the (1, 1) matrix FID takes.
    return features.mean(axis=0), np.atleast_2d(np.cov(features, rowvar=False))


def _gaussian_parameters(mu, sigma, name: str) -> tuple[np.ndarray, np.ndarray]:
    mu, sigma = _as_float64_numpy(mu), _as_float64_numpy(sigma)
    if mu.ndim != 1 or sigma.shape != (mu.size, mu.size):
        raise ValueError(
            f"{name}: expected mu of shape (d,) and sigma of shape (d, d), got mu of shape "
            f"{mu.shape} and sigma of shape {sigma.shape}"
        )
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise ValueError(f"{name}: mu or sigma contains NaN or inf")
    return mu, sigma


def _psd_square_root(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix."""
    eigenvalues, eigenvectors = np.linalg.eigh(0.5 * (matrix + matrix.T))
    # Rounding leaves the zero eigenvalues of a singular covariance slightly negative.
    roots = np.sqrt(np.clip(eigenvalues, 0.0, None))
    return (eigenvectors * roots) @ eigenvectors.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^1/2).

    Written here rather than called from a library: torchmetrics has no public function for
    the distance from statistics (its private ``_compute_fid`` takes eigenvalues of the
    non-symmetric product sigma1 sigma2), and ``scipy.linalg.sqrtm`` of that product returns
    complex values for singular covariances (pytorch-fid adds eps to the diagonal to cope).
    The trace of (sigma1 sigma2)^1/2 is the sum of square roots of the eigenvalues of
    sigma1^1/2 sigma2 sigma1^1/2, a similar matrix that is symmetric positive semi-definite,
    so a symmetric eigensolver gives real eigenvalues, and rank-deficient covariances (fewer
    samples than dimensions) need no regularisation.

    Args:
        mu1: mean of the first Gaussian, shape (d,).
        sigma1: covariance of the first Gaussian, shape (d, d), symmetric PSD.
        mu2: mean of the second Gaussian, shape (d,).
        sigma2: covariance of the second Gaussian, shape (d, d), symmetric PSD.

    Returns:
        The distance in float64, clamped at 0 (rounding can push a true 0 slightly below).

    Raises:
        ValueError: shapes are not (d,), (d, d) with one d, or values are not finite.
    """
    mu1, sigma1 = _gaussian_parameters(mu1, sigma1, "first Gaussian")
    mu2, sigma2 = _gaussian_parameters(mu2, sigma2, "second Gaussian")
    if mu1.size != mu2.size:
        raise ValueError(
            f"the Gaussians have different dimensions: mu1 of shape {mu1.shape}, mu2 of shape "
            f"{mu2.shape}"
        )
    sqrt_sigma1 = _psd_square_root(sigma1)
    middle = sqrt_sigma1 @ sigma2 @ sqrt_sigma1
    eigenvalues = np.linalg.eigvalsh(0.5 * (middle + middle.T))
    trace_sqrt_product = np.sqrt(np.clip(eigenvalues, 0.0, None)).sum()
    mean_difference = mu1 - mu2
    distance = (
        mean_difference @ mean_difference
        + np.trace(sigma1)
        + np.trace(sigma2)
        - 2.0 * trace_sqrt_product
    )
    return float(max(distance, 0.0))


def fid_from_features(features_a, features_b) -> float:
    """Fréchet Inception Distance between two sets of feature vectors.

    Args:
        features_a: (n_a, d) numpy array or torch tensor, n_a >= 2.
        features_b: (n_b, d) numpy array or torch tensor, n_b >= 2.

    Returns:
        The Fréchet distance between Gaussians fitted to the two sets (float64).

    Raises:
        ValueError: either input is not 2-D, has fewer than 2 rows or is not finite, or the
            feature dimensions differ.
    """
    features_a = _feature_matrix(features_a, "features_a")
    features_b = _feature_matrix(features_b, "features_b")
    _check_same_dims(features_a, features_b)
    return frechet_distance(*feature_statistics(features_a), *feature_statistics(features_b))


def _cubic_polynomial_kernel(features_a: torch.Tensor, features_b: torch.Tensor) -> torch.Tensor:
    """Gram matrix of k(x, y) = (x·y / d + 1)^3.

    The same kernel as scikit-learn's ``polynomial_kernel(degree=3, coef0=1)``, written out
    because that function cubes with a float power (~25x the cost of two multiplications, ~20%
    of a 2048-D KID), and in torch so the matmuls follow ``torch.set_num_threads`` like the
    rest of gankit.
    """
    gram = features_a @ features_b.T / features_a.shape[1] + 1.0
    return gram * gram * gram


def _unbiased_polynomial_mmd2(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel; the two sets may differ in size."""
    features_a, features_b = torch.from_numpy(features_a), torch.from_numpy(features_b)
    kernel_aa = _cubic_polynomial_kernel(features_a, features_a)
    kernel_bb = _cubic_polynomial_kernel(features_b, features_b)
    kernel_ab = _cubic_polynomial_kernel(features_a, features_b)
    n_a, n_b = len(features_a), len(features_b)
    # The unbiased estimator leaves out the i = j terms of the within-set sums.
    within_a = (kernel_aa.sum() - kernel_aa.trace()) / (n_a * (n_a - 1))
    within_b = (kernel_bb.sum() - kernel_bb.trace()) / (n_b * (n_b - 1))
    between = kernel_ab.sum() / (n_a * n_b)
    return float(within_a + within_b - 2.0 * between)


def kid_from_features(
    features_a, features_b, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Kernel Inception Distance: unbiased polynomial-kernel MMD^2 averaged over subsets.

    Each of ``subsets`` rounds draws ``subset_size`` rows without replacement from each set
    and computes the unbiased MMD^2 with k(x, y) = (x·y / d + 1)^3 (Bińkowski et al. 2018).
    The estimate is unbiased, so it can be slightly negative when the sets match.

    Args:
        features_a: (n_a, d) numpy array or torch tensor, n_a >= 2.
        features_b: (n_b, d) numpy array or torch tensor, n_b >= 2.
        subsets: number of random subsets, >= 1.
        subset_size: rows drawn from each set per subset, >= 2; capped at min(n_a, n_b).
        seed: seed of the numpy generator that draws the subsets.

    Returns:
        ``(mean, std)`` of the per-subset estimates; std uses 1 / subsets (numpy's default, as
        torch-fidelity and clean-fid report it) and describes the spread of one subset's
        estimate, not the error of the mean.

    Raises:
        ValueError: bad features (as in ``fid_from_features``), subsets < 1 or
            subset_size < 2.
    """
    features_a = _feature_matrix(features_a, "features_a")
    features_b = _feature_matrix(features_b, "features_b")
    _check_same_dims(features_a, features_b)
    if subsets < 1:
        raise ValueError(f"subsets must be >= 1, got {subsets}")
    if subset_size < 2:
        raise ValueError(
            f"subset_size must be >= 2 (the unbiased MMD needs pairs), got {subset_size}"
        )
    subset_size = min(subset_size, len(features_a), len(features_b))
    rng = np.random.default_rng(seed)
    estimates = np.empty(subsets)
    for index in range(subsets):
        rows_a = rng.choice(len(features_a), subset_size, replace=False)
        rows_b = rng.choice(len(features_b), subset_size, replace=False)
        estimates[index] = _unbiased_polynomial_mmd2(features_a[rows_a], features_b[rows_b])
    return float(estimates.mean()), float(estimates.std())
