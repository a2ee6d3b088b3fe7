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


# ----------------------------------------------------------------- Stacked MNIST, 1,000 modes

STACKED_MNIST_SHAPE = (3, 28, 28)
STACKED_MNIST_N_MODES = 1000
MNIST_CLASSES = 10


def _predicted_digits(channel_images: torch.Tensor, classify) -> torch.Tensor:
    """The classifier's digit (argmax of its logits) for each one-channel image, on the CPU."""
    logits = classify(channel_images)
    if tuple(logits.shape) != (len(channel_images), MNIST_CLASSES):
        raise ValueError(
            f"classify must return logits of shape ({len(channel_images)}, {MNIST_CLASSES}) "
            f"for input of shape {tuple(channel_images.shape)}, got {tuple(logits.shape)}"
        )
    return logits.argmax(dim=1).cpu()


def kl_to_uniform(counts: torch.Tensor) -> float:
    """KL(p_hat || uniform) in nats of a histogram of integer counts, with 0 log 0 = 0."""
    n = int(counts.sum())
    reached = counts[counts > 0].to(torch.float64)  # 0 log 0 = 0: empty bins drop out
    # The ratio k p_hat as (k count) / n, both exact integers, is exactly 1 for an even spread,
    # so its log and the KL are exactly 0 there rather than a rounding error.
    ratios = reached * len(counts) / n
    # KL >= 0; rounding can leave a near-even spread a hair below.
    return max(float((reached / n * torch.log(ratios)).sum()), 0.0)


def stacked_mnist_digits(images, classify, batch_size: int = 1000) -> torch.Tensor:
    """The classifier's digit for each channel of Stacked MNIST images: (N, 3) int64, on the CPU.

    Args and Raises as `stacked_mnist_modes`, which counts modes from these digits.
    """
    images = torch.as_tensor(images)
    if images.ndim != 4 or tuple(images.shape[1:]) != STACKED_MNIST_SHAPE or len(images) == 0:
        raise ValueError(
            f"images must have shape (N, 3, 28, 28) with N > 0, got {tuple(images.shape)}"
        )
    if not images.is_floating_point():
        raise ValueError(f"images must be float in [-1, 1], got dtype {images.dtype}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")

    digits = []
    with torch.no_grad():
        for batch in images.split(batch_size):
            digits.append(torch.stack([
                _predicted_digits(batch[:, channel : channel + 1], classify)
                for channel in range(STACKED_MNIST_SHAPE[0])
            ], dim=1))
    return torch.cat(digits)


def stacked_mnist_counts(digits: torch.Tensor) -> torch.Tensor:
    """Images per mode (100 d_0 + 10 d_1 + d_2, 1,000 of them) from (N, 3) channel digits."""
    modes = (digits * torch.tensor([100, 10, 1])).sum(dim=1)
    return torch.bincount(modes, minlength=STACKED_MNIST_N_MODES)


def stacked_mnist_modes(images, classify, batch_size: int = 1000) -> dict:
    """Modes reached and reverse KL of generated Stacked MNIST images (1,000 modes).

    The protocol of Metz et al. 2017, VEEGAN (Srivastava et al. 2017) and PacGAN (Lin et al.
    2018): a pretrained MNIST classifier labels each channel on its own, the image's mode is
    100 d_0 + 10 d_1 + d_2, a mode is reached when any image lands on it, and the reverse KL
    compares the histogram of modes with the data's uniform one. PacGAN's tables classify
    26,000 generated samples; use that many to compare with published numbers. Even a perfect
    generator then scores reverse KL ~ (1000 - 1) / (2 * 26000) = 0.019, the sampling noise of
    the histogram, and misses a mode with probability about exp(-26); MNIST's own digits are not
    quite even (ones are 11.2% of the training set, fives 9.0%), which adds 0.004 for real data.

    Args:
        images: float tensor (N, 3, 28, 28) in [-1, 1], N > 0; the generator's output.
        classify: callable mapping float (n, 1, 28, 28) images in [-1, 1] to logits (n, 10),
            e.g. the ``.logits`` of ``gankit.eval.features.load_extractor("mnist")``. It is
            called once per channel and batch, with the images on their own device.
        batch_size: images per call of ``classify``, to bound its memory.

    Returns:
        A flat dict: ``modes`` (int, distinct modes reached, 0..1000), ``n_modes`` (1000),
        ``reverse_kl`` (float, nats): KL(p_hat || uniform) = sum_k p_hat_k log(1000 p_hat_k)
        over reached modes (0 log 0 = 0); 0 for an exactly even spread, log 1000 = 6.91 for
        full collapse onto one mode; and ``n`` (int, the number of images).

    Raises:
        ValueError: images not a float (N, 3, 28, 28) tensor with N > 0, batch_size not a
            positive integer, or classify returning logits of the wrong shape.
    """
    digits = stacked_mnist_digits(images, classify, batch_size)
    counts = stacked_mnist_counts(digits)
    return {
        "modes": int((counts > 0).sum()),
        "n_modes": STACKED_MNIST_N_MODES,
        "reverse_kl": kl_to_uniform(counts),
        "n": len(digits),
    }
