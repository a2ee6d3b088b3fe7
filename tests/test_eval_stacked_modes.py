"""Stacked MNIST mode metrics with a fake classifier that reads each channel's digit off its mean
intensity: even spreads, full collapse, a hand-computed case, batching, the calls the classifier
receives, samples of the data itself, and bad input."""

from __future__ import annotations

import math
import re

import pytest
import torch

from gankit.data.images import ImageData
from gankit.data.stacked_mnist import StackedMNIST
from gankit.eval.modes import stacked_mnist_modes

# Digit d is drawn as a channel of constant intensity -0.9 + 0.2 d: ten levels 0.2 apart in
# [-1, 1], far enough apart to survive the uint8 round trip (steps of 1/127.5).
DIGIT_LEVELS = -0.9 + 0.2 * torch.arange(10, dtype=torch.float32)


class DigitByIntensity:
    """A stand-in MNIST classifier: logits peak at the level nearest the image's mean intensity.

    It records the shape of every input and whether gradients were on, so tests can check how
    it was called.
    """

    def __init__(self):
        self.input_shapes: list[tuple[int, ...]] = []
        self.inputs: list[torch.Tensor] = []
        self.grad_enabled: list[bool] = []

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.input_shapes.append(tuple(images.shape))
        self.inputs.append(images)
        self.grad_enabled.append(torch.is_grad_enabled())
        means = images.flatten(1).mean(dim=1)
        return -(means[:, None] - DIGIT_LEVELS[None, :]).abs()


def images_of_modes(modes: list[int] | torch.Tensor) -> torch.Tensor:
    """Float (N, 3, 28, 28) images whose channels draw the digits of each mode 100 a + 10 b + c."""
    modes = torch.as_tensor(modes)
    digits = torch.stack([modes // 100, modes // 10 % 10, modes % 10], dim=1)
    return DIGIT_LEVELS[digits][:, :, None, None].expand(-1, -1, 28, 28).contiguous()


def test_every_mode_equally_often_scores_1000_modes_and_zero_kl():
    modes = torch.arange(1000).repeat(3)[
        torch.randperm(3000, generator=torch.Generator().manual_seed(0))
    ]
    result = stacked_mnist_modes(images_of_modes(modes), DigitByIntensity())
    assert result == {"modes": 1000, "n_modes": 1000, "reverse_kl": 0.0, "n": 3000}


def test_everything_on_one_mode_scores_one_mode_and_log_1000():
    result = stacked_mnist_modes(images_of_modes([457] * 500), DigitByIntensity())
    assert result["modes"] == 1 and result["n"] == 500
    # p_hat = 1 on one mode: KL = 1 * log(1000 * 1) = 6.9078.
    assert result["reverse_kl"] == pytest.approx(math.log(1000), rel=1e-12)


def test_three_modes_by_hand():
    # Shares 5/10, 3/10 and 2/10 on modes 7, 123 and 999:
    # KL = 0.5 log 500 + 0.3 log 300 + 0.2 log 200 = 3.1073 + 1.7111 + 1.0597 = 5.8781 nats.
    modes = [7] * 5 + [123] * 3 + [999] * 2
    result = stacked_mnist_modes(images_of_modes(modes), DigitByIntensity())
    expected = 0.5 * math.log(500) + 0.3 * math.log(300) + 0.2 * math.log(200)
    assert result["modes"] == 3 and result["n"] == 10
    assert result["reverse_kl"] == pytest.approx(expected, rel=1e-12)
    assert result["reverse_kl"] == pytest.approx(5.8781, abs=1e-4)


def test_modes_differing_only_in_channel_order_are_different_modes():
    # 123, 132, 213, 231, 312, 321: one digit set, six modes; a sum or a sorted triple gives 1.
    result = stacked_mnist_modes(
        images_of_modes([123, 132, 213, 231, 312, 321]), DigitByIntensity()
    )
    assert result["modes"] == 6
    assert result["reverse_kl"] == pytest.approx(math.log(1000 / 6), rel=1e-12)


def test_classify_gets_each_channel_alone_in_batches():
    modes = torch.arange(0, 1000, 4)  # 250 images
    images = images_of_modes(modes)
    classify = DigitByIntensity()
    result = stacked_mnist_modes(images, classify, batch_size=100)
    assert result["modes"] == 250
    # Batches of 100, 100 and 50, each with one call per channel in channel order.
    assert classify.input_shapes == [(100, 1, 28, 28)] * 6 + [(50, 1, 28, 28)] * 3
    for call, received in enumerate(classify.inputs):
        batch, channel = divmod(call, 3)
        assert torch.equal(received, images[100 * batch : 100 * batch + 100, channel : channel + 1])
    assert not any(classify.grad_enabled)  # evaluation builds no autograd graph
    assert stacked_mnist_modes(images, DigitByIntensity(), batch_size=250) == result


def test_samples_of_stacked_mnist_itself_reach_all_modes_with_small_kl():
    # One source image per digit, drawn at its level: the classifier reads the data exactly.
    sources = torch.round((DIGIT_LEVELS + 1) * 127.5).to(torch.uint8)
    mnist = ImageData(
        sources.view(10, 1, 1, 1).expand(10, 1, 28, 28).clone(), torch.arange(10), name="levels"
    )
    samples = StackedMNIST(mnist).sample(26000, torch.Generator().manual_seed(0))
    result = stacked_mnist_modes(samples, DigitByIntensity())
    # The published sample count: every mode reached (each missed with probability e^-26), and
    # the histogram's own noise KL ~ (1000 - 1) / (2 * 26000) = 0.0192 +- 0.0009.
    assert result["modes"] == 1000 and result["n"] == 26000
    assert result["reverse_kl"] == pytest.approx(999 / 52000, abs=0.004)


@pytest.mark.parametrize(
    "shape", [(4, 1, 28, 28), (4, 3, 32, 32), (4, 28, 28, 3), (3, 28, 28), (0, 3, 28, 28)]
)
def test_wrong_shapes_raise_naming_the_shape(shape):
    with pytest.raises(ValueError, match=re.escape(f"got {shape}") + "$"):
        stacked_mnist_modes(torch.zeros(shape), DigitByIntensity())


def test_other_bad_input_raises():
    images = images_of_modes([1, 2, 3])
    with pytest.raises(ValueError, match="dtype torch.uint8"):
        stacked_mnist_modes(images.to(torch.uint8), DigitByIntensity())
    for batch_size in (0, -1, 2.0):
        with pytest.raises(ValueError, match=f"got {batch_size!r}"):
            stacked_mnist_modes(images, DigitByIntensity(), batch_size=batch_size)

    def nine_classes(channel_images):
        return torch.zeros(len(channel_images), 9)

    with pytest.raises(ValueError, match=r"shape \(3, 10\) .* got \(3, 9\)"):
        stacked_mnist_modes(images, nine_classes)
