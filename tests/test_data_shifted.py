"""Shifted digits: exact 6-pixel moves with a blank border, fair and reproducible directions."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gankit.data.images import ImageData, load_idx_dataset, to_float
from gankit.data.shifted import LEFT, RIGHT, SHIFT, ShiftedDigits, shift_images
from gankit.errors import GankitError

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HAVE_MNIST = (SHARED_DATA / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").is_file()


def blocky_digits(n: int = 50, seed: int = 0) -> ImageData:
    """Random uint8 'digits': a bright block somewhere in the central 16 columns."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.zeros(n, 1, 28, 28, dtype=torch.uint8)
    for i in range(n):
        top, left = torch.randint(0, 20, (2,), generator=generator).tolist()
        images[i, 0, top:top + 8, 6 + left // 2:6 + left // 2 + 6] = 200 + i % 50
    return ImageData(images, torch.arange(n) % 10, name="blocks")


def test_shift_moves_every_pixel_exactly_and_fills_background():
    image = torch.zeros(1, 1, 4, 10, dtype=torch.uint8)
    image[0, 0, :, 2] = 7
    image[0, 0, :, 8] = 9
    right = shift_images(image, 6)[0, 0]
    left = shift_images(image, -6)[0, 0]
    # Column 2 lands on column 8; column 8 falls off the right edge (no wrap to column 4).
    assert right[:, 8].eq(7).all() and right.count_nonzero() == 4
    # Column 8 lands on column 2; column 2 falls off the left edge.
    assert left[:, 2].eq(9).all() and left.count_nonzero() == 4


def test_shift_float_background_is_minus_one_and_offsets_are_per_image():
    images = torch.rand(3, 1, 5, 12) * 2 - 1
    shifted = shift_images(images, torch.tensor([SHIFT, -SHIFT, 0]))
    assert torch.equal(shifted[0, ..., SHIFT:], images[0, ..., :-SHIFT])
    assert shifted[0, ..., :SHIFT].eq(-1).all()
    assert torch.equal(shifted[1, ..., :-SHIFT], images[1, ..., SHIFT:])
    assert shifted[1, ..., -SHIFT:].eq(-1).all()
    assert torch.equal(shifted[2], images[2])


@pytest.mark.parametrize("images, offsets", [
    (torch.zeros(2, 28, 28), 6),                     # not 4-D
    (torch.zeros(2, 1, 28, 28), torch.tensor([6])),  # one offset for two images
    (torch.zeros(2, 1, 28, 28), 28),                 # nothing would be left
])
def test_shift_rejects_bad_input_in_one_line(images, offsets):
    with pytest.raises(GankitError) as excinfo:
        shift_images(images, offsets)
    assert "\n" not in str(excinfo.value)


def test_pairs_are_the_input_shifted_six_pixels_in_the_stated_direction():
    task = ShiftedDigits(blocky_digits())
    inputs, targets, direction = task.sample_pairs(200, torch.Generator().manual_seed(1))
    assert inputs.shape == targets.shape == (200, 1, 28, 28)
    assert inputs.min() >= -1 and inputs.max() <= 1
    assert set(direction.tolist()) == {LEFT, RIGHT}
    for image, target, sign in zip(inputs, targets, direction.tolist(), strict=True):
        if sign == RIGHT:
            assert torch.equal(target[..., SHIFT:], image[..., :-SHIFT])
            assert target[..., :SHIFT].eq(-1).all()  # the uncovered border is background
        else:
            assert torch.equal(target[..., :-SHIFT], image[..., SHIFT:])
            assert target[..., -SHIFT:].eq(-1).all()
    left, right = task.both_targets(inputs)
    chosen = torch.where((direction == LEFT)[:, None, None, None], left, right)
    assert torch.equal(chosen, targets)


def test_directions_are_fair_and_reproducible():
    task = ShiftedDigits(blocky_digits())
    first = task.sample_pairs(4000, torch.Generator().manual_seed(3))
    again = task.sample_pairs(4000, torch.Generator().manual_seed(3))
    other = task.sample_pairs(4000, torch.Generator().manual_seed(4))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[2], other[2])
    share_right = (first[2] == RIGHT).float().mean().item()
    assert abs(share_right - 0.5) < 0.03  # 4000 fair flips: std 0.008
    fixed = task.first_pairs(10)
    assert all(torch.equal(a, b) for a, b in zip(fixed, task.first_pairs(10), strict=True))
    assert torch.equal(task.first(10), fixed[1])
    assert task.sample(5, torch.Generator().manual_seed(0)).shape == (5, 1, 28, 28)


def test_bad_task_settings_raise_one_line():
    with pytest.raises(GankitError):
        ShiftedDigits(blocky_digits(), shift=28)
    with pytest.raises(GankitError):
        ShiftedDigits(ImageData(torch.zeros(0, 1, 28, 28, dtype=torch.uint8),
                                torch.zeros(0, dtype=torch.int64), "empty"))
    with pytest.raises(GankitError):
        ShiftedDigits(blocky_digits()).first_pairs(51)


@pytest.mark.skipif(not HAVE_MNIST, reason=f"MNIST not found under {SHARED_DATA}/MNIST/raw")
def test_real_mnist_pairs():
    task = ShiftedDigits(load_idx_dataset("mnist", SHARED_DATA, "test"))
    assert task.shape == (1, 28, 28) and len(task) == 10_000
    inputs, targets, direction = task.sample_pairs(64, torch.Generator().manual_seed(0))
    raw = torch.round((inputs + 1) * 127.5).to(torch.uint8)
    assert torch.equal(targets, to_float(shift_images(raw, direction * SHIFT)))
    # The two targets of a digit really differ: two modes, not one.
    left, right = task.both_targets(inputs)
    assert ((left - right).abs().flatten(1).amax(dim=1) > 1).all()
