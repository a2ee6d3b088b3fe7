"""Residual players: the ResNet generator and discriminator of SNGAN (Miyato et al. 2018) at 32 px.

These are the CIFAR-10 nets of the SNGAN paper (its Table 4, `resnet` columns), generic in the
number of image channels, with one `width` (SNGAN's `ch`: 256 for G and 128 for D in the paper;
smaller widths keep them trainable on a CPU).

Generator (w = width, C = image channels, z = latent_dim):

    z -> Linear(z, 4*4*w) -> reshape to w x 4 x 4
      -> GeneratorBlock(w, w) -> 8x8 -> GeneratorBlock(w, w) -> 16x16
      -> GeneratorBlock(w, w) -> 32x32
      -> BatchNorm2d(w), ReLU, Conv3x3(w, C) -> tanh

    GeneratorBlock:  residual  BN, ReLU, 2x nearest upsample, Conv3x3, BN, ReLU, Conv3x3
                     shortcut  2x nearest upsample, Conv1x1

Discriminator (spectral norm on every conv and linear, no batch norm anywhere):

    x (C x 32 x 32) -> OptimizedBlock(C, w) -> 16x16 -> DiscriminatorBlock(w, w, down) -> 8x8
      -> DiscriminatorBlock(w, w) -> 8x8 -> DiscriminatorBlock(w, w) -> 8x8
      -> ReLU -> SumPool (sum over the 8x8 positions) -> Linear(w, 1): one logit, no sigmoid

    OptimizedBlock:      residual  Conv3x3, ReLU, Conv3x3, 2x2 avgpool
                         shortcut  2x2 avgpool, Conv1x1
    DiscriminatorBlock:  residual  ReLU, Conv3x3, ReLU, Conv3x3, [2x2 avgpool]
                         shortcut  [Conv1x1, 2x2 avgpool] when the block downsamples or changes the
                                   width, else the identity

The discriminator's layers sit in `self.net` and end in its Linear, so that
`gankit.nets.conditional.split_head` finds the pooled feature vector (body) and the logit layer
(head): `ProjectionDiscriminator(ResNetDiscriminator(...), K)` is SNGAN's
conditional D. Batch norm always takes its defaults (eps=1e-5, momentum=0.1). A Conv3x3 followed
by a 2x2 avgpool is computed as one 4x4 stride-2 conv (`PooledConv2d`), the same function.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as apply_spectral_norm

from gankit.errors import GankitError

IMAGE_SIZE = 32
BOTTOM_SIZE = 4  # side of the generator's first map; three up-blocks double it to 32


class ImageShapeError(GankitError, ValueError):
    """An image shape the nets do not support: a ValueError, printed as one line by the CLI."""


def check_image_shape(image_shape: tuple[int, ...]) -> None:
    """Refuse any shape but (C, 32, 32), naming the shape.

    Args:
        image_shape: shape of one image, (channels, height, width).

    Raises:
        ImageShapeError: (a ValueError and a GankitError) if the shape is not (C, 32, 32).
    """
    if len(image_shape) != 3 or tuple(image_shape[1:]) != (IMAGE_SIZE, IMAGE_SIZE):
        raise ImageShapeError(f"the ResNet (SNGAN) nets take 32x32 images (C, 32, 32), got image "
                              f"shape {tuple(image_shape)}; pad 28-px data to 32 with data.pad=2")


def _init_conv(module: nn.Module, gain: float) -> None:
    """SNGAN's init: Glorot-uniform weights with `gain`, zero biases."""
    nn.init.xavier_uniform_(module.weight, gain=gain)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


# Residual convs get gain sqrt(2) (they follow a ReLU); shortcuts and in/out layers gain 1.
RESIDUAL_GAIN = math.sqrt(2)


class SumPool(nn.Module):
    """N x C x H x W -> N x C: the sum over positions (SNGAN's global pooling, not the mean)."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features.sum(dim=(2, 3))


def pooled_kernel(weight: torch.Tensor) -> torch.Tensor:
    """The (out, in, 4, 4) kernel of a 3x3 conv (padding 1) followed by a 2x2 average pool: the
    (out, in, 3, 3) kernel averaged over its four offsets in a 4x4 frame."""
    return (F.pad(weight, (0, 1, 0, 1)) + F.pad(weight, (1, 0, 0, 1))
            + F.pad(weight, (0, 1, 1, 0)) + F.pad(weight, (1, 0, 1, 0))) / 4


class PooledConv2d(nn.Conv2d):
    """nn.Conv2d(in, out, 3, padding=1) followed by a 2x2 average pool: S x S -> S/2 x S/2.

    Both are linear, so together they are one 4x4 stride-2 conv (padding 1) with
    `pooled_kernel(weight)`: 16 multiply-adds per output where the 3x3 conv does 9 on each of the
    four positions the pool averages, and no pool. fashion-resnet's training step (bf16, batch
    64, 2 threads, AMD EPYC) took 49.7 ms with it against 53.7 ms without (median of 100 paired
    steps, benchmarks/step_profile.py --pool-pairs). Same weight, bias and state_dict keys as the
    nn.Conv2d, and spectral norm normalises the 3x3 kernel, as SNGAN's does. With
    `pool_in_kernel = False` it convolves, then pools, as the reference code does
    (benchmarks/throughput.py's plain step).
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, 3, padding=1)
        self.pool_in_kernel = True

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if not self.pool_in_kernel:
            return F.avg_pool2d(super().forward(features), 2)
        return F.conv2d(features, pooled_kernel(self.weight), self.bias, stride=2, padding=1)


