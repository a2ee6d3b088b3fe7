"""ResNet (SNGAN) nets: shapes, the documented blocks and resolutions, spectral norm and batch
norm, sum pooling, conditional heads, unsupported sizes, data.pad and a tiny padded run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

import gankit
from gankit.config import DataConfig, load_config
from gankit.data import build_dataset
from gankit.data.images import crop_padding, pad_images
from gankit.errors import GankitError
from gankit.nets import build_discriminator, build_generator
from gankit.nets.conditional import (
    AuxiliaryClassifierDiscriminator,
    ProjectionDiscriminator,
    split_head,
)
from gankit.nets.resnet import (
    DiscriminatorBlock,
    GeneratorBlock,
    OptimizedBlock,
    PooledConv2d,
    ResNetDiscriminator,
    ResNetGenerator,
    SumPool,
    pooled_kernel,
)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
WIDTH = 8


def latents(n: int, latent_dim: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed))


def signed_images(n: int, channels: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Random images in [-1, 1]."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, size, size, generator=generator) * 2 - 1


def sides_after(net: nn.Module, block_type: type, inputs: torch.Tensor) -> list[int]:
    """The side of each `block_type` block's output map, in forward order."""
    sides: list[int] = []
    blocks = [m for m in net.modules() if isinstance(m, block_type)]
    hooks = [b.register_forward_hook(lambda m, i, out: sides.append(out.shape[-1]))
             for b in blocks]
    net(inputs)
    for hook in hooks:
        hook.remove()
    return sides


@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_and_generator_range(channels):
    shape = (channels, 32, 32)
    generator = ResNetGenerator(latent_dim=16, image_shape=shape, width=WIDTH)
    discriminator = ResNetDiscriminator(image_shape=shape, width=WIDTH)
    images = generator(latents(4, 16))
    assert images.shape == (4, *shape)
    assert images.min() >= -1 and images.max() <= 1
    assert discriminator(images).shape == (4,)


def test_the_documented_resolutions():
    generator = ResNetGenerator(latent_dim=16, image_shape=(3, 32, 32), width=WIDTH)
    # Linear -> 4x4, then three up-blocks.
    assert sides_after(generator, GeneratorBlock, latents(2, 16)) == [8, 16, 32]
    discriminator = ResNetDiscriminator(image_shape=(3, 32, 32), width=WIDTH)
    blocks = (OptimizedBlock, DiscriminatorBlock)
    assert sides_after(discriminator, blocks, signed_images(2, 3)) == [16, 8, 8, 8]
    assert isinstance(generator.project, nn.Linear)
    assert generator.project.out_features == 4 * 4 * WIDTH


def test_up_and_down_blocks_change_resolution_and_channels():
    features = torch.randn(2, 4, 5, 5)
    assert GeneratorBlock(4, 6)(features).shape == (2, 6, 10, 10)
    assert OptimizedBlock(3, 6)(torch.randn(2, 3, 8, 8)).shape == (2, 6, 4, 4)
    down = DiscriminatorBlock(4, 6, downsample=True)
    assert down(torch.randn(2, 4, 8, 8)).shape == (2, 6, 4, 4)
    assert isinstance(down.residual[-1], PooledConv2d)  # its last conv and the avgpool
    same = DiscriminatorBlock(4, 4)
    assert same(torch.randn(2, 4, 8, 8)).shape == (2, 4, 8, 8)
    # Same shape in and out: the shortcut is the identity, with no weights.
    assert len(same.shortcut) == 0
    widening = DiscriminatorBlock(4, 6)
    assert widening(torch.randn(2, 4, 8, 8)).shape == (2, 6, 8, 8)
    assert isinstance(widening.shortcut[0], nn.Conv2d)


