"""FID and KID against scipy's sqrtm, closed forms and direct double sums."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from gankit.eval.fid import (
    feature_statistics,
    fid_from_features,
    frechet_distance,
    kid_from_features,
)


def two_gaussian_feature_sets(n: int = 2000, dims: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Features from two Gaussians with different means and full, different covariances."""
    rng = np.random.default_rng(0)
    mixing_a = rng.normal(size=(dims, dims)) / np.sqrt(dims)
    mixing_b = np.eye(dims) + 0.5 * rng.normal(size=(dims, dims)) / np.sqrt(dims)
    features_a = rng.normal(size=(n, dims)) @ mixing_a
    features_b = rng.normal(size=(n, dims)) @ mixing_b + 0.3
    return features_a, features_b


def scipy_sqrtm_fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """The textbook formula with scipy's general matrix square root of sigma_a sigma_b."""
    mu_a, mu_b = features_a.mean(axis=0), features_b.mean(axis=0)
    sigma_a = np.cov(features_a, rowvar=False)
    sigma_b = np.cov(features_b, rowvar=False)
    covariance_mean = scipy.linalg.sqrtm(sigma_a @ sigma_b).real
    return float(
        np.sum((mu_a - mu_b) ** 2)
        + np.trace(sigma_a)
        + np.trace(sigma_b)
        - 2.0 * np.trace(covariance_mean)
    )


def test_feature_statistics_are_float64_mean_and_unbiased_covariance():
    features = torch.tensor([[0.0, 1.0], [2.0, 1.0], [4.0, 4.0]])
    mu, sigma = feature_statistics(features)
    assert mu.dtype == np.float64 and sigma.dtype == np.float64
    np.testing.assert_allclose(mu, [2.0, 2.0])
    # By hand: deviations (-2, -1), (0, -1), (2, 2); sums of products (8, 6, 6) over n - 1 = 2.
    np.testing.assert_allclose(sigma, [[4.0, 3.0], [3.0, 3.0]])


def test_fid_matches_scipy_sqrtm():
    features_a, features_b = two_gaussian_feature_sets()
    expected = scipy_sqrtm_fid(features_a, features_b)
    assert expected > 1.0  # the sets differ, so the check is not 0 == 0
    assert fid_from_features(features_a, features_b) == pytest.approx(expected, rel=1e-6)


def test_fid_accepts_torch_tensors_and_is_symmetric():
    features_a, features_b = two_gaussian_feature_sets(n=500, dims=16)
    from_numpy = fid_from_features(features_a, features_b)
    assert fid_from_features(torch.from_numpy(features_a), torch.from_numpy(features_b)) == (
        pytest.approx(from_numpy, rel=1e-12)
    )
    assert fid_from_features(features_b, features_a) == pytest.approx(from_numpy, rel=1e-9)


def test_fid_of_a_set_with_itself_is_zero():
    features_a, _ = two_gaussian_feature_sets()
    scale = np.trace(np.cov(features_a, rowvar=False))
    assert 0.0 <= fid_from_features(features_a, features_a) < 1e-6 * scale
    # The result is clamped at 0, so also check a tiny true distance: a shift of 1e-3 per
    # coordinate leaves ||delta||^2 = 6.4e-5 after the trace terms (~127) cancel.
    delta = np.full(features_a.shape[1], 1e-3)
    assert fid_from_features(features_a, features_a + delta) == pytest.approx(
        delta @ delta, rel=1e-5
    )


def test_frechet_distance_of_diagonal_gaussians_has_closed_form():
    rng = np.random.default_rng(1)
    variances_a, variances_b = rng.uniform(0.1, 4.0, 32), rng.uniform(0.1, 4.0, 32)
    mu_a, mu_b = rng.normal(size=32), rng.normal(size=32)
    expected = np.sum((mu_a - mu_b) ** 2) + np.sum(
        (np.sqrt(variances_a) - np.sqrt(variances_b)) ** 2
    )
    distance = frechet_distance(mu_a, np.diag(variances_a), mu_b, np.diag(variances_b))
    assert distance == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_with_singular_covariances():
    # Rank-1 covariances in 2-D: only the first coordinate varies, (sqrt(4) - sqrt(1))^2 = 1.
    distance = frechet_distance(
        np.zeros(2), np.diag([4.0, 0.0]), np.array([0.0, 2.0]), np.diag([1.0, 0.0])
    )
    assert distance == pytest.approx(1.0 + 4.0, rel=1e-9)


def test_fid_with_fewer_samples_than_dimensions_matches_a_nuclear_norm():
    # With centred data A (n_a x d) and B (n_b x d), the nonzero eigenvalues of
    # sigma_a sigma_b are the squared singular values of A B^T / sqrt((n_a - 1)(n_b - 1)),
    # so Tr (sigma_a sigma_b)^1/2 is a nuclear norm: an independent check that needs no sqrtm.
    rng = np.random.default_rng(2)
    features_a, features_b = rng.normal(size=(10, 64)), rng.normal(1.0, 2.0, size=(15, 64))
    centred_a = features_a - features_a.mean(axis=0)
    centred_b = features_b - features_b.mean(axis=0)
    trace_sqrt = np.linalg.norm(centred_a @ centred_b.T, ord="nuc") / np.sqrt(9 * 14)
    expected = (
        np.sum((features_a.mean(axis=0) - features_b.mean(axis=0)) ** 2)
        + np.trace(np.cov(features_a, rowvar=False))
        + np.trace(np.cov(features_b, rowvar=False))
        - 2.0 * trace_sqrt
    )
    assert fid_from_features(features_a, features_b) == pytest.approx(expected, rel=1e-6)
    # Equal (singular) covariances leave only the mean term.
    shift = np.linspace(-1.0, 1.0, 64)
    assert fid_from_features(features_a, features_a + shift) == pytest.approx(
        np.sum(shift**2), rel=1e-6
    )