class GeneratorBlock(nn.Module):
    """An up-sampling residual block: c_in x S x S -> c_out x 2S x 2S.

    Args:
        in_channels: channels of the input map.
        out_channels: channels of the output map.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.residual = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),  # in place on BN's fresh output, never on the block input
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        # A 1x1 conv and nearest upsampling commute exactly; convolving first is 4x cheaper.
        self.shortcut = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1),
            nn.Upsample(scale_factor=2, mode="nearest"),
        )
        for module in self.residual:
            if isinstance(module, nn.Conv2d):
                _init_conv(module, RESIDUAL_GAIN)
        _init_conv(self.shortcut[0], 1.0)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.residual(features) + self.shortcut(features)


class OptimizedBlock(nn.Module):
    """The discriminator's first block, on raw images: c_in x S x S -> c_out x S/2 x S/2.

    No ReLU before its first conv (the input is the image itself).

    Args:
        in_channels: image channels.
        out_channels: channels of the output map.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.residual = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.ReLU(inplace=True),
            PooledConv2d(out_channels, out_channels),  # Conv3x3 and the 2x2 avgpool
        )
        self.shortcut = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(in_channels, out_channels, 1))
        _init_conv(self.residual[0], RESIDUAL_GAIN)
        _init_conv(self.residual[2], RESIDUAL_GAIN)
        _init_conv(self.shortcut[1], 1.0)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.residual(images) + self.shortcut(images)


class DiscriminatorBlock(nn.Module):
    """A residual block of the discriminator: c_in x S x S -> c_out x S' x S'.

    Args:
        in_channels: channels of the input map.
        out_channels: channels of the output map.
        downsample: end with a 2x2 average pool (S' = S/2), else S' = S.
    """

    def __init__(self, in_channels: int, out_channels: int, downsample: bool = False):
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReLU(),  # not in place: the shortcut still reads the block's input
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.ReLU(inplace=True),
            # Conv3x3, and the 2x2 avgpool when the block downsamples.
            PooledConv2d(out_channels, out_channels) if downsample
            else nn.Conv2d(out_channels, out_channels, 3, padding=1),
        ]
        self.residual = nn.Sequential(*layers)
        for module in layers:
            if isinstance(module, nn.Conv2d):
                _init_conv(module, RESIDUAL_GAIN)
        # The shortcut must match the residual's shape; when it already does, it is the identity.
        shortcut: list[nn.Module] = []
        if downsample or in_channels != out_channels:
            shortcut.append(nn.Conv2d(in_channels, out_channels, 1))
            _init_conv(shortcut[0], 1.0)
            if downsample:
                shortcut.append(nn.AvgPool2d(2))
        self.shortcut = nn.Sequential(*shortcut)  # empty Sequential = identity

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.residual(features) + self.shortcut(features)


class ResNetGenerator(nn.Module):
    """z (N x latent_dim) -> images (N x C x 32 x 32) in [-1, 1]; layers in the module docstring.

    Args:
        latent_dim: size of the noise vector.
        image_shape: shape of one image, (C, 32, 32).
        width: channels of every block (SNGAN's ch; 256 in the paper).

    Raises:
        ImageShapeError: (a ValueError) for any image shape but (C, 32, 32).
    """

    def __init__(self, latent_dim: int = 128, image_shape: tuple[int, int, int] = (3, 32, 32),
                 width: int = 64):
        super().__init__()
        check_image_shape(image_shape)
        self.latent_dim = latent_dim
        self.image_shape = tuple(image_shape)
        self.width = width
        self.project = nn.Linear(latent_dim, BOTTOM_SIZE * BOTTOM_SIZE * width)
        self.net = nn.Sequential(
            GeneratorBlock(width, width),  # 4 -> 8
            GeneratorBlock(width, width),  # 8 -> 16
            GeneratorBlock(width, width),  # 16 -> 32
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, image_shape[0], 3, padding=1),
            nn.Tanh(),
        )
        _init_conv(self.project, 1.0)
        _init_conv(self.net[-2], 1.0)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        start = self.project(latent).view(len(latent), self.width, BOTTOM_SIZE, BOTTOM_SIZE)
        return self.net(start)


class ResNetDiscriminator(nn.Module):
    """images (N x C x 32 x 32) -> one real/fake logit per sample (N,); no sigmoid.

    Spectral norm is on every conv and linear (SNGAN's D always has it); there is no batch norm.
    `net[:-1]` gives the pooled feature vector (N x width), `net[-1]` is the Linear(width, 1).

    Args:
        image_shape: shape of one image, (C, 32, 32).
        width: channels of every block (SNGAN's ch; 128 in the paper).

    Raises:
        ImageShapeError: (a ValueError) for any image shape but (C, 32, 32).
    """

    def __init__(self, image_shape: tuple[int, int, int] = (3, 32, 32), width: int = 64):
        super().__init__()
        check_image_shape(image_shape)
        self.image_shape = tuple(image_shape)
        self.net = nn.Sequential(
            OptimizedBlock(image_shape[0], width),  # 32 -> 16
            DiscriminatorBlock(width, width, downsample=True),  # 16 -> 8
            DiscriminatorBlock(width, width),
            DiscriminatorBlock(width, width),
            nn.ReLU(),
            SumPool(),
            nn.Linear(width, 1),
        )
        _init_conv(self.net[-1], 1.0)
        # After the init: the parametrization divides the initialised weight by its norm.
        for module in [m for m in self.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]:
            apply_spectral_norm(module)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images).reshape(-1)


__all__ = ["DiscriminatorBlock", "GeneratorBlock", "ImageShapeError", "OptimizedBlock",
           "PooledConv2d", "ResNetDiscriminator", "ResNetGenerator", "SumPool",
           "check_image_shape", "pooled_kernel"]
