"""nn.Modules only: the players of the game, with no training logic."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn

from gankit.config import ModelConfig
from gankit.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gankit.nets.gaussian import GaussianGenerator
from gankit.nets.mlp import MLPDiscriminator, MLPGenerator
from gankit.nets.packed import PackedDiscriminator
from gankit.nets.resnet import ResNetDiscriminator, ResNetGenerator


@contextlib.contextmanager
def eval_mode(net: nn.Module) -> Iterator[nn.Module]:
    """`net` in eval mode within the block (dropout and noise layers off, batch norm on its
    running statistics), then back in the mode it was in."""
    was_training = net.training
    net.eval()
    try:
        yield net
    finally:
        net.train(was_training)


def build_generator(model: ModelConfig, sample_shape: tuple[int, ...]) -> nn.Module:
    """The generator a model config names, producing samples of `sample_shape`."""
    if model.arch == "dcgan":
        return DCGANGenerator(model.latent_dim, sample_shape, model.g_width or model.width)
    if model.arch == "resnet":
        return ResNetGenerator(model.latent_dim, sample_shape, model.width)
    if model.arch == "gaussian":
        return GaussianGenerator(model.latent_dim, sample_shape, *model.g_start)
    return MLPGenerator(model.latent_dim, sample_shape, model.g_hidden, model.g_activation,
                        model.g_output, model.g_batchnorm)


def build_discriminator(model: ModelConfig, sample_shape: tuple[int, ...],
                        pack: int = 1) -> nn.Module:
    """The discriminator a model config names, taking samples of `sample_shape`.

    model.arch=gaussian has an MLP discriminator (the Gaussian is a generator only).

    With pack > 1 it judges `pack` samples at once (PacGAN): the inner net is built for `pack`
    times the channels and wrapped in `PackedDiscriminator`.
    """
    if pack > 1:
        packed_shape = (pack * sample_shape[0], *sample_shape[1:])
        return PackedDiscriminator(build_discriminator(model, packed_shape), pack)
    if model.arch == "dcgan":
        return DCGANDiscriminator(sample_shape, model.width, model.d_spectral_norm,
                                  model.d_fc_width)
    if model.arch == "resnet":
        return ResNetDiscriminator(sample_shape, model.width)  # always spectrally normed
    return MLPDiscriminator(sample_shape, model.d_hidden, model.d_activation, model.d_dropout)


__all__ = ["DCGANDiscriminator", "DCGANGenerator", "GaussianGenerator", "MLPDiscriminator",
           "MLPGenerator", "PackedDiscriminator", "ResNetDiscriminator", "ResNetGenerator",
           "build_discriminator", "build_generator"]
