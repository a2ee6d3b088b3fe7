"""Image grids: a batch of generated images laid out as one picture.

Built on ``torchvision.utils.make_grid``; PNGs are written with Pillow.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

_PADDING = 2  # pixels of white between tiles


def image_grid(
    images: torch.Tensor | np.ndarray, nrow: int | None = None, min_size: int = 128
) -> torch.Tensor:
    """Lay out a batch of images in [-1, 1] as one uint8 picture.

    Each image is first enlarged by an integer factor ``max(1, ceil(min_size / H))`` with
    nearest-neighbour sampling, so tiny images (8x8 digits) stay visible without blurring;
    the white padding between tiles is not enlarged. A batch of one image is returned as
    that image, without padding (as ``make_grid`` does).

    Args:
        images: Float tensor or array of shape (N, C, H, W), values in [-1, 1] (values
            outside are clamped), C is 1 (grey) or 3 (RGB).
        nrow: Images per row; defaults to ``ceil(sqrt(N))`` (a near-square grid).
        min_size: Smallest tile height in pixels that upscaling aims for.

    Returns:
        A uint8 tensor of shape (C, H_grid, W_grid) with the same C as the input.

    Raises:
        ValueError: If ``images`` is not 4-D, has no images, or has a channel count other
            than 1 or 3.
    """
    batch = torch.as_tensor(images).detach().cpu()
    if batch.dim() != 4 or batch.shape[1] not in (1, 3) or batch.shape[0] == 0:
        raise ValueError(
            f"expected images of shape (N, C, H, W) with N >= 1 and C in (1, 3), "
            f"got shape {tuple(batch.shape)}"
        )
    channels, height = batch.shape[1], batch.shape[2]
    batch = ((batch.float() + 1.0) / 2.0).clamp(0.0, 1.0)

    factor = max(1, math.ceil(min_size / height))
    if factor > 1:
        batch = batch.repeat_interleave(factor, dim=2).repeat_interleave(factor, dim=3)

    if nrow is None:
        nrow = math.ceil(math.sqrt(batch.shape[0]))
    # Imported here: torchvision's import brings torch._dynamo with it, about 2 s of every
    # gankit command's start on a 2-core machine, even of those that draw no grid.
    from torchvision.utils import make_grid

    grid = make_grid(batch, nrow=nrow, padding=_PADDING, pad_value=1.0)
    # make_grid always returns 3 channels; grey input stays grey so the PNG is mode "L".
    grid = grid[:channels]
    return (grid * 255.0).round().to(torch.uint8)


def save_image_grid(
    images: torch.Tensor | np.ndarray,
    path: str | Path,
    nrow: int | None = None,
    min_size: int = 128,
) -> Path:
    """Write a batch of images in [-1, 1] as one PNG grid.

    Args:
        images: Float tensor or array of shape (N, C, H, W) in [-1, 1], C in (1, 3).
        path: Where to write the PNG; parent folders are created.
        nrow: Images per row; defaults to ``ceil(sqrt(N))``.
        min_size: Passed to :func:`image_grid` (tiny images are enlarged to about this).

    Returns:
        The path written, as a ``pathlib.Path``.

    Raises:
        ValueError: If ``images`` has the wrong shape (see :func:`image_grid`).
    """
    grid = image_grid(images, nrow=nrow, min_size=min_size)
    pixels = grid.permute(1, 2, 0).numpy()
    if pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]  # PIL wants (H, W) for a grey image
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="PNG")
    return path
