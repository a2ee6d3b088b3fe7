"""Precision, recall, density and coverage from k-nearest-neighbour balls in feature space.

Precision and recall (Kynkäänniemi et al. 2019) estimate each set's support as the union of
balls around its points, each reaching the point's k-th nearest other point of the same set:
precision is the fraction of fake samples inside the real support, recall the fraction of real
samples inside the fake support. Density and coverage (Naeem et al. 2020) use only the real
balls: density counts how many real balls each fake sample falls in (divided by k, so it is 1 in
expectation when both sets come from one distribution), coverage is the fraction of real balls
that hold at least one fake sample.

Balls are open (distance < radius), as in Naeem et al.'s prdc package, whose published example
these numbers reproduce: a ball B(x_i, NND_k(x_i)) then holds x_i and its k - 1 nearest
neighbours, so two identical sets give precision = recall = coverage = density = 1.
(Kynkäänniemi et al. use closed balls; the two differ only on exact ties, which have
probability 0 for continuous features, but closed balls give density (k + 1) / k on identical
sets.) In float32 a tie can still round either way, so identical random sets give a density a
hair above 1.

Distances are computed by torch in float32, chunk by chunk, so memory stays bounded (a chunk of
1024 rows against 10k points is 40 MB). No library fits: scikit-learn's NearestNeighbors gives
the radii but not the ball-membership counts, and the prdc package holds full N x N matrices.
"""

from __future__ import annotations

import numpy as np
import torch

# Rows of one distance block: 1024 x 10k float32 distances take 40 MB.
DEFAULT_CHUNK_SIZE = 1024


def _feature_tensor(features, name: str) -> torch.Tensor:
    """Checks that ``features`` is a finite 2-D (n_samples, n_dims) array; returns float32."""
    if not isinstance(features, torch.Tensor):
        features = torch.from_numpy(np.asarray(features))
    features = features.detach().to(device="cpu", dtype=torch.float32)
    if features.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D (n_samples, n_dims) array, got shape {tuple(features.shape)}"
        )
    if not torch.isfinite(features).all():
        raise ValueError(f"{name} of shape {tuple(features.shape)} contains NaN or inf")
    return features


def _check_inputs(
    real, fake, ks: dict[str, int], fake_needs_radii: bool, chunk_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validates the inputs; ``ks`` maps argument names to k's, all used for real radii."""
    real, fake = _feature_tensor(real, "real"), _feature_tensor(fake, "fake")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"feature dimensions differ: real has shape {tuple(real.shape)}, fake has shape "
            f"{tuple(fake.shape)}"
        )
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    for name, k in ks.items():
        if k < 1:
            raise ValueError(f"{name} must be >= 1, got {k}")
    # A k-NN radius needs k other points of its own set.
    k_max = max(ks.values())
    needed = {"real": k_max + 1, "fake": k_max + 1 if fake_needs_radii else 1}
    for name, features in (("real", real), ("fake", fake)):
        if len(features) < needed[name]:
            raise ValueError(
                f"k = {k_max} needs at least {needed[name]} {name} samples, got shape "
                f"{tuple(features.shape)}"
            )
    return real, fake


