"""Players for paired image-to-image tasks: a noise-fed encoder-decoder and a pair discriminator.

`PairedGenerator` maps (input image, noise vector) to an output image of the same shape. The
encoder ends in a dense bottleneck, so every output pixel can depend on the whole input (a
sideways move of the digit, say) and on the noise, which joins at the bottleneck. The same
module serves as a regressor (fed zeros for noise) and as a conditional GAN's generator.

`PairedDiscriminator` is pix2pix's conditional D in its simplest form: it judges the input and
the output together, stacked as channels, so it can tell an output that does not fit its input
from one that does, not only a bad-looking image from a good one.
"""

from __future__ import annotations

import torch
from torch import nn


def _check_shape(image_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(image_shape) != 3 or image_shape[1] % 4 or image_shape[2] % 4:
        raise ValueError(f"paired nets need a (C, H, W) shape with H and W divisible by 4, "
                         f"got {tuple(image_shape)}")
    return tuple(image_shape)


class PairedGenerator(nn.Module):
    """(input (N, C, H, W), noise (N, noise_dim)) -> output (N, C, H, W) in [-1, 1].

    Layers (w = width): Conv(C, w, k4, s2) -> H/2, Conv(w, 2w, k4, s2) -> H/4, Linear to
    `bottleneck` units; then [bottleneck, noise] -> Linear to 2w x H/4 x W/4, ConvT(2w, w, k4,
    s2) -> H/2, ConvT(w, C, k4, s2) -> H, tanh. LeakyReLU(0.2) in the encoder, ReLU in the
    decoder; with `batchnorm`, batch norm after the decoder's two hidden layers, as in DCGAN's
    generator. In training mode (which the training loop never leaves) batch norm normalises
    with the statistics of the batch being computed, at sampling time too.

    Args:
        image_shape: (C, H, W) of inputs and outputs, H and W divisible by 4.
        noise_dim: size of the noise vector (a regressor may feed zeros).
        width: channels of the first conv layer.
        bottleneck: units of the dense code the input is squeezed into.
        batchnorm: batch norm in the decoder (off: each sample is computed on its own).

    Raises:
        ValueError: for an image shape the layers cannot halve twice.
    """

    def __init__(self, image_shape: tuple[int, int, int] = (1, 28, 28), noise_dim: int = 8,
                 width: int = 32, bottleneck: int = 256, batchnorm: bool = False):
        super().__init__()
        channels, height, wide = _check_shape(image_shape)
        self.image_shape = (channels, height, wide)
        self.noise_dim = noise_dim
        small = (2 * width, height // 4, wide // 4)
        norm1 = nn.BatchNorm1d(small[0] * small[1] * small[2]) if batchnorm else nn.Identity()
        norm2 = nn.BatchNorm2d(width) if batchnorm else nn.Identity()
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(small[0] * small[1] * small[2], bottleneck),
            nn.LeakyReLU(0.2))
        self.decoder = nn.Sequential(
            nn.Linear(bottleneck + noise_dim, small[0] * small[1] * small[2]), norm1, nn.ReLU(),
            nn.Unflatten(1, small),
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1), norm2, nn.ReLU(),
            nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1), nn.Tanh())

    def forward(self, images: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.decoder(torch.cat([self.encoder(images), noise], dim=1))


class PairedDiscriminator(nn.Module):
    """(input, output) -> one logit per pair: the two images stacked as 2C channels.

    Layers (w = width): Conv(2C, w, k4, s2) -> H/2, Conv(w, 2w, k4, s2) -> H/4, then
    Linear(2w x H/4 x W/4, hidden) and Linear(hidden, 1), LeakyReLU(0.2) after all but the
    last (hidden 0: Linear(2w x H/4 x W/4, 1) straight from the convs). The convs see only
    10-pixel windows; the hidden dense layer compares the whole input with the whole output
    (is the output one copy of the input, moved?). Without it, D's logit was linear in the
    conv features and, in this task's trials, let G get away with double images for thousands
    of steps.

    Args:
        image_shape: (C, H, W) of one image of the pair, H and W divisible by 4.
        width: channels of the first conv layer.
        hidden: units of the hidden dense layer; 0 leaves it out.

    Raises:
        ValueError: for an image shape the layers cannot halve twice.
    """

    def __init__(self, image_shape: tuple[int, int, int] = (1, 28, 28), width: int = 32,
                 hidden: int = 128):
        super().__init__()
        channels, height, wide = _check_shape(image_shape)
        features = 2 * width * (height // 4) * (wide // 4)
        self.net = nn.Sequential(
            nn.Conv2d(2 * channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Flatten())
        # Layers made in order: the same seed gives the same weights as ever.
        self.net.extend([nn.Linear(features, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1)]
                        if hidden else [nn.Linear(features, 1)])

    def forward(self, inputs: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([inputs, outputs], dim=1)).squeeze(1)
