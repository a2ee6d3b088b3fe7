"""DCGAN nets: shapes, the documented layers, batch-norm arguments, spectral norm, init,
gradients, bf16 autocast, channels_last and unsupported sizes."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

from conftest import tiny_config
from gankit.config import ModelConfig
from gankit.errors import GankitError
from gankit.nets import build_discriminator, build_generator
from gankit.nets.dcgan import DCGANDiscriminator, DCGANGenerator, LatentProjection
from gankit.objectives import build_objective

SIZES = [28, 32, 64]
# The generator's layer list as its docstring states it: the side after each transposed conv.
DOCUMENTED_SIDES = {64: [4, 8, 16, 32, 64], 32: [4, 8, 16, 32], 28: [7, 14, 28]}


def latents(n: int, latent_dim: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, latent_dim, generator=generator)


def signed_images(n: int, channels: int, size: int, seed: int = 0) -> torch.Tensor:
    """Random images in [-1, 1]."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, size, size, generator=generator) * 2 - 1


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", SIZES)
def test_shapes_and_generator_range(size, channels):
    shape = (channels, size, size)
    generator = DCGANGenerator(latent_dim=16, image_shape=shape, width=8)
    discriminator = DCGANDiscriminator(image_shape=shape, width=8)
    images = generator(latents(4, 16))
    assert images.shape == (4, *shape)
    assert images.min() >= -1 and images.max() <= 1
    assert discriminator(images).shape == (4,)
    assert DCGANDiscriminator(image_shape=shape, width=8, spectral_norm=True)(images).shape == (4,)


