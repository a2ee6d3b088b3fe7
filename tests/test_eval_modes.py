"""Mode metrics on real ring/grid samples, collapsed and far-away samples, and hand-made cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gankit.data.toy import grid, ring
from gankit.eval.modes import mode_metrics

# In 2D, |x - mode|^2 / std^2 of a data sample is chi-square with 2 degrees of freedom, so the
# fraction within 3 std is 1 - exp(-9/2) = 0.98889, not >= 99%. Its standard error with 2500
# samples is sqrt(0.0111 * 0.9889 / 2500) = 0.0021.
HIGH_QUALITY_FRACTION_OF_DATA = 1.0 - math.exp(-4.5)


@pytest.mark.parametrize("toy", [ring(), grid()], ids=["ring", "grid"])
def test_samples_of_the_data_capture_every_mode_evenly(toy):
    samples = toy.sample(2500, torch.Generator().manual_seed(0))
    result = mode_metrics(samples, toy.means, toy.std)
    assert result["modes"] == result["n_modes"] == toy.n_modes  # 8 for the ring, 25 the grid
    assert result["high_quality"] == pytest.approx(HIGH_QUALITY_FRACTION_OF_DATA, abs=4 * 0.0021)
    # A multinomial histogram of n samples over K equal modes has E[KL] ~ (K - 1) / (2n):
    # 0.0014 for the ring, 0.0049 for the grid (its standard deviation ~0.0014).
    assert 0.0 <= result["reverse_kl"] < 0.01


@pytest.mark.parametrize("toy", [ring(), grid()], ids=["ring", "grid"])
def test_samples_collapsed_onto_one_mode(toy):
    # Every sample at one mode: p_hat = (1, 0, ..., 0), KL = 1 * log(K * 1) = log K.
    samples = toy.means[3] + toy.std * torch.randn(
        500, 2, generator=torch.Generator().manual_seed(1)
    )
    result = mode_metrics(samples, toy.means, toy.std)
    assert result["modes"] == 1
    assert result["reverse_kl"] == pytest.approx(math.log(toy.n_modes), rel=1e-12)


def test_points_far_from_every_mode():
    toy = ring()
    samples = torch.full((100, 2), 10.0)
    result = mode_metrics(samples, toy.means, toy.std)
    assert result == {
        "modes": 0,
        "n_modes": 8,
        "high_quality": 0.0,
        "reverse_kl": pytest.approx(math.log(8)),  # the documented value without samples
    }


def test_hand_made_case():
    # Modes at (0, 0) and (1, 0), std 0.1: high quality means within 0.3 of the nearest mode.
    means = np.array([[0.0, 0.0], [1.0, 0.0]])
    samples = np.array(
        [
            [0.1, 0.0],  # mode 0, 0.1 away: high quality
            [0.0, -0.25],  # mode 0, 0.25: high quality
            [0.3, 0.1],  # mode 0, 0.316 > 0.3: not
            [0.9, 0.2],  # mode 1, 0.224: high quality
            [0.5, 2.0],  # far from both: not
        ]
    )
    result = mode_metrics(samples, means, std=0.1)
    # p_hat = (2/3, 1/3): KL = 2/3 log(2 * 2/3) + 1/3 log(2 * 1/3).
    expected_kl = 2 / 3 * math.log(4 / 3) + 1 / 3 * math.log(2 / 3)
    assert result == {
        "modes": 2,
        "n_modes": 2,
        "high_quality": pytest.approx(3 / 5),
        "reverse_kl": pytest.approx(expected_kl, rel=1e-12),
    }
    # With a 4-sigma threshold the (0.3, 0.1) sample counts too: p_hat = (3/4, 1/4).
    wider = mode_metrics(samples, means, std=0.1, threshold_sigmas=4.0)
    assert wider["high_quality"] == pytest.approx(4 / 5)
    assert wider["reverse_kl"] == pytest.approx(
        3 / 4 * math.log(3 / 2) + 1 / 4 * math.log(1 / 2), rel=1e-12
    )


def test_bad_input_raises_value_error():
    means = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(3, 2\)"):
        mode_metrics(np.zeros((4, 3)), means, 0.1)
    with pytest.raises(ValueError, match=r"samples must be .*2-D.*\(4,\)"):
        mode_metrics(np.zeros(4), means, 0.1)
    with pytest.raises(ValueError, match=r"samples .*\(0, 2\)"):
        mode_metrics(np.zeros((0, 2)), means, 0.1)
    with pytest.raises(ValueError, match="std must be a positive number, got 0"):
        mode_metrics(np.zeros((4, 2)), means, 0.0)
    with pytest.raises(ValueError, match=r"samples of shape \(1, 2\) contains NaN"):
        mode_metrics(np.array([[np.nan, 0.0]]), means, 0.1)
