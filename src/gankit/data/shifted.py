"""Shifted digits: a prediction task whose future has two equally likely answers.

The lecture's point about multimodality (seed 003): the input is an MNIST digit, the target is
the same digit moved SHIFT = 6 pixels to the left or to the right, each with probability 1/2,
and nothing in the input says which. The MSE-optimal prediction is the conditional mean, the
average of the two shifted digits (a ghosted double image); a sample from the true conditional
distribution is one of the two, sharp.

Shifts move the 28 x 28 picture sideways and fill the uncovered columns with background (black,
-1 after `to_float`); pixels pushed past the edge are dropped, never wrapped around. MNIST digits
sit in a 20 x 20 box centred in the frame, so a 6-pixel shift can crop up to ~2 columns of the
widest digits; both targets of an input are cropped the same way, so the task stays two-modal.
"""

from __future__ import annotations

import torch

from gankit.data.images import ImageData, to_float
from gankit.errors import GankitError

SHIFT = 6  # pixels
LEFT, RIGHT = -1, 1  # the direction codes of `sample_pairs`: the sign of the horizontal move


def shift_images(images: torch.Tensor, offsets: torch.Tensor | int) -> torch.Tensor:
    """Move each image sideways by a whole number of pixels, filling with background.

    Args:
        images: (N, C, H, W) uint8 images (background 0) or float images in [-1, 1]
            (background -1).
        offsets: pixels to move each image, positive to the right, negative to the left; an int
            for all images or an int tensor (N,). |offset| must be below W.

    Returns:
        Images of the same shape and dtype, shifted, with the uncovered columns set to the
        background value; nothing wraps around.

    Raises:
        GankitError: for images that are not 4-D, offsets of the wrong length, or an offset as
            wide as the image.
    """
    if images.dim() != 4:
        raise GankitError(f"shift_images needs (N, C, H, W) images, got {tuple(images.shape)}")
    n, width = images.shape[0], images.shape[-1]
    offsets = torch.as_tensor(offsets, dtype=torch.int64)
    if offsets.dim() == 0:
        offsets = offsets.expand(n)
    if offsets.shape != (n,):
        raise GankitError(f"shift_images needs one offset per image ({n}), "
                          f"got shape {tuple(offsets.shape)}")
    if n and int(offsets.abs().max()) >= width:
        raise GankitError(f"a shift of {int(offsets.abs().max())} px leaves nothing of a "
                          f"{width} px wide image")
    background = 0 if images.dtype == torch.uint8 else -1.0
    # Gather columns: output column j reads input column j - offset; out-of-range reads are
    # background. One gather for the whole batch, whatever the mix of offsets.
    offsets = offsets.to(images.device)
    columns = torch.arange(width, device=images.device)[None, :] - offsets[:, None]
    valid = (columns >= 0) & (columns < width)
    index = columns.clamp(0, width - 1)[:, None, None, :].expand_as(images)
    shifted = images.gather(3, index)
    return torch.where(valid[:, None, None, :], shifted, torch.full_like(shifted, background))


class ShiftedDigits:
    """(digit, digit shifted SHIFT px left or right) pairs: a task with two equally likely targets.

    The direction of each pair is a fair coin flip from the caller's generator, so the same
    seed gives the same pairs. For the training loop the object also has ImageData's interface
    (`kind`, `shape`, `name`, `sample`, `first`), where a "sample" is a target image: that is
    what a generator trained on the task produces.

    Args:
        digits: the source digits, uint8 (M, 1, H, W), e.g. `load_idx_dataset("mnist", root)`.
        shift: pixels to move the target, 0 < shift < W.
        seed: seeds `first` and `first_pairs`, the fixed pairs shown in pictures.

    Raises:
        GankitError: `digits` is empty or not one-channel images, or `shift` is out of range.
    """

    kind = "images"

    def __init__(self, digits: ImageData, shift: int = SHIFT, seed: int = 0):
        images = digits.images
        if images.dim() != 4 or images.shape[1] != 1 or len(images) == 0:
            raise GankitError(f"shifted digits need one-channel images (M, 1, H, W) with M > 0, "
                              f"got {digits.name} of shape {tuple(images.shape)}")
        if not 0 < shift < images.shape[-1]:
            raise GankitError(f"shift={shift} must be between 1 and {images.shape[-1] - 1} px")
        self.digits = digits
        self.shift = shift
        self.seed = seed
        self.name = f"shifted-{digits.name} (±{shift} px)"

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.digits.images.shape[1:])

    def __len__(self) -> int:
        return len(self.digits.images)

    def pairs_at(self, index: torch.Tensor, direction: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """(input, target) in [-1, 1] for chosen digits and directions.

        Args:
            index: int64 (n,) indices into the source digits.
            direction: int64 (n,) of LEFT (-1) or RIGHT (+1).

        Returns:
            (input, target): float32 (n, 1, H, W) each.
        """
        images = self.digits.images[index]
        return to_float(images), to_float(shift_images(images, direction * self.shift))

    def both_targets(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two possible targets of each input: (shifted left, shifted right), in [-1, 1].

        Args:
            inputs: float (n, 1, H, W) digits in [-1, 1] (the inputs of `sample_pairs`).

        Returns:
            (left, right), each like `inputs`.
        """
        return shift_images(inputs, -self.shift), shift_images(inputs, self.shift)

    def sample_inputs(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n input digits in [-1, 1], drawn uniformly with replacement.

        Args:
            n: how many.
            generator: the random stream (CPU); None uses torch's global one.

        Returns:
            float32 (n, 1, H, W).
        """
        index = torch.randint(len(self), (n,), generator=generator)
        return to_float(self.digits.images[index])

    def sample_pairs(self, n: int, generator: torch.Generator | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """n training pairs: digits drawn uniformly with replacement, directions fair coin flips.

        Args:
            n: how many pairs.
            generator: the random stream (CPU); the same seed gives the same pairs.

        Returns:
            (input, target, direction): float32 (n, 1, H, W) digits in [-1, 1], float32
            (n, 1, H, W) the same digits shifted `shift` px, and int64 (n,) the direction of
            each shift, LEFT (-1) or RIGHT (+1).
        """
        index = torch.randint(len(self), (n,), generator=generator)
        direction = torch.randint(2, (n,), generator=generator) * 2 - 1
        inputs, targets = self.pairs_at(index, direction)
        return inputs, targets, direction

    def first_pairs(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The first n digits with directions drawn from `seed`: fixed pairs for pictures.

        Args:
            n: how many pairs (at most the number of digits).

        Returns:
            (input, target, direction) as in `sample_pairs`.
        """
        if not 0 < n <= len(self):
            raise GankitError(f"first_pairs: n={n} must be between 1 and {len(self)}")
        direction = torch.randint(2, (n,), generator=torch.Generator().manual_seed(self.seed))
        direction = direction * 2 - 1
        inputs, targets = self.pairs_at(torch.arange(n), direction)
        return inputs, targets, direction

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n target images (the loop's "real samples"), in [-1, 1]."""
        return self.sample_pairs(n, generator)[1]

    def first(self, n: int) -> torch.Tensor:
        """The targets of `first_pairs(n)`: the run folder's real.png."""
        return self.first_pairs(n)[1]
