"""DiffAugment: each op does what it says, is differentiable, reproducible, and D sees it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import tiny_config
from gankit.augment import color, cutout, diff_augment, parse_policy, translation
from gankit.config import load_config
from gankit.errors import GankitError
from gankit.objectives import build_objective


def images(n=16, channels=1, size=16, seed=0):
    uniform = torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed))
    return uniform * 2 - 1


def shifted(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """image moved so that out[y, x] = image[y + dy, x + dx], zero where that is outside."""
    size = image.shape[-1]
    padded = F.pad(image, (size, size, size, size))
    return padded[..., size + dy:2 * size + dy, size + dx:2 * size + dx]


def test_translation_shifts_each_image_by_at_most_an_eighth_and_fills_with_zero():
    batch = images()
    out = translation(batch, torch.Generator().manual_seed(1))
    shifts = set()
    for before, after in zip(batch, out, strict=True):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if torch.equal(shifted(before, dy, dx), after)]
        assert len(matches) == 1  # exactly one shift within ±2 px (16 px / 8) explains it
        shifts.add(matches[0])
    assert len(shifts) > 5  # the shift is drawn per image


def test_cutout_zeroes_one_square_of_half_the_side_and_keeps_the_rest():
    batch = images(seed=2) * 0.5 + 0.6  # no pixel is 0 before the cutout
    out = cutout(batch, torch.Generator().manual_seed(3))
    for before, after in zip(batch, out, strict=True):
        zero = after[0] == 0
        rows, cols = zero.any(dim=1).nonzero()[:, 0], zero.any(dim=0).nonzero()[:, 0]
        # The zeros form one rectangle (the 8 x 8 square, clipped at the border) ...
        assert zero.sum() == len(rows) * len(cols) and 0 < len(rows) <= 8 and len(cols) <= 8
        assert zero[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
        # ... and nothing else changed.
        assert torch.equal(after[0][~zero], before[0][~zero])


def test_color_is_a_per_image_affine_map_with_contrast_in_range_for_grey_images():
    batch = images(seed=4)
    out = color(batch, torch.Generator().manual_seed(5))
    for before, after in zip(batch, out, strict=True):
        x, y = before.flatten(), after.flatten()
        # For one channel, saturation does nothing: out = contrast * x + offset.
        scale = ((x - x.mean()) * (y - y.mean())).sum() / (x - x.mean()).square().sum()
        assert torch.allclose(y, scale * (x - x.mean()) + y.mean(), atol=1e-5)
        assert 0.5 <= scale <= 1.5


def test_ops_are_differentiable_and_reproducible_with_a_seeded_stream():
    ops = parse_policy("color,translation,cutout")
    batch = images(channels=3).requires_grad_(True)
    first = diff_augment(batch, ops, torch.Generator().manual_seed(7))
    again = diff_augment(batch, ops, torch.Generator().manual_seed(7))
    assert torch.equal(first, again)
    first.square().sum().backward()
    assert batch.grad is not None and batch.grad.abs().sum() > 0


def test_unknown_op_is_refused_in_one_line():
    with pytest.raises(ValueError, match="unknown DiffAugment op 'rotate'"):
        parse_policy("color,rotate")
    with pytest.raises(GankitError, match="loss.augment='flip'"):
        load_config("digits-mlp", {"loss.augment": "flip"})


def test_the_discriminator_sees_augmented_images_in_both_phases():
    config = tiny_config(**{"loss.augment": "translation,cutout"})
    plain = build_objective(tiny_config(), (1, 8, 8))
    augmented = build_objective(config, (1, 8, 8))
    augmented.load_state_dict(plain.state_dict())
    seen = []
    augmented.discriminator.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    real = images(n=8, size=8)
    latent = augmented.sample_latent(8, torch.Generator().manual_seed(0))
    augmented.discriminator_phase(real, latent)
    augmented.generator_phase(latent)
    assert len(seen) == 3  # real and fake in D's phase, fake in G's phase
    assert not torch.equal(seen[0], real) and (seen[0] == 0).any()
    d_loss_plain = plain.discriminator_phase(real, latent)[0]
    d_loss_aug = augmented.discriminator_phase(real, latent)[0]
    assert d_loss_aug != d_loss_plain


def test_augmenting_points_is_refused_in_one_line():
    # It used to fail deep inside D with a matrix-shape error.
    config = tiny_config("toy-grid", **{"loss.augment": "translation"})
    with pytest.raises(GankitError, match=r"loss.augment='translation' needs images; grid gives "
                                          r"samples of shape \(2,\)"):
        build_objective(config, (2,))
