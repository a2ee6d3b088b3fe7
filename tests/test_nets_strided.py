"""DCGAN's strided layers as matrix products (gankit.nets.strided): the same outputs and
gradients as torch's convs (first and second order), where each path is taken, bf16 autocast,
memory formats, and the flatten that keeps its gradient's memory format."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.autograd import gradcheck, gradgradcheck

from gankit.nets import strided
from gankit.nets.dcgan import DCGANDiscriminator, DCGANGenerator, FlattenKeepingFormat
from gankit.nets.strided import StridedConv2d, StridedConvTranspose2d

# (in, out) channels whose product reaches strided.MIN_CHANNEL_PRODUCT, so small maps take the
# product path.
WIDE = (96, 96)


@pytest.fixture(autouse=True)
def products_anywhere(monkeypatch):
    """The product path's tests take it on any CPU and in any dtype (fp64 checks it closely):
    the domain as on one with AMX, in bf16."""
    monkeypatch.setattr(strided, "CPU_HAS_AMX", True)
    monkeypatch.setattr(strided, "PRODUCT_DTYPES",
                        frozenset({torch.bfloat16, torch.float32, torch.float64}))


def randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def pair(transposed: bool, bias: bool, channels=WIDE):
    """A strided layer and torch's layer with the same weights, in fp64."""
    ours = (StridedConvTranspose2d if transposed else StridedConv2d)(*channels, bias=bias)
    kind = nn.ConvTranspose2d if transposed else nn.Conv2d
    theirs = kind(*channels, 4, stride=2, padding=1, bias=bias)
    theirs.load_state_dict(ours.state_dict())  # same keys and shapes
    return ours.double(), theirs.double()


def counting(monkeypatch, name: str) -> list[int]:
    """Count the calls of strided.<name>.apply (the product path)."""
    calls = []
    function = getattr(strided, name)
    original = function.apply
    monkeypatch.setattr(function, "apply", lambda *a: calls.append(1) or original(*a))
    return calls


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize(("transposed", "side"), [(False, (8, 8)), (False, (4, 6)),
                                                  (True, (4, 4)), (True, (7, 7)), (True, (3, 5))])
def test_products_equal_torch_convs_in_output_and_gradients(monkeypatch, transposed, side, bias,
                                                             channels_last):
    calls = counting(monkeypatch, "_ConvTransposeProduct" if transposed else "_ConvProduct")
    ours, theirs = pair(transposed, bias)
    x = randn(3, WIDE[0], *side)
    if channels_last:
        ours.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    results = []
    for layer in (ours, theirs):
        xi = x.clone().requires_grad_(True)
        out = layer(xi)
        (out * randn(*out.shape, seed=1)).sum().backward()
        results.append((out, xi.grad, layer.weight.grad, layer.bias.grad if bias else None))
    assert calls == [1]  # ours took the product path
    for mine, reference in zip(*results, strict=True):
        if reference is not None:
            assert mine.shape == reference.shape
            assert torch.allclose(mine, reference, rtol=1e-9, atol=1e-9)
    out = results[0][0]
    assert out.is_contiguous(memory_format=torch.channels_last if channels_last else
                             torch.contiguous_format)


@pytest.mark.parametrize("plan", [strided.ALL_PRODUCTS, strided.WEIGHT_GRADIENT_ONLY])
@pytest.mark.parametrize("function", [strided._ConvProduct, strided._ConvTransposeProduct])
def test_products_pass_first_and_second_order_gradient_checks(function, plan):
    # Second order: R1 and the gradient penalty differentiate D's input gradient.
    x = randn(2, 3, 4, 6).requires_grad_(True)
    shape = (5, 3, 4, 4) if function is strided._ConvProduct else (3, 5, 4, 4)
    # With the bias (5 outputs either way), which torch's kernel adds in its own pass.
    inputs = (x, randn(*shape, seed=1).requires_grad_(True), randn(5, seed=2).requires_grad_(True))
    assert gradcheck(lambda *inputs: function.apply(*inputs, plan), inputs)
    assert gradgradcheck(lambda *inputs: function.apply(*inputs, plan), inputs)


@pytest.mark.parametrize("thin", [1, 3])  # a fold, a sub-pixel conv
@pytest.mark.parametrize(("function", "plan"), [
    (strided._ConvProduct, strided.THIN_CONV),
    (strided._ConvTransposeProduct, strided.THIN_CONV_TRANSPOSE)])
