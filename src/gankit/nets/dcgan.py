"""Convolutional players: DCGAN (Radford et al. 2016) as in pytorch/examples, at 28, 32 and 64 px.

The generator starts from a small map (4x4, or 7x7 for 28 px) and doubles it with strided
transposed convolutions; the discriminator mirrors it with strided convolutions. Batch norm always
takes its defaults (eps=1e-5, momentum=0.1) and is only ever given keyword arguments: a well-known
repository wrote `BatchNorm2d(c, 0.8)`, which sets eps where momentum was meant.

The layers are torch's, computed faster where oneDNN is slow on a CPU: the first transposed conv
(LatentProjection) as a matrix product, and the stride-2 ones on small maps partly so
(gankit.nets.strided: their weight gradients, and on a CPU with AMX their forward and input
gradients too).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as apply_spectral_norm

from gankit.nets.batchnorm import PartwiseBatchNorm2d
from gankit.nets.strided import StridedConv2d, StridedConvTranspose2d

# Side of the first generator map (and of the last discriminator map) for each supported size,
# and how many width multiples the widest layer has: 64 px -> 8w, 32 px -> 4w, 28 px -> 2w.
START_SIZES = {28: 7, 32: 4, 64: 4}
WIDEST = {28: 2, 32: 4, 64: 8}


def image_size(image_shape: tuple[int, ...]) -> int:
    """The side of a square (C, H, W) image shape that DCGAN supports (28, 32 or 64).

    Args:
        image_shape: shape of one image, (channels, height, width).

    Returns:
        The side in pixels.

    Raises:
        ValueError: if the shape is not (C, S, S) with S in 28, 32, 64.
    """
    if len(image_shape) != 3 or image_shape[1] != image_shape[2]:
        raise ValueError(f"DCGAN needs a square (C, H, W) image shape, got {tuple(image_shape)}")
    size = image_shape[1]
    if size not in START_SIZES:
        raise ValueError(f"DCGAN supports 28, 32 and 64 px images, got {size} px")
    return size


def dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation for one module; use as `net.apply(dcgan_init)`.

    Conv, transposed-conv and linear weights ~ N(0, 0.02), batch-norm weights ~ N(1, 0.02),
    biases 0.

    Args:
        module: any module; those that are not convs, linears or batch norms are left alone.
    """
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if module.bias is not None:
            # Start every unit unbiased, as the batch-norm biases do.
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, mean=1.0, std=0.02)
        nn.init.zeros_(module.bias)


class LatentProjection(nn.ConvTranspose2d):
    """DCGAN's first layer: ConvT(latent, C, k, s1, p0) from the 1x1 noise map to a k x k map.

    On a 1x1 input that transposed conv is a matrix product, z @ W viewed as C x k x k, and it
    is computed as one: oneDNN's transposed conv took 12 ms for it against 2.4 ms for the
    product (latent 100, C 192, k 7, batch 64, bf16, forward and backward, 2 threads). The
    weight, its shape and its state_dict key stay the ConvTranspose2d's.
    """

    def __init__(self, latent_dim: int, channels: int, size: int):
        super().__init__(latent_dim, channels, kernel_size=size, bias=False)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        n, latent = len(latent), latent.reshape(len(latent), -1)
        weight = self.weight  # read once, as a parametrized (spectrally normed) weight must be
        if weight.is_contiguous(memory_format=torch.channels_last):  # train.channels_last
            # Columns ordered (kh, kw, out): a free view of this weight, and the product is
            # then a channels_last map, with no copy of either.
            columns = weight.permute(0, 2, 3, 1).reshape(self.in_channels, -1)
            out = (latent @ columns).view(n, *self.kernel_size, self.out_channels)
            return out.permute(0, 3, 1, 2)
        out = latent @ weight.reshape(self.in_channels, -1)
        return out.view(n, self.out_channels, *self.kernel_size)


class _FlattenChannelsLast(torch.autograd.Function):
    """Flatten a channels_last map in (C, H, W) order, its gradient handed back channels_last."""

    @staticmethod
    def forward(ctx, maps):
        ctx.shape = maps.shape
        return maps.reshape(len(maps), -1)  # a copy: the strides do not allow a view

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.shape).contiguous(memory_format=torch.channels_last)


class FlattenKeepingFormat(nn.Flatten):
    """nn.Flatten (features in (C, H, W) order) whose gradient keeps its input's memory format.

    nn.Flatten's gradient for a channels_last map comes back NCHW, and the LeakyReLU and batch
    norm before it then ran their backward on mixed memory formats: 1.05 ms against 0.05 ms for
    LeakyReLU's on a 64 x 64 x 7 x 7 bf16 map here.
    """

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        if (maps.dim() == 4 and not maps.is_contiguous()
                and maps.is_contiguous(memory_format=torch.channels_last)):
            return _FlattenChannelsLast.apply(maps)
        return super().forward(maps)


