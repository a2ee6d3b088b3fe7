"""DiffAugment (Zhao et al. 2020): differentiable augmentations for training D on little data.

The same random transform family is applied to every image D sees, real or generated, in both
phases; because each op is differentiable, G still gets gradients through it. With few real
images (the 400 Olivetti faces) D otherwise memorises them and training collapses.

Written here rather than imported: the authors' reference code is a research script, not a
package on the registries, and the three ops are a few tensor lines each. Images are in
[-1, 1]; translation and cutout fill with 0, as the reference does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str) -> tuple[str, ...]:
    """"color,translation" -> ("color", "translation"); raises ValueError naming a bad op."""
    ops = tuple(op.strip() for op in policy.split(",") if op.strip())
    for op in ops:
        if op not in POLICIES:
            raise ValueError(f"unknown DiffAugment op {op!r}; choose from {', '.join(POLICIES)}")
    return ops


def diff_augment(images: torch.Tensor, ops: tuple[str, ...],
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply each op in `ops` with fresh random parameters per image.

    Args:
        images: (N, C, H, W) in [-1, 1].
        ops: from `parse_policy`.
        generator: the random stream (on the images' device); None uses torch's global one.
    """
    for op in ops:
        images = _OPS[op](images, generator)
    return images


def _uniform(images: torch.Tensor, generator, *shape: int) -> torch.Tensor:
    return torch.rand(len(images), *shape, generator=generator, device=images.device,
                      dtype=images.dtype)


def color(images: torch.Tensor, generator=None) -> torch.Tensor:
    """Random brightness (±0.5), saturation (×[0, 2]) and contrast (×[0.5, 1.5])."""
    images = images + (_uniform(images, generator, 1, 1, 1) - 0.5)
    mean = images.mean(dim=1, keepdim=True)
    images = (images - mean) * (_uniform(images, generator, 1, 1, 1) * 2) + mean
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return (images - mean) * (_uniform(images, generator, 1, 1, 1) + 0.5) + mean


def translation(images: torch.Tensor, generator=None, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ratio·size pixels in x and y, filling with 0."""
    n, _, height, width = images.shape
    max_dy, max_dx = int(height * ratio + 0.5), int(width * ratio + 0.5)
    dy = torch.randint(-max_dy, max_dy + 1, (n, 1, 1), generator=generator, device=images.device)
    dx = torch.randint(-max_dx, max_dx + 1, (n, 1, 1), generator=generator, device=images.device)
    rows = torch.arange(height, device=images.device).view(1, height, 1)
    cols = torch.arange(width, device=images.device).view(1, 1, width)
    # Index into a copy padded by one pixel of 0: positions shifted off the image read the pad.
    source_rows = (rows + dy + 1).clamp(0, height + 1).expand(n, height, width)
    source_cols = (cols + dx + 1).clamp(0, width + 1).expand(n, height, width)
    padded = F.pad(images, (1, 1, 1, 1))
    batch = torch.arange(n, device=images.device).view(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, source_rows, source_cols].permute(0, 3, 1, 2)


def cutout(images: torch.Tensor, generator=None, ratio: float = 0.5) -> torch.Tensor:
    """Zero one square of side ratio·size per image, at a random place (it may be clipped)."""
    n, _, height, width = images.shape
    size_y, size_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    top = torch.randint(0, height + (1 - size_y % 2), (n, 1, 1), generator=generator,
                        device=images.device) - size_y // 2
    left = torch.randint(0, width + (1 - size_x % 2), (n, 1, 1), generator=generator,
                         device=images.device) - size_x // 2
    rows = torch.arange(height, device=images.device).view(1, height, 1)
    cols = torch.arange(width, device=images.device).view(1, 1, width)
    inside = (rows >= top) & (rows < top + size_y) & (cols >= left) & (cols < left + size_x)
    return images * (~inside).unsqueeze(1).to(images.dtype)


_OPS = {"color": color, "translation": translation, "cutout": cutout}