def _distances(rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    # Always the matmul form ||x||^2 + ||y||^2 - 2 x·y (the direct form is ~30x slower):
    # torch's default switches forms below 25 rows, so a chunk's size would change rounding.
    # Its cancellation error scales with the squared norms, which the callers keep small by
    # centring the points first.
    return torch.cdist(rows, columns, compute_mode="use_mm_for_euclid_dist")


def _knn_radii(points: torch.Tensor, ks: set[int], chunk_size: int) -> dict[int, torch.Tensor]:
    """Distance from each point to its k-th nearest other point of the same set, for each k."""
    # Translation leaves distances unchanged and shrinks the norms of the matmul form.
    points = points - points.mean(dim=0)
    k_max = max(ks)
    radii = {k: torch.empty(len(points)) for k in ks}
    for start in range(0, len(points), chunk_size):
        block = _distances(points[start : start + chunk_size], points)
        rows = torch.arange(len(block))
        # Excludes the point itself by index, so an exact duplicate still counts as a neighbour.
        block[rows, start + rows] = torch.inf
        nearest = block.topk(k_max, dim=1, largest=False).values  # sorted ascending
        for k in ks:
            radii[k][start : start + chunk_size] = nearest[:, k - 1]
    return radii


def _ball_statistics(
    real: torch.Tensor,
    fake: torch.Tensor,
    k_pr: int | None,
    k_dc: int | None,
    chunk_size: int,
) -> dict[str, float]:
    """One pass over the fake-real distances computes whichever metrics are asked for."""
    real_radii = _knn_radii(real, {k for k in (k_pr, k_dc) if k is not None}, chunk_size)
    fake_radii = _knn_radii(fake, {k_pr}, chunk_size)[k_pr] if k_pr is not None else None
    center = real.mean(dim=0)
    real, fake = real - center, fake - center
    fakes_in_real_support = 0
    reals_in_fake_support = torch.zeros(len(real), dtype=torch.bool)
    balls_holding_fakes = 0
    reals_covered = torch.zeros(len(real), dtype=torch.bool)
    for start in range(0, len(fake), chunk_size):
        block = _distances(fake[start : start + chunk_size], real)  # (chunk, n_real)
        if k_pr is not None:
            inside_real_balls = block < real_radii[k_pr]
            fakes_in_real_support += int(inside_real_balls.any(dim=1).sum())
            inside_fake_balls = block < fake_radii[start : start + chunk_size, None]
            reals_in_fake_support |= inside_fake_balls.any(dim=0)
        if k_dc is not None:
            inside_real_balls = block < real_radii[k_dc]
            balls_holding_fakes += int(inside_real_balls.sum())
            reals_covered |= inside_real_balls.any(dim=0)
    results = {}
    if k_pr is not None:
        results["precision"] = fakes_in_real_support / len(fake)
        results["recall"] = int(reals_in_fake_support.sum()) / len(real)
    if k_dc is not None:
        results["density"] = balls_holding_fakes / (k_dc * len(fake))
        results["coverage"] = int(reals_covered.sum()) / len(real)
    return results


def precision_recall(
    real, fake, k: int = 3, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019).

    Args:
        real: (n_real, d) real features, numpy array or torch tensor; n_real > k.
        fake: (n_fake, d) generated features; n_fake > k.
        k: the neighbour whose distance sets each ball's radius (the point itself excluded).
        chunk_size: rows per distance block; bounds memory at chunk_size x max(n) floats.

    Returns:
        ``{"precision": ..., "recall": ...}``, each in [0, 1]: the fraction of fake samples in
        some real ball, and of real samples in some fake ball.

    Raises:
        ValueError: inputs not 2-D or not finite, feature dimensions differ, k < 1, a set has
            no more than k samples, or chunk_size < 1.
    """
    real, fake = _check_inputs(real, fake, {"k": k}, True, chunk_size)
    return _ball_statistics(real, fake, k_pr=k, k_dc=None, chunk_size=chunk_size)


def density_coverage(
    real, fake, k: int = 5, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> dict[str, float]:
    """Density and coverage (Naeem et al. 2020).

    density = 1 / (k M) sum_j sum_i 1[fake_j in B(real_i, NND_k(real_i))] and
    coverage = 1 / N sum_i 1[some fake_j in B(real_i, NND_k(real_i))], for N real and M fake
    samples, where NND_k(x) is the distance from x to its k-th nearest other real sample.

    Args:
        real: (n_real, d) real features, numpy array or torch tensor; n_real > k.
        fake: (n_fake, d) generated features; n_fake >= 1.
        k: the neighbour whose distance sets each real ball's radius.
        chunk_size: rows per distance block; bounds memory at chunk_size x max(n) floats.

    Returns:
        ``{"density": ..., "coverage": ...}``: density >= 0 (1 in expectation for matching
        distributions, unbounded above), coverage in [0, 1].

    Raises:
        ValueError: as for ``precision_recall``.
    """
    real, fake = _check_inputs(real, fake, {"k": k}, False, chunk_size)
    return _ball_statistics(real, fake, k_pr=None, k_dc=k, chunk_size=chunk_size)


def prdc(
    real, fake, k_pr: int = 3, k_dc: int = 5, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> dict[str, float]:
    """Precision, recall, density and coverage in one pass over the distances.

    The defaults are each paper's k. The prdc package (Naeem et al.) and its published example
    use one k = 5 for all four: pass ``k_pr=5, k_dc=5`` to compare with it.

    Args:
        real: (n_real, d) real features, numpy array or torch tensor; n_real > max(k's).
        fake: (n_fake, d) generated features; n_fake > k_pr.
        k_pr: k of precision and recall.
        k_dc: k of density and coverage.
        chunk_size: rows per distance block; bounds memory at chunk_size x max(n) floats.

    Returns:
        ``{"precision", "recall", "density", "coverage"}`` as floats, defined as in
        ``precision_recall`` and ``density_coverage``.

    Raises:
        ValueError: as for ``precision_recall``, for either k.
    """
    real, fake = _check_inputs(real, fake, {"k_pr": k_pr, "k_dc": k_dc}, True, chunk_size)
    return _ball_statistics(real, fake, k_pr=k_pr, k_dc=k_dc, chunk_size=chunk_size)