class DCGANGenerator(nn.Module):
    """z (N x latent_dim) -> images (N x C x H x W) in [-1, 1].

    Layers (w = width, C = channels; every ConvTranspose2d but the last has no bias and is
    followed by BatchNorm2d + ReLU; the last is followed by tanh):

    - 64 px: ConvT(latent, 8w, k4, s1, p0) -> 4x4, ConvT(8w, 4w, k4, s2, p1) -> 8x8,
      ConvT(4w, 2w) -> 16x16, ConvT(2w, w) -> 32x32, ConvT(w, C) -> 64x64: 5 transposed convs.
    - 32 px: ConvT(latent, 4w, k4, s1, p0) -> 4x4, ConvT(4w, 2w, k4, s2, p1) -> 8x8,
      ConvT(2w, w) -> 16x16, ConvT(w, C) -> 32x32: 4 transposed convs.
    - 28 px: ConvT(latent, 2w, k7, s1, p0) -> 7x7, ConvT(2w, w, k4, s2, p1) -> 14x14,
      ConvT(w, C) -> 28x28: 3 transposed convs.

    Args:
        latent_dim: size of the noise vector.
        image_shape: shape of one image, (C, S, S) with S in 28, 32, 64.
        width: channels of the narrowest hidden layer (w above).

    Raises:
        ValueError: for an unsupported image shape.
    """

    def __init__(
        self,
        latent_dim: int = 100,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        width: int = 64,
    ):
        super().__init__()
        size = image_size(image_shape)
        self.latent_dim = latent_dim
        self.image_shape = tuple(image_shape)
        start = START_SIZES[size]
        channels = width * WIDEST[size]
        layers: list[nn.Module] = [
            LatentProjection(latent_dim, channels, start),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        ]
        while channels > width:
            layers += [
                StridedConvTranspose2d(channels, channels // 2, bias=False),
                nn.BatchNorm2d(channels // 2),
                nn.ReLU(inplace=True),
            ]
            channels //= 2
        layers += [
            StridedConvTranspose2d(channels, image_shape[0]),
            nn.Tanh(),
        ]
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.net(latent.view(len(latent), self.latent_dim, 1, 1))


class DCGANDiscriminator(nn.Module):
    """images (N x C x H x W) -> one real/fake logit per sample (N,); no sigmoid.

    Layers (w = width; LeakyReLU(0.2) after every conv but the last; BatchNorm2d after every conv
    but the first and the last, or spectral norm on every conv and no batch norm at all):

    - 64 px: Conv(C, w, k4, s2, p1) -> 32x32, Conv(w, 2w) -> 16x16, Conv(2w, 4w) -> 8x8,
      Conv(4w, 8w) -> 4x4, Conv(8w, 1, k4, s1, p0) -> 1x1.
    - 32 px: Conv(C, w) -> 16x16, Conv(w, 2w) -> 8x8, Conv(2w, 4w) -> 4x4, Conv(4w, 1, k4) -> 1x1.
    - 28 px: Conv(C, w) -> 14x14, Conv(w, 2w) -> 7x7, Conv(2w, 1, k7) -> 1x1.

    With `hidden` > 0 the last conv is replaced by Flatten, Linear(features, hidden),
    LeakyReLU(0.2), Linear(hidden, 1): a nonlinear read-out of the whole last map, as in
    InfoGAN's MNIST discriminator. A Linear rather than a 7x7 conv because it is the same map
    and about 3x faster on a CPU.

    Args:
        image_shape: shape of one image, (C, S, S) with S in 28, 32, 64.
        width: channels of the first conv (w above).
        spectral_norm: spectral norm on every conv and linear layer in place of batch norm.
        hidden: units of a fully connected hidden layer before the logit (0: none, as DCGAN).

    Raises:
        ValueError: for an unsupported image shape.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        width: int = 64,
        spectral_norm: bool = False,
        hidden: int = 0,
    ):
        super().__init__()
        if hidden < 0:
            raise ValueError(f"the discriminator's hidden layer needs >= 0 units, got {hidden}")
        size = image_size(image_shape)
        self.image_shape = tuple(image_shape)
        self.spectral_norm = spectral_norm
        batchnorm = not spectral_norm
        # No norm on the first conv: normalising the raw images would hide their statistics.
        layers: list[nn.Module] = [
            StridedConv2d(image_shape[0], width),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        channels, side = width, size // 2
        while side > START_SIZES[size]:
            # A bias right before batch norm would be cancelled by its mean subtraction.
            layers.append(StridedConv2d(channels, channels * 2, bias=not batchnorm))
            if batchnorm:
                # Per stacked batch when D judges real and fake in one pass (train.joint_d_batch).
                layers.append(PartwiseBatchNorm2d(channels * 2))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            channels, side = channels * 2, side // 2
        if hidden:
            layers += [FlattenKeepingFormat(), nn.Linear(channels * side * side, hidden),
                       nn.LeakyReLU(0.2, inplace=True), nn.Linear(hidden, 1)]
        else:
            # A valid conv as large as the last map reduces it to one logit.
            layers.append(nn.Conv2d(channels, 1, kernel_size=side))
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)
        if spectral_norm:
            # After the init: the parametrization divides the initialised weight by its norm.
            for module in self.net:
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    apply_spectral_norm(module)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # reshape, not view: the (N, 1, 1, 1) output may come back in channels_last strides.
        return self.net(images).reshape(-1)
