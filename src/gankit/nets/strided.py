"""DCGAN's strided layers, Conv2d and ConvTranspose2d with kernel 4, stride 2 and padding 1,
computed on a CPU as matrix products where their small map makes oneDNN slow.

On a map of 8x8 or less with many channels, oneDNN's bf16 kernels ran these layers far below the
machine's matmul speed (2 threads, batch 64, AVX-512 BF16 + AMX): Conv(256 -> 512) on 8x8 took
17 ms forward and 79 ms backward, 53 ms of it for the weight gradient, for 4.3 GFLOP per
product. As matrix products the weight gradient took 7 ms. Where the map is larger oneDNN wins,
and the layers keep its kernels; so they do on a GPU, and on a CPU without AMX: on an AMD EPYC
with AVX-512 BF16 (2 threads, batch 64) oneDNN ran these layers at the matmul's speed (Conv(256
-> 512) to 4x4, batch 128: 18 ms forward, 77 ms forward and backward; as products 22 and 82 ms),
and the 64-px DCGAN's step took 482 ms with oneDNN's kernels against 517 ms with the products.

The two layers are adjoint, so each one's input gradient is the other's forward:
- Conv: forward conv_product(X, W); input gradient conv_transpose_product(G, W); weight
  gradient G^T patches(X).
- ConvTranspose: forward conv_transpose_product(X, W); input gradient conv_product(G, W); weight
  gradient X^T patches(G).
Here `patches` is im2col: the 4x4 stride-2 windows of a map, one row per window. The backward
passes are written in differentiable operations, so R1 and the gradient penalty can
differentiate through them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# The fast path's domain (measured as above): the small map (a conv's output, a transposed
# conv's input) has at most this many positions, and in x out channels are at least this many.
# Conv(32 -> 64) on 7x7 (2,048) stayed faster in oneDNN; ConvT(192 -> 96) on 7x7 (18,432) did not.
MAX_POSITIONS = 64
MIN_CHANNEL_PRODUCT = 8192
# The slow small-map kernels are oneDNN's AMX ones (module docstring).
CPU_HAS_AMX = torch.cpu._is_amx_tile_supported()


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
    # weight[c, o, 2a + p, 2b + q] with a = 1 - r, b = 1 - s -> rows (r, s, c), columns (p, q, o)
    phases = weight.view(channels, out_channels, 2, 2, 2, 2).flip(2, 4)
    phases = phases.permute(2, 4, 0, 3, 5, 1).reshape(4 * channels, 4 * out_channels)
    blocks = (windows @ phases).view(n, height + 1, width + 1, 2, 2, out_channels)
    full = blocks.transpose(2, 3).reshape(n, 2 * height + 2, 2 * width + 2, out_channels)
    return full[:, 1:2 * height + 1, 1:2 * width + 1].permute(0, 3, 1, 2)


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


# Each layer's backward is the other layer's forward (they are adjoint) plus a weight gradient.
# The saved tensors are the inputs themselves, so a double backward (R1, the gradient penalty)
# reaches the weight and x through these differentiable operations.
class _ConvProduct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight):
        ctx.save_for_backward(x, weight)
        return conv_product(x, weight)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_x = conv_transpose_product(grad, weight)
        if ctx.needs_input_grad[1]:
            grad_weight = _weight_gradient(_rows(grad), patches(x, *grad.shape[2:]))
        return grad_x, grad_weight


class _ConvTransposeProduct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight):
        ctx.save_for_backward(x, weight)
        return conv_transpose_product(x, weight)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        windows = patches(grad, *x.shape[2:])  # shared by both gradients
        grad_x = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_x = conv_product(grad, weight, windows)
        if ctx.needs_input_grad[1]:
            grad_weight = _weight_gradient(_rows(x), windows)
        return grad_x, grad_weight


def _use_products(x: torch.Tensor, small_side: tuple[int, int], channel_product: int) -> bool:
    rows, cols = small_side
    return (x.device.type == "cpu" and CPU_HAS_AMX and rows * cols <= MAX_POSITIONS
            and channel_product >= MIN_CHANNEL_PRODUCT)


def _autocast_inputs(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
    """Cast as autocast would cast them for a conv (the products bypass its conv rule)."""
    if torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
        return x.to(dtype), weight.to(dtype), None if bias is None else bias.to(dtype)
    return x, weight, bias


def _finish(out: torch.Tensor, bias: torch.Tensor | None, weight: torch.Tensor) -> torch.Tensor:
    """Add the bias and give the output the layer's memory format (channels_last when its
    weight is, as train.channels_last sets it; else contiguous, as the oneDNN path returns)."""
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    if weight.is_contiguous(memory_format=torch.channels_last):
        return out.contiguous(memory_format=torch.channels_last)
    return out.contiguous()


class StridedConv2d(nn.Conv2d):
    """nn.Conv2d(in, out, 4, stride=2, padding=1): halves an even-sided map. Same weight, bias
    and state_dict keys as nn.Conv2d; matrix products where that is faster (module docstring)."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__(in_channels, out_channels, 4, stride=2, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.dim() != 4 or x.shape[2] % 2 or x.shape[3] % 2 or not _use_products(
                x, (x.shape[2] // 2, x.shape[3] // 2), self.in_channels * self.out_channels)):
            return super().forward(x)
        x, weight, bias = _autocast_inputs(x, self.weight, self.bias)
        return _finish(_ConvProduct.apply(x, weight), bias, self.weight)


class StridedConvTranspose2d(nn.ConvTranspose2d):
    """nn.ConvTranspose2d(in, out, 4, stride=2, padding=1): doubles a map. Same weight, bias and
    state_dict keys as nn.ConvTranspose2d; matrix products where that is faster (module
    docstring)."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__(in_channels, out_channels, 4, stride=2, padding=1, bias=bias)

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        if (output_size is not None or x.dim() != 4 or not _use_products(
                x, x.shape[2:], self.in_channels * self.out_channels)):
            return super().forward(x, output_size)
        x, weight, bias = _autocast_inputs(x, self.weight, self.bias)
        return _finish(_ConvTransposeProduct.apply(x, weight), bias, self.weight)