@pytest.mark.parametrize("size", SIZES)
def test_generator_has_the_documented_strided_transposed_convs(size):
    generator = DCGANGenerator(latent_dim=16, image_shape=(3, size, size), width=8)
    convs = [m for m in generator.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert len(convs) == len(DOCUMENTED_SIDES[size])
    # The first projects from 1x1; every later one doubles the side.
    assert all(conv.stride == (2, 2) and conv.kernel_size == (4, 4) for conv in convs[1:])
    assert not any(isinstance(m, (nn.Upsample, nn.Linear)) for m in generator.modules())
    sides = []
    hooks = [c.register_forward_hook(lambda m, i, out: sides.append(out.shape[-1])) for c in convs]
    generator(latents(2, 16))
    for hook in hooks:
        hook.remove()
    assert sides == DOCUMENTED_SIDES[size]
    # Bias only on the last conv: the others feed batch norm.
    assert [conv.bias is not None for conv in convs] == [False] * (len(convs) - 1) + [True]


@pytest.mark.parametrize("size", SIZES)
def test_every_batchnorm_has_default_eps_and_momentum(size):
    # Catches BatchNorm2d(c, 0.8), which sets eps where momentum was meant.
    shape = (3, size, size)
    nets = [
        DCGANGenerator(image_shape=shape, width=8),
        DCGANDiscriminator(image_shape=shape, width=8),
    ]
    norms = [
        m for net in nets for m in net.modules() if isinstance(m, nn.modules.batchnorm._NormBase)
    ]
    assert norms
    for norm in norms:
        assert norm.eps == 1e-5 and norm.momentum == 0.1


def test_fully_connected_read_out_computes_the_documented_layers():
    torch.manual_seed(0)
    discriminator = DCGANDiscriminator(image_shape=(1, 28, 28), width=8, hidden=12).eval()
    *convs, flatten, first, activation, last = discriminator.net
    assert isinstance(flatten, nn.Flatten) and isinstance(activation, nn.LeakyReLU)
    assert (first.in_features, first.out_features) == (16 * 7 * 7, 12)
    assert (last.in_features, last.out_features) == (12, 1)
    images = signed_images(5, 1, 28)
    last_map = nn.Sequential(*convs)(images)
    assert last_map.shape == (5, 16, 7, 7)
    hidden = F.leaky_relu(last_map.flatten(1) @ first.weight.T + first.bias, 0.2)
    expected = hidden @ last.weight[0] + last.bias
    # DCGAN's N(0, 0.02) init makes the logits ~1e-4, so compare relative to their scale.
    scale = expected.abs().max()
    assert (discriminator(images) - expected).abs().max() < 1e-4 * scale
    # The read-out is nonlinear: unlike the plain DCGAN head, D(-map) is not -D(map) + 2 bias.
    flipped = nn.Sequential(flatten, first, activation, last)(-last_map).reshape(-1)
    assert (flipped - (2 * last.bias - expected)).abs().max() > 0.1 * scale
    # Channels_last input gives the same logits: Flatten reads the logical (C, H, W) order.
    channels_last = discriminator(images.to(memory_format=torch.channels_last))
    assert (channels_last - expected).abs().max() < 1e-4 * scale
    with pytest.raises(ValueError, match="-1"):
        DCGANDiscriminator(image_shape=(1, 28, 28), hidden=-1)


@pytest.mark.parametrize("hidden", [0, 12])
@pytest.mark.parametrize("size", SIZES)
def test_spectral_norm_replaces_batchnorm_on_every_conv(size, hidden):
    discriminator = DCGANDiscriminator(image_shape=(3, size, size), width=8, spectral_norm=True,
                                       hidden=hidden)
    assert not any(isinstance(m, nn.modules.batchnorm._NormBase) for m in discriminator.modules())
    layers = [m for m in discriminator.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert layers
    assert all(parametrize.is_parametrized(layer, "weight") for layer in layers)
    assert sum(isinstance(layer, nn.Linear) for layer in layers) == (2 if hidden else 0)
    plain = DCGANDiscriminator(image_shape=(3, size, size), width=8, hidden=hidden)
    assert any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert not any(parametrize.is_parametrized(m) for m in plain.modules())


def test_init_follows_dcgan():
    torch.manual_seed(0)
    shape = (3, 64, 64)
    nets = [DCGANGenerator(image_shape=shape), DCGANDiscriminator(image_shape=shape)]
    convs = [
        m for net in nets for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
    ]
    assert len(convs) == 10
    for conv in convs:
        weight = conv.weight.detach()
        assert abs(weight.std().item() - 0.02) < 0.2 * 0.02
        assert abs(weight.mean().item()) < 0.002
    norms = [m for net in nets for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    weights = torch.cat([norm.weight.detach() for norm in norms])
    assert abs(weights.mean().item() - 1) < 0.01 and abs(weights.std().item() - 0.02) < 0.004
    assert all(torch.all(norm.bias == 0) for norm in norms)
    read_out = DCGANDiscriminator(image_shape=shape, hidden=64)
    first = next(m for m in read_out.modules() if isinstance(m, nn.Linear))
    assert abs(first.weight.std().item() - 0.02) < 0.1 * 0.02 and torch.all(first.bias == 0)


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_gradients_reach_every_generator_parameter(spectral_norm):
    torch.manual_seed(0)
    shape = (3, 32, 32)
    generator = DCGANGenerator(latent_dim=16, image_shape=shape, width=8)
    discriminator = DCGANDiscriminator(image_shape=shape, width=8, spectral_norm=spectral_norm)
    discriminator(generator(latents(4, 16))).mean().backward()
    for name, parameter in generator.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("size", SIZES)
def test_bf16_autocast_gives_finite_outputs(size):
    shape = (3, size, size)
    generator = DCGANGenerator(latent_dim=16, image_shape=shape, width=8)
    discriminator = DCGANDiscriminator(image_shape=shape, width=8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        images = generator(latents(4, 16))
        logits = discriminator(images)
    assert images.shape == (4, *shape) and logits.shape == (4,)
    assert torch.isfinite(images).all() and torch.isfinite(logits).all()


@pytest.mark.parametrize("kernel", [4, 7])
@pytest.mark.parametrize("channels_last", [False, True])
def test_latent_projection_is_the_transposed_conv_it_replaces(kernel, channels_last):
    # Same weight: the same output and the same gradients for the noise and the weight.
    reference = nn.ConvTranspose2d(16, 12, kernel_size=kernel, bias=False)
    projection = LatentProjection(16, 12, kernel)
    projection.load_state_dict(reference.state_dict())
    if channels_last:
        reference.to(memory_format=torch.channels_last)
        projection.to(memory_format=torch.channels_last)
    noise = latents(5, 16).view(5, 16, 1, 1)
    outputs, grads = [], []
    for layer in (reference, projection):
        z = noise.clone().requires_grad_(True)
        out = layer(z)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        outputs.append(out)
        grads.append((z.grad, layer.weight.grad))
    assert outputs[1].shape == (5, 12, kernel, kernel)
    assert torch.allclose(outputs[1], outputs[0], atol=1e-5)
    assert outputs[1].is_contiguous(memory_format=torch.channels_last) == channels_last
    for ours, theirs in zip(grads[1], grads[0], strict=True):
        assert torch.allclose(ours, theirs, atol=1e-5)


@pytest.mark.parametrize("size", SIZES)
def test_channels_last_matches_contiguous(size):
    shape = (3, size, size)
    generator = DCGANGenerator(latent_dim=16, image_shape=shape, width=8).eval()
    discriminator = DCGANDiscriminator(image_shape=shape, width=8).eval()
    images = signed_images(4, 3, size)
    expected = discriminator(images)
    actual = discriminator(images.to(memory_format=torch.channels_last))
    assert torch.allclose(actual, expected, atol=1e-5)
    # Nets converted to channels_last, as the trainer may do, give the same outputs too.
    noise = latents(4, 16)
    expected_images = generator(noise)
    generator.to(memory_format=torch.channels_last)
    discriminator.to(memory_format=torch.channels_last)
    assert torch.allclose(generator(noise), expected_images, atol=1e-5)
    assert torch.allclose(
        discriminator(images.to(memory_format=torch.channels_last)), expected, atol=1e-5
    )


def test_unsupported_sizes_raise_naming_the_size():
    with pytest.raises(ValueError, match="30"):
        DCGANGenerator(image_shape=(1, 30, 30))
    with pytest.raises(ValueError, match="30"):
        DCGANDiscriminator(image_shape=(3, 30, 30))
    with pytest.raises(ValueError, match="square"):
        DCGANGenerator(image_shape=(1, 28, 32))


def test_g_width_widens_the_generator_only():
    def channels(net, kind):
        return [m.out_channels for m in net.modules() if isinstance(m, kind)]

    model = ModelConfig(arch="dcgan", width=8, g_width=24, latent_dim=16)
    assert channels(build_generator(model, (3, 28, 28)), nn.ConvTranspose2d) == [48, 24, 3]
    assert channels(build_discriminator(model, (3, 28, 28)), nn.Conv2d) == [8, 16, 1]
    # 0 (the default) means the same width for both.
    same = ModelConfig(arch="dcgan", width=8, latent_dim=16)
    assert channels(build_generator(same, (3, 28, 28)), nn.ConvTranspose2d) == [16, 8, 3]


def test_a_run_config_with_an_image_size_dcgan_cannot_take_is_one_gankit_error():
    # mnist padded by 3 px is 34 px; the net's ValueError used to escape `gankit train`.
    config = tiny_config("mnist-dcgan", **{"data.pad": 3})
    with pytest.raises(GankitError, match=r"model.arch='dcgan' on mnist samples of shape "
                                          r"\(1, 34, 34\): DCGAN supports 28, 32 and 64 px"):
        build_objective(config, (1, 34, 34))
