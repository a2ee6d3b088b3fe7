"""Tests for gankit.viz.grid: layout, pixel values, upscaling and PNG output."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.viz.grid import image_grid, save_image_grid


def test_black_images_give_black_tiles_on_white_padding():
    grid = image_grid(-torch.ones(4, 1, 8, 8), min_size=8)  # min_size=8: no upscaling
    assert grid.dtype == torch.uint8
    # 2x2 tiles of 8 px with 2 px padding around and between: 2 + 2 * (8 + 2) = 22.
    assert grid.shape == (1, 22, 22)
    tiles = [grid[0, 2:10, 2:10], grid[0, 2:10, 12:20], grid[0, 12:20, 2:10], grid[0, 12:20, 12:20]]
    assert all(bool((tile == 0).all()) for tile in tiles)
    padding = grid[0].clone()
    padding[2:10, 2:10] = padding[2:10, 12:20] = padding[12:20, 2:10] = padding[12:20, 12:20] = 255
    assert bool((padding == 255).all())


def test_white_images_and_clamping():
    assert bool((image_grid(torch.ones(4, 1, 8, 8), min_size=8) == 255).all())
    # Values past [-1, 1] are clamped, not wrapped around.
    assert bool((image_grid(torch.full((4, 1, 8, 8), 3.0), min_size=8) == 255).all())
    middle = image_grid(torch.zeros(1, 1, 8, 8), min_size=8)
    assert bool((middle == 128).all())  # 0 maps to 0.5 -> 127.5 rounds to 128


def test_rgb_stays_rgb_and_keeps_colour():
    images = -torch.ones(2, 3, 8, 8)
    images[:, 0] = 1.0  # pure red
    grid = image_grid(images, min_size=8)
    assert grid.shape[0] == 3
    tile = grid[:, 2:10, 2:10]
    assert bool((tile[0] == 255).all()) and bool((tile[1:] == 0).all())


def test_upscaling_makes_tiny_images_visible():
    grid = image_grid(-torch.ones(4, 1, 8, 8), min_size=64)  # ceil(64 / 8) = 8x
    assert grid.shape == (1, 2 + 2 * 66, 2 + 2 * 66)
    assert bool((grid[0, 2:66, 2:66] == 0).all())
    assert bool((grid[0, 66:68, :] == 255).all())  # padding stays 2 px, not upscaled
    default = image_grid(-torch.ones(4, 1, 8, 8))  # min_size=128: 16x
    assert default.shape == (1, 2 + 2 * 130, 2 + 2 * 130)


def test_upscaling_is_nearest_neighbour():
    image = -torch.ones(1, 1, 2, 2)
    image[0, 0, 0, 0] = 1.0
    grid = image_grid(image, min_size=8)  # one image: no padding, 4x
    assert grid.shape == (1, 8, 8)
    assert bool((grid[0, :4, :4] == 255).all()) and bool((grid[0, 4:, :] == 0).all())


def test_default_nrow_is_near_square_and_accepts_numpy():
    grid = image_grid(np.zeros((5, 1, 8, 8), dtype=np.float32), min_size=8)
    # ceil(sqrt(5)) = 3 per row -> 2 rows of 3.
    assert grid.shape == (1, 2 + 2 * 10, 2 + 3 * 10)
    assert image_grid(torch.zeros(6, 1, 8, 8), nrow=6, min_size=8).shape == (1, 12, 62)


@pytest.mark.parametrize("shape", [(8, 8), (1, 8, 8), (4, 2, 8, 8), (0, 1, 8, 8), (2, 1, 1, 8, 8)])
def test_bad_shapes_raise_naming_the_shape(shape):
    with pytest.raises(ValueError, match=str(shape).replace("(", r"\(").replace(")", r"\)")):
        image_grid(torch.zeros(shape))


def test_save_image_grid_writes_png_of_grid_size(tmp_path):
    path = save_image_grid(torch.rand(9, 1, 8, 8) * 2 - 1, tmp_path / "new" / "grid.png")
    assert path == tmp_path / "new" / "grid.png"
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.mode == "L"
        assert image.size == (2 + 3 * 130, 2 + 3 * 130)

    rgb = save_image_grid(torch.zeros(2, 3, 32, 32), str(tmp_path / "rgb.png"), nrow=2)
    with Image.open(rgb) as image:
        assert image.mode == "RGB"
        assert image.size == (2 + 2 * 130, 2 + 130)  # 32 px upscaled 4x to 128
        assert image.getpixel((5, 5)) == (128, 128, 128)