def direct_unbiased_mmd2(x: list[float], y: list[float]) -> float:
    """The unbiased MMD^2 estimator as the double sums of its definition, for 1-D points."""

    def kernel(a: float, b: float) -> float:
        return (a * b / 1.0 + 1.0) ** 3  # d = 1

    m, n = len(x), len(y)
    within_x = sum(kernel(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    within_y = sum(kernel(y[i], y[j]) for i in range(n) for j in range(n) if i != j)
    between = sum(kernel(a, b) for a in x for b in y)
    return within_x / (m * (m - 1)) + within_y / (n * (n - 1)) - 2.0 * between / (m * n)


def test_kid_of_three_versus_three_points_matches_the_double_sum():
    x, y = [0.0, 1.0, -0.5], [2.0, 0.5, 1.5]
    # By hand, k(a, b) = (ab + 1)^3. Within x (i != j, each pair twice): 2 (1 + 1 + 0.125) / 6
    # = 0.708333. Within y: 2 (8 + 64 + 5.359375) / 6 = 25.786458. Between: (3 + 46 + 0.4375)
    # * 2 / 9 = 10.986111. MMD^2 = 0.708333 + 25.786458 - 10.986111 = 15.508681.
    assert direct_unbiased_mmd2(x, y) == pytest.approx(15.508681, abs=1e-6)
    # subset_size is capped at 3, so the one subset is each whole set (MMD ignores order).
    mean, std = kid_from_features(np.array(x)[:, None], np.array(y)[:, None], subsets=4)
    assert mean == pytest.approx(direct_unbiased_mmd2(x, y), rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(3)
    features_a, features_b = rng.normal(size=(2000, 32)), rng.normal(size=(2000, 32))
    mean, std = kid_from_features(features_a, features_b, subsets=50, subset_size=500)
    # The estimator is unbiased, so E[mean] = 0; std is the spread of one subset's estimate
    # and the mean of 50 of them is no more spread than that, so 3 std is a loose bound.
    assert std > 0.0
    assert abs(mean) < 3.0 * std
    shifted_mean, shifted_std = kid_from_features(
        features_a, features_b + 0.5, subsets=50, subset_size=500
    )
    assert shifted_mean > 10.0 * shifted_std
    assert shifted_mean > 10.0 * (abs(mean) + 3.0 * std)


def test_kid_is_reproducible_from_its_seed():
    rng = np.random.default_rng(4)
    features_a, features_b = rng.normal(size=(300, 8)), rng.normal(0.2, 1.0, size=(300, 8))
    first = kid_from_features(features_a, features_b, subsets=5, subset_size=50, seed=7)
    assert kid_from_features(features_a, features_b, subsets=5, subset_size=50, seed=7) == first
    assert kid_from_features(features_a, features_b, subsets=5, subset_size=50, seed=8) != first


@pytest.mark.parametrize("metric", [fid_from_features, kid_from_features])
def test_bad_features_raise_value_error_naming_the_shapes(metric):
    good = np.zeros((5, 4))
    with pytest.raises(ValueError, match=r"\(5, 4\).*\(5, 3\)"):
        metric(good, np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"2-D.*\(5,\)"):
        metric(np.zeros(5), good)
    with pytest.raises(ValueError, match=r"at least 2 samples.*\(1, 4\)"):
        metric(good, np.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"\(5, 4\).*NaN"):
        metric(np.full((5, 4), np.nan), good)


def test_bad_statistics_and_kid_settings_raise_value_error():
    with pytest.raises(ValueError, match=r"\(3,\).*\(2, 2\)"):
        frechet_distance(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\)"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    features = np.zeros((5, 2))
    with pytest.raises(ValueError, match="subsets must be >= 1, got 0"):
        kid_from_features(features, features, subsets=0)
    with pytest.raises(ValueError, match="subset_size must be >= 2.*got 1"):
        kid_from_features(features, features, subset_size=1)


def test_fid_of_one_dimensional_features_is_the_two_normals_frechet_distance():
    # np.cov of one feature is 0-d: fid_from_features raised "sigma of shape ()".
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.0, 1.0, (5000, 1)), rng.normal(3.0, 2.0, (5000, 1))
    mu, sigma = feature_statistics(a)
    assert mu.shape == (1,) and sigma.shape == (1, 1)
    # For N(m1, s1^2) and N(m2, s2^2): (m1 - m2)^2 + (s1 - s2)^2, from the samples' moments.
    expected = (a.mean() - b.mean()) ** 2 + (a.std(ddof=1) - b.std(ddof=1)) ** 2
    assert fid_from_features(a, b) == pytest.approx(expected, rel=1e-9)
