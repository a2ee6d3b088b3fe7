"""DCGAN's strided layers, Conv2d and ConvTranspose2d with kernel 4, stride 2 and padding 1,
computed on a CPU partly as matrix products where their small map makes oneDNN slow.

On a map of 8x8 or less with many channels, oneDNN's bf16 kernels ran these layers far below the
machine's matmul speed (2 threads, batch 64, AVX-512 BF16 + AMX): Conv(256 -> 512) on 8x8 took
17 ms forward and 79 ms backward, 53 ms of it for the weight gradient, for 4.3 GFLOP per
product. As matrix products the weight gradient took 7 ms. Where the map is larger oneDNN wins,
and the layers keep its kernels; so they do on a GPU.

On a CPU without AMX only the weight gradient is a product. On an AMD EPYC with AVX-512 BF16 (2
threads, batch 64, bf16; benchmarks/strided_layers.py) oneDNN ran the forward and the input
gradient at the matmul's speed, but not the weight gradient on small maps: ConvT(512 -> 256) from
4x4 took 11.1, 10.5 and 23.2 ms for the three with oneDNN, against 19.6, 11.9 and 12.2 ms as
products; Conv(256 -> 512) onto 4x4 11.7, 13.1 and 26.0 ms against 12.7, 20.7 and 13.4 ms. The
64-px DCGAN's step took 528 ms with oneDNN throughout and 486 ms with the products' weight
gradients.

All of that is bf16. In fp32 oneDNN's weight gradient beat the product on the AMD EPYC
(benchmarks/strided_layers.py --dtype fp32, batch 64): ConvT(192 -> 96) from 7x7 10.5 ms
against 14.9, Conv(32 -> 64) onto 7x7 1.2 against 2.3, Conv(128 -> 256) onto 8x8 21.6 against
27.9; only ConvT(512 -> 256) from 4x4 went either way between runs. fp32 steps ran faster
without the products (mnist-dcgan 60.0 ms against 66.3, the 64-px DCGAN 749 against 793), so
they are for bf16 only; the one-channel fold below won in both (ConvT(96 -> 1) from 14x14 in
fp32: 0.53 ms against 3.0).

A layer whose large map has one channel (G's last layer and D's first on greyscale images) is
slow in oneDNN in its scatter direction, a ConvT's forward and a Conv's input gradient, whatever
the map's size: on the AMD EPYC ConvT(96 -> 1) from 14x14 took 1.80 ms, ConvT(64 -> 1) from 32x32
6.1 ms. One product to the 16 taps of every output pixel and a fold (col2im) took 0.42 and 2.1
ms. mnist-dcgan's step ran 1.2-1.9 ms (3-4%) faster with it, faces-dcgan's 2.2-2.7 ms (under 2%)
(benchmarks/step_profile.py --fold-pairs 100, batch 64). With three channels the fold lost (7.9
ms against 6.9 for ConvT(64 -> 3) from 32x32), so it is only for one.

With 2 to 8 channels on the large map (G's last layer and D's first on RGB images) the scatter
is a sub-pixel conv instead: one stride-1 conv with 2x2 kernels from x to 4 x out channels, one
per output phase, which oneDNN's forward kernel computes far faster than its transposed conv
computes a few channels (that one works in blocks of 16 output channels: ConvT(64 -> 3) and
ConvT(64 -> 16) from 32x32 took the same 6.7 ms). On the AMD EPYC, batch 64, in alternating
pairs: ConvT(64 -> 3) from 32x32 2.7 ms against 6.5 in bf16 and 6.3 against 11.5 in fp32,
ConvT(96 -> 3) from 14x14 0.72 against 1.82; from 2 to 4 channels 0.37-0.58 of oneDNN's time
in both dtypes, 6 and 8 channels 0.60-0.89, 16 channels 1.07-1.52. For one channel the fold
stayed faster (0.52 against 0.73 ms from 14x14).

The two layers are adjoint, so each one's input gradient is the other's forward:
- Conv: forward conv_product(X, W); input gradient conv_transpose_product(G, W); weight
  gradient G^T patches(X).
- ConvTranspose: forward conv_transpose_product(X, W); input gradient conv_product(G, W); weight
  gradient X^T patches(G).
Here `patches` is im2col: the 4x4 stride-2 windows of a map, one row per window; with one
channel on the large map conv_transpose_fold stands in for conv_transpose_product, with 2 to
MAX_THIN_CHANNELS conv_transpose_subpixel. The backward passes are written in differentiable
operations, so R1 and the gradient penalty can differentiate through them.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

# The fast path's domain (measured as above): the small map (a conv's output, a transposed
# conv's input) has at most this many positions, and in x out channels are at least this many.
# With AMX (all three products), Conv(32 -> 64) on 7x7 (2,048) stayed faster in oneDNN;
# ConvT(192 -> 96) on 7x7 (18,432) did not.
MAX_POSITIONS = 64
MIN_CHANNEL_PRODUCT = 8192
# Without AMX (the weight gradient alone) the product wins from fewer channels. On the AMD EPYC,
# batch 128, bf16: Conv(32 -> 64) onto 7x7 1.7 ms against oneDNN's 2.1, Conv(48 -> 96) 3.7
# against 3.9; batch 64, ConvT(64 -> 32) from 7x7 0.79 against 1.05. Steps, median paired
# difference over 100-200 pairs: mnist-dcgan 0.8-1.9 ms (2-5%) faster in four runs, stacked-mnist
# in bf16 2.3 ms (7%), fashion-dcgan 0.8 ms. On 16x16 maps oneDNN stayed 1.2-2x faster.
MIN_CHANNEL_PRODUCT_WEIGHT_GRADIENT = 2048
# With AMX all three products of a layer in the domain are matrix products; without it only the
# weight gradient (module docstring).
CPU_HAS_AMX = torch.cpu._is_amx_tile_supported()
# The dtypes a layer in the domain computes in for the products to pay (module docstring); the
# thin layers' scatter (a fold or a sub-pixel conv) pays in any.
PRODUCT_DTYPES = frozenset({torch.bfloat16})
# Up to this many channels on the large map, a layer's scatter is a fold (one channel) or a
# sub-pixel conv (module docstring).
MAX_THIN_CHANNELS = 8


class Plan(NamedTuple):
    """Which of a layer's three computations are matrix products (the others: torch's kernels)."""

    forward: bool
    input_grad: bool
    weight_grad: bool


ALL_PRODUCTS = Plan(forward=True, input_grad=True, weight_grad=True)
WEIGHT_GRADIENT_ONLY = Plan(forward=False, input_grad=False, weight_grad=True)
# Few channels on the large map: the scatter direction as a fold or a sub-pixel conv (module
# docstring); the rest is torch's.
THIN_CONV_TRANSPOSE = Plan(forward=True, input_grad=False, weight_grad=False)
THIN_CONV = Plan(forward=False, input_grad=True, weight_grad=False)


def _windows(maps: torch.Tensor, side: int, step: int, rows: int, cols: int) -> torch.Tensor:
    """The side x side windows, `step` apart, of `maps` (N, C, H, W) zero-padded by 1, as a
    matrix: (N * rows * cols, side * side * C), one row per window (n, i, j), columns
    ordered (kh, kw, c)."""
    n, channels = maps.shape[:2]
    padded = F.pad(maps.permute(0, 2, 3, 1), (0, 0, 1, 1, 1, 1))  # NHWC, one copy
    s_n, s_h, s_w, _ = padded.stride()
    windows = padded.as_strided((n, rows, cols, side, side, channels),
                                (s_n, step * s_h, step * s_w, s_h, s_w, 1))
    return windows.reshape(n * rows * cols, side * side * channels)


def patches(maps: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """The 4x4 stride-2 windows of `maps` zero-padded by 1 (im2col for these layers), as an
    (N * rows * cols, 16 * C) matrix, columns ordered (kh, kw, c)."""
    return _windows(maps, 4, 2, rows, cols)


def conv_product(x: torch.Tensor, weight: torch.Tensor,
                 windows: torch.Tensor | None = None) -> torch.Tensor:
    """conv2d(x, weight, stride=2, padding=1) for an (out, in, 4, 4) weight: one product of
    x's windows (`patches(x, H // 2, W // 2)`, computed unless given) and the weight, out in
    channels_last strides."""
    n, _, height, width = x.shape
    rows, cols = height // 2, width // 2
    if windows is None:
        windows = patches(x, rows, cols)
    out = windows @ _conv_matrix(weight).t()
    return out.view(n, rows, cols, -1).permute(0, 3, 1, 2)


def conv_transpose_product(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """conv_transpose2d(x, weight, stride=2, padding=1) for an (in, out, 4, 4) weight, as one
    product, out in channels_last strides.

    Output pixel (2I + p, 2J + q) of the map padded by 1 sums the 2x2 window at (I, J) of x
    padded by 1, against taps (2(1 - r) + p, 2(1 - s) + q) for window cell (r, s). So the
    (H + 1)(W + 1) windows times a (4 in, 4 out) rearranged weight give every output pixel in
    one product: about 1.3x a scatter's multiply-adds on a 7x7 map, but no scatter, which cost
    more than that (and the sums accumulate in the product's fp32 registers).
    """
    n, channels, height, width = x.shape
    out_channels = weight.shape[1]
    windows = _windows(x, 2, 1, height + 1, width + 1)
    # rows (r, s, c), columns (p, q, o)
    phases = _phase_taps(weight).permute(2, 4, 0, 3, 5, 1)
    phases = phases.reshape(4 * channels, 4 * out_channels)
    return _interleave_phases(windows @ phases, n, height, width, out_channels)


def _phase_taps(weight: torch.Tensor) -> torch.Tensor:
    """An (in, out, 4, 4) ConvT weight as (c, o, r, p, s, q): the tap that window cell (r, s)
    of x padded by 1 gives output phase (p, q), weight[c, o, 2(1 - r) + p, 2(1 - s) + q]."""
    return weight.view(*weight.shape[:2], 2, 2, 2, 2).flip(2, 4)


def _interleave_phases(blocks: torch.Tensor, n: int, height: int, width: int,
                       out_channels: int) -> torch.Tensor:
    """The (H + 1)(W + 1) windows' phases, (n, H + 1, W + 1, (p, q, o)) in NHWC order, as the
    output map: pixel (2I + p, 2J + q) of the map padded by 1, its border cropped; channels_last
    strides."""
    blocks = blocks.reshape(n, height + 1, width + 1, 2, 2, out_channels)
    full = blocks.transpose(2, 3).reshape(n, 2 * height + 2, 2 * width + 2, out_channels)
    return full[:, 1:2 * height + 1, 1:2 * width + 1].permute(0, 3, 1, 2)


def conv_transpose_fold(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """conv_transpose2d(x, weight, stride=2, padding=1) for an (in, out, 4, 4) weight, as one
    product that gives each input pixel's 16 taps per output channel and F.fold, which adds the
    overlapping taps into the map (in fp32 at least, as a conv accumulates). Out contiguous, in
    x's dtype. Taken for one output channel, where it beats oneDNN (module docstring)."""
    n, channels, height, width = x.shape
    taps = _rows(x) @ weight.reshape(channels, -1)  # (N * H * W, out * 16), columns (o, kh, kw)
    taps = taps.view(n, height * width, -1).transpose(1, 2)
    taps = taps.to(torch.promote_types(taps.dtype, torch.float32))
    out = F.fold(taps, (2 * height, 2 * width), 4, padding=1, stride=2)
    return out.to(x.dtype)


def conv_transpose_subpixel(x: torch.Tensor, weight: torch.Tensor,
                            bias: torch.Tensor | None = None) -> torch.Tensor:
    """conv_transpose2d(x, weight, bias, stride=2, padding=1) for an (in, out, 4, 4) weight, as
    one stride-1 conv with 2x2 kernels (a sub-pixel conv): the 2x2 windows of x padded by 1 and
    the rearranged weight of conv_transpose_product, here as a conv kernel with out channels
    (p, q, o), so that oneDNN's forward conv computes every output phase; then the phases are
    interleaved into the map and its border cropped. Out in channels_last strides. Taken for 2 to
    MAX_THIN_CHANNELS output channels, where it beats oneDNN's transposed conv (module
    docstring)."""
    n, channels, height, width = x.shape
    out_channels = weight.shape[1]
    # kernel[(p, q, o), c, r, s]
    kernel = _phase_taps(weight).permute(3, 5, 1, 0, 2, 4)
    kernel = kernel.reshape(4 * out_channels, channels, 2, 2)
    phases = F.conv2d(F.pad(x, (1, 1, 1, 1)), kernel, None if bias is None else bias.repeat(4))
    return _interleave_phases(phases.permute(0, 2, 3, 1), n, height, width, out_channels)


def _rows(maps: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N * H * W, C), free for a channels_last tensor."""
    return maps.permute(0, 2, 3, 1).reshape(-1, maps.shape[1])


def _conv_matrix(weight: torch.Tensor) -> torch.Tensor:
    """A (A, B, 4, 4) weight as an (A, 16 * B) matrix, columns (kh, kw, b): a Conv2d's
    (out, in) or a ConvTranspose2d's (in, out); free for a channels_last weight."""
    return weight.permute(0, 2, 3, 1).reshape(len(weight), -1)


def _weight_gradient(rows: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
    """rows^T windows: the weight gradient of either layer, (A, B, 4, 4) as the weight; `rows`
    (N * h * w, A) are the small map's rows, `windows` the large map's patches (N * h * w, 16 B)."""
    product = rows.t() @ windows
    return product.view(len(product), 4, 4, -1).permute(0, 3, 1, 2)


def _conv(x: torch.Tensor, weight: torch.Tensor, product: bool,
          windows: torch.Tensor | None = None, bias: torch.Tensor | None = None) -> torch.Tensor:
    """conv2d(x, weight, bias, stride=2, padding=1) as a product or by torch's kernel (which
    adds the bias in the same pass: D's first conv on 128 greyscale images took 0.27 ms with it
    against 0.42 ms with a separate add)."""
    if not product:
        return F.conv2d(x, weight, bias, stride=2, padding=1)
    out = conv_product(x, weight, windows)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


def _conv_transpose(x: torch.Tensor, weight: torch.Tensor, product: bool,
                    bias: torch.Tensor | None = None) -> torch.Tensor:
    """conv_transpose2d(x, weight, bias, stride=2, padding=1) as a product (a fold or a
    sub-pixel conv for few output channels) or by torch's kernel (which adds the bias in the same
    pass, as in _conv)."""
    if not product:
        return F.conv_transpose2d(x, weight, bias, stride=2, padding=1)
    out_channels = weight.shape[1]
    if 1 < out_channels <= MAX_THIN_CHANNELS:
        return conv_transpose_subpixel(x, weight, bias)  # the conv adds the bias
    if out_channels == 1:
        out = conv_transpose_fold(x, weight)
    else:
        out = conv_transpose_product(x, weight)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


def _torch_weight_gradient(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                           transposed: bool) -> torch.Tensor:
    """The weight gradient by the kernel torch's own conv backward calls (differentiable)."""
    return torch.ops.aten.convolution_backward(
        grad, x, weight, None, [2, 2], [1, 1], [1, 1], transposed, [0, 0], 1,
        [False, True, False])[1]


# Each layer's backward is the other layer's forward (they are adjoint) plus a weight gradient,
# each computed as its Plan says. The saved tensors are the inputs themselves, so a double
# backward (R1, the gradient penalty) reaches the weight and x through differentiable operations.
class _ConvProduct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, plan):
        ctx.save_for_backward(x, weight)
        ctx.plan = plan
        return _conv(x, weight, plan.forward, bias=bias)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        plan = ctx.plan
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[2]:
            grad_bias = grad.sum((0, 2, 3))
        if ctx.needs_input_grad[0]:
            grad_x = _conv_transpose(grad, weight, plan.input_grad)
        if ctx.needs_input_grad[1]:
            if plan.weight_grad:
                grad_weight = _weight_gradient(_rows(grad), patches(x, *grad.shape[2:]))
            else:
                grad_weight = _torch_weight_gradient(grad, x, weight, transposed=False)
        return grad_x, grad_weight, grad_bias, None


class _ConvTransposeProduct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, plan):
        ctx.save_for_backward(x, weight)
        ctx.plan = plan
        return _conv_transpose(x, weight, plan.forward, bias=bias)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        plan = ctx.plan
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[2]:
            grad_bias = grad.sum((0, 2, 3))
        # The gradient's windows, shared by both products when both are products.
        windows = None
        if plan.weight_grad and ctx.needs_input_grad[1]:
            windows = patches(grad, *x.shape[2:])
        if ctx.needs_input_grad[0]:
            grad_x = _conv(grad, weight, plan.input_grad, windows)
        if ctx.needs_input_grad[1]:
            if plan.weight_grad:
                grad_weight = _weight_gradient(_rows(x), windows)
            else:
                grad_weight = _torch_weight_gradient(grad, x, weight, transposed=True)
        return grad_x, grad_weight, grad_bias, None


