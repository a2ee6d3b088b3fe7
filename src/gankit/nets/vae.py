"""The VAE baseline's nets: an MLP encoder, and the encoder-decoder pair one optimizer trains.

The decoder is not defined here: it is the GAN's generator for the same model config
(`gankit.nets.build_generator`), so a VAE and a GAN compared side by side have the same
sample-making network and capacity.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gankit.nets.mlp import ACTIVATIONS


class VAEEncoder(nn.Module):
    """samples (N x *in_shape) -> the mean and log-variance of q(z | x), each N x latent_dim.

    An MLP mirroring the MLP generator: for the lecture's generator 100 -> 256 -> 512 -> 1024
    -> 784 it is 784 -> 1024 -> 512 -> 256 -> (mu, logvar).

    Args:
        in_shape: shape of one sample, e.g. (1, 28, 28).
        hidden: widths of the hidden layers, input side first.
        latent_dim: size of z.
        activation: name of the hidden activation (see `gankit.nets.mlp.ACTIVATIONS`).
    """

    def __init__(self, in_shape: tuple[int, ...], hidden: list[int], latent_dim: int,
                 activation: str = "leaky_relu"):
        super().__init__()
        self.latent_dim = latent_dim
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(in_shape)
        for size in hidden:
            layers += [nn.Linear(width, size), ACTIVATIONS[activation]()]
            width = size
        self.body = nn.Sequential(*layers)
        # One linear head for both: mu is the first half, logvar the second.
        self.head = nn.Linear(width, 2 * latent_dim)

    def forward(self, samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.body(samples)).chunk(2, dim=1)
        return mu, logvar


class VariationalAutoencoder(nn.Module):
    """An encoder and a decoder trained together, as one player with one optimizer.

    Args:
        encoder: x -> (mu, logvar) of q(z | x).
        decoder: z -> the mean of p(x | z) in [-1, 1]; its last module must be an `nn.Tanh`
            (see `decode_with_logits`).
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        output_tanh(decoder)  # fail at construction, not at the first step

    def decode_with_logits(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoder's output t = tanh(a) and the Bernoulli logits 2a of (x + 1) / 2.

        (t + 1) / 2 = sigmoid(2a), so 2a are the logits of the pixel probabilities. They are
        read from the input of the final tanh, because recovering them as atanh(t) breaks down
        where t rounds to +-1 (and a saturated tanh passes no gradient).
        """
        captured: list[torch.Tensor] = []
        handle = output_tanh(self.decoder).register_forward_hook(
            lambda module, inputs, output: captured.append(inputs[0]))
        try:
            images = self.decoder(latent)
        finally:
            handle.remove()  # no hook left behind (the EMA deep-copies the decoder)
        return images, 2 * captured[0].reshape(images.shape)


def output_tanh(decoder: nn.Module) -> nn.Tanh:
    """The decoder's final module, which must be the tanh that makes its output.

    Raises:
        ValueError: if the decoder does not end with an `nn.Tanh` (e.g. model.g_output=identity).
    """
    final = list(decoder.modules())[-1]
    if not isinstance(final, nn.Tanh):
        raise ValueError(f"{type(decoder).__name__} does not end with a tanh: the VAE's "
                         "Bernoulli likelihood needs images in [-1, 1] (model.g_output=tanh)")
    return final


__all__ = ["VAEEncoder", "VariationalAutoencoder", "output_tanh"]