def test_thin_plans_pass_first_and_second_order_gradient_checks(function, plan, thin):
    conv = function is strided._ConvProduct
    x = randn(*((2, thin, 4, 6) if conv else (2, 5, 2, 3))).requires_grad_(True)
    weight = randn(5, thin, 4, 4, seed=1).requires_grad_(True)  # Conv(thin -> 5), ConvT(5 -> thin)
    inputs = (x, weight, randn(5 if conv else thin, seed=2).requires_grad_(True))
    assert gradcheck(lambda *inputs: function.apply(*inputs, plan), inputs)
    assert gradgradcheck(lambda *inputs: function.apply(*inputs, plan), inputs)


def test_r1_through_a_product_layer_matches_torch(monkeypatch):
    calls = counting(monkeypatch, "_ConvProduct")
    ours, theirs = pair(transposed=False, bias=True)
    penalties = []
    for layer in (ours, theirs):
        x = randn(2, WIDE[0], 8, 8).requires_grad_(True)
        (grad,) = torch.autograd.grad(layer(x).square().sum(), x, create_graph=True)
        grad.square().sum().backward()
        penalties.append(layer.weight.grad)
    assert calls == [1]
    assert torch.allclose(penalties[0], penalties[1], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(("amx", "plan"), [(True, strided.ALL_PRODUCTS),
                                           (False, strided.WEIGHT_GRADIENT_ONLY)])
def test_path_choice_follows_the_measured_domain(monkeypatch, amx, plan):
    monkeypatch.setattr(strided, "CPU_HAS_AMX", amx)
    cpu = torch.empty(0)
    # (x, small side, small channels, large channels, transposed)
    assert strided.plan_for(cpu, (4, 4), 512, 256, False) == plan  # Conv(256 -> 512) to 4x4
    assert strided.plan_for(cpu, (7, 7), 192, 96, True) == plan  # ConvT(192 -> 96) from 7x7
    assert strided.plan_for(cpu, (16, 16), 128, 64, False) is None  # a 16x16 map: oneDNN's
    # Conv(32 -> 64) onto 7x7: the weight gradient alone pays from fewer channels than all three.
    assert strided.plan_for(cpu, (7, 7), 64, 32, False) == (None if amx else plan)
    assert strided.plan_for(cpu, (7, 7), 32, 16, True) is None  # few channels: oneDNN's
    # Up to 8 channels on the large map, at any size: the scatter direction is a fold (one
    # channel) or a sub-pixel conv; from 9 channels, oneDNN's.
    assert strided.plan_for(cpu, (14, 14), 96, 1, True) == strided.THIN_CONV_TRANSPOSE
    assert strided.plan_for(cpu, (32, 32), 32, 1, False) == strided.THIN_CONV
    assert strided.plan_for(cpu, (32, 32), 64, 3, True) == strided.THIN_CONV_TRANSPOSE
    assert strided.plan_for(cpu, (32, 32), 64, 8, False) == strided.THIN_CONV
    assert strided.plan_for(cpu, (16, 16), 64, 9, True) is None
    assert strided.plan_for(torch.empty(0, device="meta"), (14, 14), 96, 1, True) is None


@pytest.mark.parametrize("amx", [True, False])
def test_products_only_in_bf16_and_the_thin_scatter_in_any_dtype(monkeypatch, amx):
    # oneDNN's fp32 weight gradient beat the products (module docstring).
    monkeypatch.setattr(strided, "CPU_HAS_AMX", amx)
    monkeypatch.setattr(strided, "PRODUCT_DTYPES", frozenset({torch.bfloat16}))
    plan = strided.ALL_PRODUCTS if amx else strided.WEIGHT_GRADIENT_ONLY
    fp32 = torch.empty(0)
    for x in (fp32, fp32.double()):
        assert strided.plan_for(x, (7, 7), 192, 96, True) is None
        assert strided.plan_for(x, (14, 14), 96, 1, True) == strided.THIN_CONV_TRANSPOSE
        assert strided.plan_for(x, (32, 32), 64, 3, True) == strided.THIN_CONV_TRANSPOSE
    assert strided.plan_for(fp32.bfloat16(), (7, 7), 192, 96, True) == plan
    with torch.autocast("cpu", dtype=torch.bfloat16):  # an fp32 input that autocast casts
        assert strided.plan_for(fp32, (7, 7), 192, 96, True) == plan
    calls = counting(monkeypatch, "_ConvTransposeProduct")
    layer, x = StridedConvTranspose2d(*WIDE), randn(2, WIDE[0], 4, 4, dtype=torch.float32)
    layer(x)
    assert calls == []  # fp32: torch's layer
    with torch.autocast("cpu", dtype=torch.bfloat16):
        layer(x)
    assert calls == [1]


def paths_taken(monkeypatch, names, transposed, side, channels=WIDE) -> list[str]:
    """Run our layer and torch's (channels_last, with bias) forward and backward on one input,
    check that outputs and gradients agree, and return which of strided's `names` ran."""
    used = []
    for name in names:
        original = getattr(strided, name)
        monkeypatch.setattr(strided, name,
                            lambda *a, name=name, f=original: used.append(name) or f(*a))
    ours, theirs = pair(transposed, bias=True, channels=channels)
    ours.to(memory_format=torch.channels_last)
    x = randn(3, channels[0], *side).contiguous(memory_format=torch.channels_last)
    results = []
    for layer in (ours, theirs):
        xi = x.clone().requires_grad_(True)
        out = layer(xi)
        (out * randn(*out.shape, seed=1)).sum().backward()
        results.append((out, xi.grad, layer.weight.grad, layer.bias.grad))
    for mine, reference in zip(*results, strict=True):
        assert torch.allclose(mine, reference, rtol=1e-9, atol=1e-9)
    return used


@pytest.mark.parametrize(("transposed", "side"), [(False, (8, 8)), (True, (4, 4))])
def test_without_amx_only_the_weight_gradient_is_a_product(monkeypatch, transposed, side):
    # oneDNN's AVX-512 kernels run the forward and the input gradient at the matmul's speed.
    monkeypatch.setattr(strided, "CPU_HAS_AMX", False)
    names = ("conv_product", "conv_transpose_product", "_weight_gradient")
    assert paths_taken(monkeypatch, names, transposed, side) == ["_weight_gradient"]


@pytest.mark.parametrize("bias", [False, True])
def test_conv_transpose_subpixel_equals_torch_conv_transpose(bias):
    for channels, outputs, side in ((5, 2, (3, 4)), (4, 3, (6, 6)), (6, 8, (1, 5))):
        x, weight = randn(2, channels, *side), randn(channels, outputs, 4, 4, seed=1)
        b = randn(outputs, seed=2) if bias else None
        reference = torch.nn.functional.conv_transpose2d(x, weight, b, stride=2, padding=1)
        for maps in (x, x.contiguous(memory_format=torch.channels_last)):
            out = strided.conv_transpose_subpixel(maps, weight, b)
            assert out.dtype == torch.float64 and out.shape == reference.shape
            assert out.stride(1) == 1  # channels_last strides (of the cropped map)
            assert torch.allclose(out, reference, rtol=1e-10, atol=1e-10)


def test_conv_transpose_fold_equals_torch_conv_transpose():
    for channels, outputs, side in ((5, 1, (3, 4)), (4, 2, (6, 6)), (96, 1, (14, 14))):
        x, weight = randn(2, channels, *side), randn(channels, outputs, 4, 4, seed=1)
        reference = torch.nn.functional.conv_transpose2d(x, weight, stride=2, padding=1)
        out = strided.conv_transpose_fold(x, weight)
        assert out.dtype == torch.float64 and out.shape == reference.shape
        assert torch.allclose(out, reference, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("transposed", [False, True])
def test_one_channel_layers_scatter_by_a_fold_and_equal_torch(monkeypatch, transposed):
    # G's ConvT(96 -> 1) onto the image and D's Conv(1 -> 32) from it, on any CPU; the fold is
    # the scatter only (the ConvT's forward, the Conv's input gradient).
    monkeypatch.setattr(strided, "CPU_HAS_AMX", False)
    names = ("conv_transpose_fold", "conv_transpose_product", "conv_product", "_weight_gradient")
    channels, side = ((96, 1), (7, 7)) if transposed else ((1, 32), (14, 14))
    assert paths_taken(monkeypatch, names, transposed, side, channels) == ["conv_transpose_fold"]


@pytest.mark.parametrize("transposed", [False, True])
def test_three_channel_layers_scatter_by_a_subpixel_conv_and_equal_torch(monkeypatch, transposed):
    # The 64-px DCGAN's G's ConvT(64 -> 3) onto RGB images and D's Conv(3 -> 64) from them.
    names = ("conv_transpose_subpixel", "conv_transpose_fold", "conv_transpose_product",
             "conv_product", "_weight_gradient")
    channels, side = ((64, 3), (8, 8)) if transposed else ((3, 64), (16, 16))
    assert paths_taken(monkeypatch, names, transposed, side, channels) == [
        "conv_transpose_subpixel"]


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_a_one_channel_conv_returns_the_memory_format_of_torchs(memory_format):
    # Conv(1 -> 32)'s weight and a one-channel image pass is_contiguous in both formats.
    ours, theirs = pair(False, bias=True, channels=(1, 32))
    ours.to(memory_format=memory_format)
    theirs.to(memory_format=memory_format)
    x = randn(2, 1, 14, 14).contiguous(memory_format=memory_format)
    out, reference = ours(x), theirs(x)
    assert out.stride() == reference.stride()
    assert torch.allclose(out, reference, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("transposed", [False, True])
def test_large_maps_and_odd_sides_keep_torch_kernels(monkeypatch, transposed):
    calls = counting(monkeypatch, "_ConvTransposeProduct" if transposed else "_ConvProduct")
    ours, theirs = pair(transposed, bias=True)
    sides = [(16, 16)] if transposed else [(32, 32), (7, 7)]  # a conv's odd side: no products
    for side in sides:
        x = randn(1, WIDE[0], *side)
        assert torch.allclose(ours(x), theirs(x), rtol=1e-9, atol=1e-9)
    assert calls == []


@pytest.mark.parametrize(("transposed", "channels", "side"), [
    (False, WIDE, 8), (True, WIDE, 4), (False, (1, 32), 14), (True, (96, 1), 7),
    (False, (3, 32), 16), (True, (64, 3), 8)])
def test_bf16_autocast_products_are_bf16_and_close_to_fp32(monkeypatch, transposed, channels,
                                                          side):
    calls = counting(monkeypatch, "_ConvTransposeProduct" if transposed else "_ConvProduct")
    ours, theirs = pair(transposed, bias=True, channels=channels)
    ours.float().to(memory_format=torch.channels_last)
    theirs.float()
    x = randn(4, channels[0], side, side, dtype=torch.float32).contiguous(
        memory_format=torch.channels_last).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = ours(x)
    assert calls == [1] and out.dtype == torch.bfloat16
    reference = theirs(x.detach())
    error = (out.float() - reference).norm() / reference.norm()
    assert error < 1e-2  # bf16 keeps 8 bits of mantissa
    out.float().sum().backward()
    assert x.grad.dtype == torch.float32 and ours.weight.grad.dtype == torch.float32
    assert torch.isfinite(ours.weight.grad).all()


def test_wide_dcgan_nets_take_the_product_path_and_stay_torch_layers(monkeypatch):
    conv_calls = counting(monkeypatch, "_ConvProduct")
    transpose_calls = counting(monkeypatch, "_ConvTransposeProduct")
    generator = DCGANGenerator(latent_dim=8, image_shape=(1, 32, 32), width=32)
    discriminator = DCGANDiscriminator(image_shape=(1, 32, 32), width=32)
    images = generator(randn(2, 8, dtype=torch.float32))
    discriminator(images)
    # G: ConvT(128 -> 64) from 4x4 and ConvT(32 -> 1) onto the image; D: Conv(1 -> 32) from the
    # image and Conv(64 -> 128) to 4x4 (the rest have larger maps and more channels).
    assert transpose_calls == [1, 1] and conv_calls == [1, 1]
    # Every stride-2 layer is one of ours, and still a torch conv to code that checks types.
    layers = [*generator.net, *discriminator.net]
    ours = [m for m in layers if isinstance(m, (StridedConv2d, StridedConvTranspose2d))]
    assert len(ours) == 6  # G's 3 transposed convs, D's 3 strided convs (not its 4x4 read-out)
    assert all(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in ours)


def test_flatten_keeping_format_flattens_like_nn_flatten_and_keeps_channels_last_gradients():
    maps = randn(3, 4, 5, 6).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    out = FlattenKeepingFormat()(maps)
    assert torch.equal(out, nn.Flatten()(maps.detach()))  # (C, H, W) order
    weights = randn(*out.shape, seed=1)
    (out * weights).sum().backward()
    assert maps.grad.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(maps.grad, weights.view(3, 4, 5, 6))
    flat = randn(3, 4, 5, 6)  # contiguous maps: nn.Flatten's own path
    assert torch.equal(FlattenKeepingFormat()(flat), flat.flatten(1))


@pytest.mark.parametrize("transposed", [False, True])
def test_a_spectrally_normed_layer_takes_one_power_iteration_a_forward_as_torchs(transposed):
    # The product path read the parametrized weight twice (once to cast, once for the output's
    # memory format): two power-iteration steps a forward, and outputs apart from the second.
    from torch.nn.utils.parametrizations import spectral_norm

    ours, theirs = pair(transposed, bias=True)
    ours, theirs = spectral_norm(ours), spectral_norm(theirs)
    theirs.load_state_dict(ours.state_dict())  # the same u and v to start from
    x = randn(4, 96, 8, 8, seed=1)
    for _ in range(3):
        torch.testing.assert_close(ours(x), theirs(x))
    for name in ("_u", "_v"):
        assert torch.equal(getattr(ours.parametrizations.weight[0], name),
                           getattr(theirs.parametrizations.weight[0], name)), name
