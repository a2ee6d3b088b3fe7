"""Fully connected players: the seed's 1D toy nets and the MLP GAN of the lecture's gan.py."""

from __future__ import annotations

import math

import torch
from torch import nn

ACTIVATIONS = {
    "relu": lambda: nn.ReLU(),
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "tanh": lambda: nn.Tanh(),
    "softplus": lambda: nn.Softplus(),
}


class MLPGenerator(nn.Module):
    """z (N x latent_dim) -> samples (N x *out_shape) through hidden fully connected layers.

    Args:
        latent_dim: size of the noise vector.
        out_shape: shape of one sample, e.g. (1,) for 1D points or (1, 28, 28) for MNIST.
        hidden: widths of the hidden layers ([] gives a single linear layer).
        activation: name of the hidden activation.
        output: "tanh" for images in [-1, 1], "identity" for unbounded toy data.
        batchnorm: batch norm after each hidden linear layer (default eps and momentum).
    """

    def __init__(self, latent_dim: int, out_shape: tuple[int, ...], hidden: list[int],
                 activation: str = "leaky_relu", output: str = "tanh", batchnorm: bool = False):
        super().__init__()
        self.latent_dim = latent_dim
        self.out_shape = tuple(out_shape)
        layers: list[nn.Module] = []
        width = latent_dim
        for size in hidden:
            layers.append(nn.Linear(width, size))
            if batchnorm:
                layers.append(nn.BatchNorm1d(size))
            layers.append(ACTIVATIONS[activation]())
            width = size
        layers.append(nn.Linear(width, math.prod(self.out_shape)))
        if output == "tanh":
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.net(latent).view(len(latent), *self.out_shape)


class MLPDiscriminator(nn.Module):
    """samples (N x *in_shape) -> one real/fake logit per sample (N,).

    Args:
        in_shape: shape of one sample.
        hidden: widths of the hidden layers.
        activation: name of the hidden activation.
        dropout: dropout probability after each hidden activation.
    """

    def __init__(self, in_shape: tuple[int, ...], hidden: list[int],
                 activation: str = "leaky_relu", dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(in_shape)
        for size in hidden:
            layers += [nn.Linear(width, size), ACTIVATIONS[activation]()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        return self.net(samples).view(-1)