def plan_for(x: torch.Tensor, small_side: tuple[int, int], small_channels: int,
             large_channels: int, transposed: bool) -> Plan | None:
    """The Plan of a Conv (or a ConvT when `transposed`) for input `x`, or None for torch's layer
    throughout (out of the domains, in a dtype other than bf16, or not on a CPU). The small map
    is the Conv's output or the ConvT's input, with its side and channels; the large map is the
    other one."""
    if x.device.type != "cpu":
        return None
    if large_channels <= MAX_THIN_CHANNELS:
        return THIN_CONV_TRANSPOSE if transposed else THIN_CONV
    rows, cols = small_side
    if rows * cols > MAX_POSITIONS or _compute_dtype(x) not in PRODUCT_DTYPES:
        return None
    channels = small_channels * large_channels
    if CPU_HAS_AMX:
        return ALL_PRODUCTS if channels >= MIN_CHANNEL_PRODUCT else None
    return WEIGHT_GRADIENT_ONLY if channels >= MIN_CHANNEL_PRODUCT_WEIGHT_GRADIENT else None


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype a conv of `x` computes in: autocast's where it is on (as _autocast_inputs)."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


def _autocast_inputs(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
    """Cast as autocast would cast them for a conv (the products bypass its conv rule)."""
    if torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
        return x.to(dtype), weight.to(dtype), None if bias is None else bias.to(dtype)
    return x, weight, bias


def _finish(out: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The output in the layer's memory format (channels_last when its weight is, as
    train.channels_last sets it; else contiguous, as the oneDNN path returns). The channel
    stride decides: a one-channel weight passes is_contiguous in both formats."""
    if weight.stride(1) == 1 and weight.is_contiguous(memory_format=torch.channels_last):
        return out.contiguous(memory_format=torch.channels_last)
    return out.contiguous()


class StridedConv2d(nn.Conv2d):
    """nn.Conv2d(in, out, 4, stride=2, padding=1): halves an even-sided map. Same weight, bias
    and state_dict keys as nn.Conv2d; matrix products where that is faster (module docstring)."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__(in_channels, out_channels, 4, stride=2, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        plan = None
        if x.dim() == 4 and x.shape[2] % 2 == 0 and x.shape[3] % 2 == 0:
            plan = plan_for(x, (x.shape[2] // 2, x.shape[3] // 2), self.out_channels,
                            self.in_channels, transposed=False)
        if plan is None:
            return super().forward(x)
        weight = self.weight  # read once: a spectrally normed weight iterates at each read
        x, cast, bias = _autocast_inputs(x, weight, self.bias)
        return _finish(_ConvProduct.apply(x, cast, bias, plan), weight)


class StridedConvTranspose2d(nn.ConvTranspose2d):
    """nn.ConvTranspose2d(in, out, 4, stride=2, padding=1): doubles a map. Same weight, bias and
    state_dict keys as nn.ConvTranspose2d; matrix products where that is faster (module
    docstring)."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__(in_channels, out_channels, 4, stride=2, padding=1, bias=bias)

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        plan = None
        if output_size is None and x.dim() == 4:
            plan = plan_for(x, x.shape[2:], self.in_channels, self.out_channels, transposed=True)
        if plan is None:
            return super().forward(x, output_size)
        weight = self.weight  # read once: a spectrally normed weight iterates at each read
        x, cast, bias = _autocast_inputs(x, weight, self.bias)
        return _finish(_ConvTransposeProduct.apply(x, cast, bias, plan), weight)