def test_generator_block_follows_sngan():
    block = GeneratorBlock(4, 6)
    kinds = [type(m) for m in block.residual]
    assert kinds == [nn.BatchNorm2d, nn.ReLU, nn.Upsample, nn.Conv2d, nn.BatchNorm2d, nn.ReLU,
                     nn.Conv2d]
    assert block.residual[2].mode == "nearest" and block.residual[2].scale_factor == 2
    assert [m.kernel_size for m in block.residual if isinstance(m, nn.Conv2d)] == [(3, 3)] * 2
    assert block.shortcut[0].kernel_size == (1, 1)
    # Upsample-then-1x1-conv (SNGAN's order) equals the cheaper 1x1-conv-then-upsample used here.
    features = torch.randn(2, 4, 5, 5)
    upsample = nn.Upsample(scale_factor=2, mode="nearest")
    assert torch.allclose(block.shortcut(features), block.shortcut[0](upsample(features)),
                          atol=1e-6)


def test_pooled_conv_equals_conv_then_avgpool_with_all_gradients():
    torch.manual_seed(0)
    conv = PooledConv2d(3, 5).double()
    for side in (8, 7):  # an odd side: the pool drops the last row and column, and so does it
        x = torch.randn(2, 3, side, side, dtype=torch.float64, requires_grad=True)
        pooled = conv(x)
        grads = torch.autograd.grad(pooled.square().sum(), (x, conv.weight, conv.bias))
        reference = nn.functional.avg_pool2d(nn.functional.conv2d(x, conv.weight, conv.bias,
                                                                  padding=1), 2)
        expected = torch.autograd.grad(reference.square().sum(), (x, conv.weight, conv.bias))
        assert pooled.shape == reference.shape == (2, 5, side // 2, side // 2)
        torch.testing.assert_close(pooled, reference, rtol=0, atol=1e-12)
        for got, want in zip(grads, expected, strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    # pool_in_kernel=False is the reference computation itself.
    conv.pool_in_kernel = False
    torch.testing.assert_close(conv(x), reference, rtol=0, atol=0)
    # R1 and the gradient penalty differentiate D's input gradient once more.
    conv.pool_in_kernel = True
    x = torch.randn(1, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(conv, (x,))
    assert torch.autograd.gradgradcheck(conv, (x,))


def test_pooled_kernel_is_the_3x3_kernel_averaged_over_the_pools_offsets():
    weight = torch.arange(9.0).view(1, 1, 3, 3)  # rows 0 1 2 / 3 4 5 / 6 7 8
    kernel = pooled_kernel(weight)[0, 0]
    assert kernel.shape == (4, 4)
    # Corners see one offset, edges two, the middle four: e.g. (0,0) = w00/4, (1,1) =
    # (w11 + w10 + w01 + w00)/4 = (4 + 3 + 1 + 0)/4.
    assert kernel[0, 0] == 0 and kernel[3, 3] == 8 / 4 and kernel[0, 3] == 2 / 4
    assert kernel[1, 1] == (4 + 3 + 1 + 0) / 4 and kernel[0, 1] == (1 + 0) / 4
    assert kernel.sum() == weight.sum()  # each tap lands in four places, each time /4


def test_discriminator_keeps_its_3x3_weights_and_checkpoint_keys():
    discriminator = ResNetDiscriminator(image_shape=(1, 32, 32), width=WIDTH)
    shapes = {key: tuple(value.shape) for key, value in discriminator.state_dict().items()}
    # The convs before the pools are still 3x3 convs under spectral norm, at their old keys.
    for key in ("net.0.residual.2", "net.1.residual.3"):
        assert shapes[f"{key}.parametrizations.weight.original"] == (WIDTH, WIDTH, 3, 3)
        assert shapes[f"{key}.bias"] == (WIDTH,)
    assert not any(".residual.4." in key for key in shapes)  # the pool had no weights
    # With spectral norm, the pooled kernel path equals conv then avgpool (eval: u held fixed).
    discriminator.eval()
    images = torch.randn(3, 1, 32, 32)
    pooled = discriminator(images)
    for module in discriminator.modules():
        if isinstance(module, PooledConv2d):
            module.pool_in_kernel = False
    torch.testing.assert_close(pooled, discriminator(images), rtol=1e-5, atol=1e-5)


def test_generator_batchnorm_has_default_eps_and_momentum():
    # Catches BatchNorm2d(c, 0.8), which sets eps where momentum was meant.
    generator = ResNetGenerator(latent_dim=16, image_shape=(3, 32, 32), width=WIDTH)
    norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._NormBase)]
    assert len(norms) == 7  # two per block, one before the output conv
    for norm in norms:
        assert norm.eps == 1e-5 and norm.momentum == 0.1
    assert isinstance(generator.net[-1], nn.Tanh)


def test_discriminator_has_spectral_norm_everywhere_and_no_batchnorm():
    discriminator = ResNetDiscriminator(image_shape=(3, 32, 32), width=WIDTH)
    assert not any(isinstance(m, nn.modules.batchnorm._NormBase)
                   for m in discriminator.modules())
    layers = [m for m in discriminator.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    # 2 + 1 shortcut in the first block, 2 + 1 in the down block, 2 + 2, and the Linear.
    assert len(layers) == 11
    assert all(parametrize.is_parametrized(layer, "weight") for layer in layers)
    assert isinstance(discriminator.net[-1], nn.Linear)
    assert discriminator.net[-1].out_features == 1


def test_sum_pooling_sums_over_positions():
    features = torch.arange(2 * 2 * 3 * 3, dtype=torch.float32).view(2, 2, 3, 3)
    # Channel 0 of sample 0 holds 0..8 (sum 36), channel 1 holds 9..17 (sum 117).
    assert SumPool()(features).tolist() == [[36.0, 117.0], [198.0, 279.0]]
    # In the D: the body's output is the ReLU'd last map summed, not averaged.
    # eval(): in training mode each forward runs one more power iteration of spectral norm.
    discriminator = ResNetDiscriminator(image_shape=(1, 32, 32), width=WIDTH).eval()
    images = signed_images(3, 1)
    last_map = torch.relu(discriminator.net[:4](images))
    body, _ = split_head(discriminator)
    assert torch.allclose(body(images), last_map.sum(dim=(2, 3)), atol=1e-5)
    assert not torch.allclose(body(images), last_map.mean(dim=(2, 3)), atol=1e-5)


def test_conditional_discriminators_wrap_the_resnet_d():
    images, labels = signed_images(4, 1), torch.tensor([0, 3, 9, 3])
    projection = ProjectionDiscriminator(ResNetDiscriminator((1, 32, 32), WIDTH), 10)
    assert projection.embed.weight.shape == (10, WIDTH)  # phi(x) is the pooled vector
    # The ResNet D is spectrally normed throughout, so its projection's embedding is too (the
    # config could not ask for it: model.d_spectral_norm is DCGAN's switch).
    assert parametrize.is_parametrized(projection.embed, "weight")
    assert projection(images, labels).shape == (4,)
    acgan = AuxiliaryClassifierDiscriminator(ResNetDiscriminator((1, 32, 32), WIDTH), 10)
    logits, class_logits = acgan(images)
    assert logits.shape == (4,) and class_logits.shape == (4, 10)
    assert parametrize.is_parametrized(acgan.classifier, "weight")


def test_gradients_reach_every_generator_parameter():
    torch.manual_seed(0)
    generator = ResNetGenerator(latent_dim=16, image_shape=(1, 32, 32), width=WIDTH)
    discriminator = ResNetDiscriminator(image_shape=(1, 32, 32), width=WIDTH)
    discriminator(generator(latents(4, 16))).mean().backward()
    for name, parameter in generator.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_only_32_px_naming_the_shape():
    for net in (lambda: ResNetGenerator(image_shape=(1, 28, 28)),
                lambda: ResNetDiscriminator(image_shape=(1, 28, 28))):
        with pytest.raises(ValueError, match=r"\(1, 28, 28\)") as excinfo:
            net()
        assert isinstance(excinfo.value, GankitError)  # the CLI prints it as one line
        assert "data.pad=2" in str(excinfo.value)


def test_model_arch_resnet_builds_both_players():
    model = load_config("digits-mlp", {"model.arch": "resnet", "model.width": WIDTH}).model
    assert isinstance(build_generator(model, (1, 32, 32)), ResNetGenerator)
    discriminator = build_discriminator(model, (1, 32, 32))
    assert isinstance(discriminator, ResNetDiscriminator)
    assert discriminator.net[-1].in_features == WIDTH
    with pytest.raises(GankitError, match=r"\(1, 8, 8\)"):
        build_generator(model, (1, 8, 8))


# ---------------------------------------------------------------- data.pad


def test_pad_and_crop_round_trip():
    images = torch.randint(1, 256, (2, 1, 4, 4), dtype=torch.uint8)
    padded = pad_images(images, 2)
    assert padded.shape == (2, 1, 8, 8) and padded.dtype == torch.uint8
    assert padded.sum() == images.sum()  # the border is background, 0
    assert torch.equal(crop_padding(padded, 2), images)
    points = torch.randn(5, 2)
    assert crop_padding(points, 0) is points  # pad 0 leaves any sample alone


def test_data_pad_pads_the_images_held_in_memory():
    plain = build_dataset(DataConfig(name="digits"))
    padded = build_dataset(DataConfig(name="digits", pad=2))
    assert padded.shape == (1, 12, 12) and padded.images.dtype == torch.uint8
    assert torch.equal(crop_padding(padded.images, 2), plain.images)
    border = padded.images.clone()
    border[..., 2:-2, 2:-2] = 0
    assert border.sum() == 0
    assert (padded.sample(16)[..., 0, :] == -1).all()  # background is -1 after to_float


def test_data_pad_is_validated_and_needs_images():
    with pytest.raises(GankitError, match="data.pad"):
        load_config("digits-mlp", ["data.pad=-1"])
    with pytest.raises(GankitError, match="data.pad"):
        build_dataset(DataConfig(name="ring", pad=2))


@pytest.mark.skipif(not (SHARED_DATA / "FashionMNIST" / "raw").is_dir(),
                    reason=f"real Fashion-MNIST not present under {SHARED_DATA}")
def test_tiny_padded_fashion_run_samples_32_px_and_evaluates_at_28(tmp_path):
    from gankit.eval.evaluate import evaluate

    values = {
        "data.name": "fashion-mnist", "data.pad": 2, "model.arch": "resnet", "model.width": 4,
        "model.latent_dim": 8, "loss.name": "hinge", "train.steps": 3, "train.batch_size": 8,
        "train.betas": [0.0, 0.9], "train.ema": 0.9, "log.every": 3, "log.sample_every": 3,
        "log.checkpoint_every": 3, "log.n_samples": 4, "log.progress": False,
        "log.tensorboard": False,
        # In-training metrics go through Trainer.evaluate, which must crop too.
        "log.eval_every": 3, "log.eval_metrics": ["cs"], "log.eval_n": 8,
    }
    run = gankit.train("digits-mlp", out=tmp_path / "run", data_root=SHARED_DATA,
                       **values)
    samples = gankit.load(run).sample(4, seed=0)
    assert samples.shape == (4, 1, 32, 32)
    assert crop_padding(samples, 2).shape == (4, 1, 28, 28)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("classifier_score/fashion-cnn/n8" in record for record in records)
    # A run folder as the source: its 32-px samples are cropped for the 28-px extractor.
    results = evaluate(run, metrics=["cs"], features="fashion-mnist", n=8)
    assert list(results) == ["classifier_score/fashion-cnn/n8"]
