"""Stacked MNIST: three MNIST digits as the R, G and B channels of one image, 1,000 modes.

The benchmark of mode collapse from Metz et al. 2017 (unrolled GANs), used by VEEGAN
(Srivastava et al. 2017) and PacGAN (Lin et al. 2018). Each image stacks three digits drawn
independently and uniformly, with replacement, from an MNIST set; its mode is the triple of
digit classes, 100 d_R + 10 d_G + d_B in 0..999, so the data spreads evenly over 1,000 modes
and `gankit.eval.modes.stacked_mnist_modes` counts how many of them a generator reaches.

Two ways to use it:

- ``StackedMNIST(mnist)`` (no ``size``) draws fresh triples at every ``sample`` call. This is
  the better training distribution: the discriminator never sees the same stacked image twice,
  so it cannot memorise a finite set, and all 60,000^3 combinations are possible.
- ``StackedMNIST(mnist, size=N)`` fixes N stacked images once, made with a generator seeded by
  ``seed``, as the published protocols do (e.g. PacGAN's 128,000 training images); ``sample``
  then draws from that set, and ``build()`` hands it out as an ``ImageData`` whose labels are
  the modes, for code that wants any other image set.

Either way the object has ImageData's interface for the training loop: ``kind``, ``shape``,
``name``, ``sample(n, generator)`` and ``first(n)``.
"""

from __future__ import annotations

import torch

from gankit.data.images import ImageData, to_float
from gankit.errors import GankitError

N_DIGITS = 10
N_CHANNELS = 3
N_MODES = N_DIGITS**N_CHANNELS
# Weights of the R, G and B digits in the mode: the triple read as a three-digit number.
MODE_PLACES = torch.tensor([100, 10, 1])


def digits_to_modes(digits: torch.Tensor) -> torch.Tensor:
    """The Stacked MNIST mode of each digit triple.

    Args:
        digits: integer tensor (N, 3) of digit classes 0..9, in channel order R, G, B.

    Returns:
        int64 tensor (N,) of modes 100 d_R + 10 d_G + d_B in 0..999.
    """
    if digits.ndim != 2 or digits.shape[1] != N_CHANNELS:
        raise ValueError(f"digits must have shape (N, 3), got {tuple(digits.shape)}")
    return (digits.to(torch.int64) * MODE_PLACES.to(digits.device)).sum(dim=1)


class StackedMNIST:
    """Images whose three channels are independent, uniform draws from a one-channel digit set.

    Args:
        mnist: the source digits, uint8 (M, 1, H, W) with labels 0..9 (MNIST: 28 x 28).
        size: None for fresh triples at every ``sample`` call; else the number of stacked
            images in a fixed set, made once from ``seed``, that ``sample`` draws from.
        seed: seeds the fixed set and the images ``first`` returns.

    Raises:
        GankitError: ``mnist`` is not one-channel, is empty, or has labels outside 0..9.
        ValueError: ``size`` is not a positive integer.
    """

    kind = "images"

    def __init__(self, mnist: ImageData, size: int | None = None, seed: int = 0):
        digits = mnist.images
        if digits.ndim != 4 or digits.shape[1] != 1 or len(digits) == 0:
            raise GankitError(
                f"stacked MNIST needs one-channel digits (M, 1, H, W) with M > 0, "
                f"got {mnist.name} of shape {tuple(digits.shape)}"
            )
        labels = torch.as_tensor(mnist.labels).to(torch.int64)
        if labels.shape != (len(digits),):
            raise GankitError(
                f"{mnist.name}: labels of shape {tuple(labels.shape)} do not "
                f"match {len(digits)} images"
            )
        if labels.min() < 0 or labels.max() >= N_DIGITS:
            raise GankitError(
                f"{mnist.name}: stacked MNIST needs digit labels in 0..9, got "
                f"labels from {int(labels.min())} to {int(labels.max())}"
            )
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
            raise ValueError(f"size must be a positive integer or None, got {size!r}")
        self.mnist = mnist
        self.digit_labels = labels
        self.size = size
        self.seed = seed
        self.name = f"stacked-{mnist.name}"
        self.fixed_set: ImageData | None = None
        if size is not None:
            images, modes = self.draw(size, torch.Generator().manual_seed(seed))
            self.fixed_set = ImageData(images, modes, name=self.name)

    @property
    def shape(self) -> tuple[int, int, int]:
        height, width = self.mnist.images.shape[2:]
        return (N_CHANNELS, height, width)

    def stack(self, source_indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Stack chosen source digits into images.

        Args:
            source_indices: int64 tensor (N, 3): the index into ``mnist`` of the R, G and B digit
                of each image.

        Returns:
            ``(images, modes)``: uint8 (N, 3, H, W) and int64 (N,) modes in 0..999.
        """
        if source_indices.ndim != 2 or source_indices.shape[1] != N_CHANNELS:
            raise ValueError(
                f"source_indices must have shape (N, 3), got {tuple(source_indices.shape)}"
            )
        # (N, 3) indices into (M, 1, H, W) give (N, 3, 1, H, W): drop the source channel axis.
        images = self.mnist.images[source_indices].squeeze(2)
        return images, digits_to_modes(self.digit_labels[source_indices])

    def draw(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """n fresh stacked images, each channel an independent uniform draw with replacement.

        Args:
            n: the number of images.
            generator: the random stream (CPU); None uses torch's global one.

        Returns:
            ``(images, modes)``: uint8 (n, 3, H, W) and int64 (n,) modes in 0..999.
        """
        source_indices = torch.randint(len(self.mnist.images), (n, N_CHANNELS), generator=generator)
        return self.stack(source_indices)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """A minibatch of n images in [-1, 1]: fresh triples, or draws from the fixed set.

        Args:
            n: the number of images.
            generator: the random stream (CPU); None uses torch's global one.

        Returns:
            float32 tensor (n, 3, H, W) in [-1, 1].
        """
        if self.fixed_set is not None:
            return self.fixed_set.sample(n, generator)
        return to_float(self.draw(n, generator)[0])

    def first(self, n: int) -> torch.Tensor:
        """n fixed images in [-1, 1] for pictures: the same for the same seed, call after call.

        Args:
            n: the number of images (at most ``size`` for a fixed set).

        Returns:
            float32 tensor (n, 3, H, W) in [-1, 1].
        """
        if self.fixed_set is not None:
            return self.fixed_set.first(n)
        return to_float(self.draw(n, torch.Generator().manual_seed(self.seed))[0])

    def build(self) -> ImageData:
        """The fixed set as an ImageData: uint8 (size, 3, H, W), labels the modes 0..999.

        Returns:
            The ``ImageData`` that ``sample`` draws from.

        Raises:
            ValueError: this StackedMNIST was made without ``size`` and has no fixed set.
        """
        if self.fixed_set is None:
            raise ValueError("build() needs a fixed set: make StackedMNIST with size=N")
        return self.fixed_set
