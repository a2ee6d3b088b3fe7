"""Mode coverage of a Gaussian mixture with known means: the 2D ring/grid protocol.

This follows VEEGAN (Srivastava et al. 2017) and PacGAN (Lin et al. 2018): each generated
sample is assigned to its nearest mode; it is *high quality* if it lies within
``threshold_sigmas`` standard deviations (Euclidean distance) of that mode; a mode is
*captured* if some high-quality sample is assigned to it; and the reverse KL divergence
KL(p_hat || uniform) compares the histogram of high-quality samples over the modes with the
uniform distribution of the data. It works in any dimension, but is meant for the 2D mixtures
of ``gankit.data.toy``.

Note that even samples of the data itself are not all high quality: in 2D the squared distance
to the mode over sigma^2 is chi-square with 2 degrees of freedom, so a fraction
exp(-threshold^2 / 2) of them, 1.1% for 3 sigma, lies farther than the threshold.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def _as_float64_tensor(values, name: str) -> torch.Tensor:
    if not isinstance(values, torch.Tensor):
        values = torch.from_numpy(np.asarray(values))
    values = values.detach().to(device="cpu", dtype=torch.float64)
    if values.ndim != 2 or len(values) == 0:
        raise ValueError(
            f"{name} must be a non-empty 2-D (n, dims) array, got shape {tuple(values.shape)}"
        )
    if not torch.isfinite(values).all():
        raise ValueError(f"{name} of shape {tuple(values.shape)} contains NaN or inf")
    return values


def mode_metrics(samples, means, std: float, threshold_sigmas: float = 3.0) -> dict:
    """Captured modes, fraction of high-quality samples and reverse KL over modes.

    Args:
        samples: (n, dims) generated points, numpy array or torch tensor.
        means: (n_modes, dims) mode centres, e.g. ``gankit.data.toy.ring().means``.
        std: the mixture components' common standard deviation, > 0.
        threshold_sigmas: a sample is high quality if its distance to the nearest mode is at
            most ``threshold_sigmas * std``.

    Returns:
        A flat dict: ``modes`` (int, modes captured), ``n_modes`` (int), ``high_quality``
        (float in [0, 1], fraction of samples within the threshold) and ``reverse_kl`` (float,
        nats): KL(p_hat || uniform) = sum_k p_hat_k log(n_modes p_hat_k) with 0 log 0 = 0, where
        p_hat is the histogram of high-quality samples over their nearest modes. It is 0 for an
        even spread and log(n_modes) when all high-quality samples sit on one mode. With no
        high-quality samples p_hat is undefined, and reverse_kl is set to log(n_modes), its
        largest possible value: no usable samples scores no better than full collapse, and the
        number stays finite for logs and averages.

    Raises:
        ValueError: inputs not 2-D, empty or not finite, dimensions that differ, or std or
            threshold_sigmas not positive.
    """
    samples = _as_float64_tensor(samples, "samples")
    means = _as_float64_tensor(means, "means")
    if samples.shape[1] != means.shape[1]:
        raise ValueError(
            f"dimensions differ: samples have shape {tuple(samples.shape)}, means have shape "
            f"{tuple(means.shape)}"
        )
    if not (math.isfinite(std) and std > 0):
        raise ValueError(f"std must be a positive number, got {std}")
    if not (math.isfinite(threshold_sigmas) and threshold_sigmas > 0):
        raise ValueError(f"threshold_sigmas must be a positive number, got {threshold_sigmas}")

    n_modes = len(means)
    # Direct differences rather than the matmul form: exact for points near a mode, and an
    # (n, n_modes) matrix is small for the few modes of a toy mixture.
    distances = torch.cdist(samples, means, compute_mode="donot_use_mm_for_euclid_dist")
    nearest_distance, nearest_mode = distances.min(dim=1)
    high_quality = nearest_distance <= threshold_sigmas * std
    counts = torch.bincount(nearest_mode[high_quality], minlength=n_modes).to(torch.float64)
    n_high_quality = int(counts.sum())
    if n_high_quality == 0:
        reverse_kl = math.log(n_modes)
    else:
        shares = counts[counts > 0] / n_high_quality  # 0 log 0 = 0: empty modes drop out
        # KL >= 0; rounding can leave an even spread a hair below.
        reverse_kl = max(float((shares * torch.log(shares * n_modes)).sum()), 0.0)
    return {
        "modes": int((counts > 0).sum()),
        "n_modes": n_modes,
        "high_quality": n_high_quality / len(samples),
        "reverse_kl": reverse_kl,
    }
