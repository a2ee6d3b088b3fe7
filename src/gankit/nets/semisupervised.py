"""The players of Salimans et al. 2016's permutation-invariant MNIST semi-supervised GAN.

The discriminator is a K-class classifier: its K logits l_1..l_K define D(x) = Z / (Z + 1) with
Z = sum_k exp(l_k), the (K+1)-th "generated" class having its logit fixed at 0. It is an MLP
(784-1000-500-250-250-250-K in the paper) of weight-normalised linear layers with ReLUs, made
robust by Gaussian noise on the input (std 0.3) and after every hidden layer (std 0.5). The
generator is an MLP (100-500-500-784) with batch norm and softplus and a weight-normalised
sigmoid output layer.

Images cross these modules in gankit's range [-1, 1]; inside, the discriminator rescales them
to the paper's [0, 1] first, so that its noise levels mean what they meant in the paper.
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


def _weight_normed(in_features: int, out_features: int) -> nn.Module:
    """A weight-normalised linear layer whose direction v starts as N(0, 0.1^2) entries.

    With weight norm, Adam's step moves v by about lr per entry whatever its size, so |v| sets
    how fast the direction turns: the paper code's N(0, 0.1^2) (|v| of 1.6 to 3.2 here) turns it
    about 5x slower than PyTorch's default init (|v| = 0.58), which trained worse on MNIST
    (18 % against 14 % test error after 3,000 steps of the mnist-semisupervised preset).
    """
    linear = nn.Linear(in_features, out_features)
    nn.init.normal_(linear.weight, std=0.1)
    nn.init.zeros_(linear.bias)
    return weight_norm(linear)


class GaussianNoise(nn.Module):
    """Adds N(0, std^2) noise while training; the identity in eval mode.

    Args:
        std: standard deviation of the noise.
    """

    def __init__(self, std: float):
        super().__init__()
        self.std = std

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if not self.training or self.std == 0:
            return inputs
        return inputs + self.std * torch.randn_like(inputs)


class NoisyClassifier(nn.Module):
    """images (N x *in_shape, in [-1, 1]) -> K class logits, the semi-supervised GAN's D.

    Hidden layers are weight-normalised with a fixed per-unit scale (as in the paper: only the
    output layer's scale is trained), so the fixed noise never becomes negligible by weights
    growing. `initialize` sets those scales from data (Salimans & Kingma's data-dependent init).

    Args:
        in_shape: shape of one image, e.g. (1, 28, 28).
        hidden: widths of the hidden layers, e.g. [1000, 500, 250, 250, 250].
        num_classes: K, the number of logits.
        input_noise: std of the Gaussian noise on the [0, 1]-scaled input.
        hidden_noise: std of the Gaussian noise after each hidden ReLU.
        average_decay: decay of the moving average of the weights that `averaged` swaps in
            for evaluation (the paper's code measures a Polyak average of D, too); 0 = none.
    """

    def __init__(self, in_shape: tuple[int, ...], hidden: list[int], num_classes: int = 10,
                 input_noise: float = 0.3, hidden_noise: float = 0.5,
                 average_decay: float = 0.999):
        super().__init__()
        self.in_features = math.prod(in_shape)
        self.input_noise = GaussianNoise(input_noise)
        self.hidden = nn.ModuleList()
        self.hidden_noise = nn.ModuleList()
        width = self.in_features
        for size in hidden:
            layer = _weight_normed(width, size)
            layer.parametrizations.weight.original0.requires_grad_(False)  # fixed scale g
            self.hidden.append(layer)
            self.hidden_noise.append(GaussianNoise(hidden_noise))
            width = size
        self.output = _weight_normed(width, num_classes)
        # 1 once `initialize` has run; a buffer, so checkpoints remember it across resumes.
        self.register_buffer("initialized", torch.zeros(()))
        # The weight average lives in buffers of a child module: saved with the net in every
        # checkpoint, never handed to an optimizer, not counted as parameters.
        self.average_decay = average_decay
        self.average = nn.Module()
        self.average.register_buffer("updates", torch.zeros(()))
        for name, param in self._averaged_parameters():
            self.average.register_buffer(name, param.detach().clone())

    def features_and_logits(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the last hidden layer's activations before its noise, the K logits).

        The features are what feature matching compares between real and generated batches.
        """
        activations = self.input_noise((images.flatten(1) + 1) / 2)
        features = activations
        for layer, noise in zip(self.hidden, self.hidden_noise, strict=True):
            features = torch.relu(layer(activations))
            activations = noise(features)
        return features, self.output(activations)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features_and_logits(images)[1]

    def _averaged_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(name.replace(".", "_"), param) for name, param in self.named_parameters()]

    @torch.no_grad()
    def update_average(self) -> None:
        """Move the weight average towards the current weights (call after each D update)."""
        if self.average_decay <= 0:
            return
        self.average.updates += 1
        updates = float(self.average.updates)
        # Warm-up, as for G's average: early on the first weights would dominate the average.
        decay = min(self.average_decay, (1 + updates) / (10 + updates))
        for name, param in self._averaged_parameters():
            getattr(self.average, name).lerp_(param.detach(), 1.0 - decay)

    @contextlib.contextmanager
    def averaged(self):
        """Within the block the net computes with its averaged weights (if it has any)."""
        if self.average_decay <= 0 or not self.average.updates:
            yield self
            return
        pairs = [(param, getattr(self.average, name))
                 for name, param in self._averaged_parameters()]
        saved = [param.detach().clone() for param, _ in pairs]
        with torch.no_grad():
            for param, average in pairs:
                param.copy_(average)
        try:
            yield self
        finally:
            with torch.no_grad():
                for (param, _), weights in zip(pairs, saved, strict=True):
                    param.copy_(weights)

    @torch.no_grad()
    def initialize(self, images: torch.Tensor) -> None:
        """Data-dependent init: scale and shift each layer so its pre-activations have zero mean
        and unit variance over `images` (a batch of real images in [-1, 1]), layer by layer.

        Args:
            images: a few hundred real images.
        """
        activations = self.input_noise((images.flatten(1).float() + 1) / 2)
        layers = [*self.hidden, self.output]
        for index, layer in enumerate(layers):
            pre = nn.functional.linear(activations, layer.weight)
            mean, std = pre.mean(0), pre.std(0, unbiased=False).clamp_min(1e-6)
            layer.parametrizations.weight.original0.div_(std[:, None])
            layer.bias.copy_(-mean / std)
            if index < len(self.hidden):
                activations = self.hidden_noise[index](torch.relu((pre - mean) / std))
        for name, param in self._averaged_parameters():  # the average starts here
            getattr(self.average, name).copy_(param)
        self.initialized.fill_(1)


class SemiSupervisedGenerator(nn.Module):
    """z (N x latent_dim) -> images (N x *out_shape) in [-1, 1].

    Linear layers without bias, each followed by batch norm (which brings its own shift) and
    softplus; a weight-normalised output layer with a sigmoid, rescaled from [0, 1] to [-1, 1].

    Args:
        latent_dim: size of the noise vector.
        out_shape: shape of one image.
        hidden: widths of the hidden layers, e.g. [500, 500].
    """

    def __init__(self, latent_dim: int, out_shape: tuple[int, ...], hidden: list[int]):
        super().__init__()
        self.latent_dim = latent_dim
        self.out_shape = tuple(out_shape)
        layers: list[nn.Module] = []
        width = latent_dim
        for size in hidden:
            linear = nn.Linear(width, size, bias=False)
            nn.init.xavier_uniform_(linear.weight)  # the paper code's (Lasagne's) default init
            layers += [linear, nn.BatchNorm1d(size), nn.Softplus()]
            width = size
        output = nn.Linear(width, math.prod(self.out_shape))
        nn.init.xavier_uniform_(output.weight)
        nn.init.zeros_(output.bias)
        output = weight_norm(output)
        with torch.no_grad():
            output.parametrizations.weight.original0.fill_(1.0)  # unit scale, as in the paper
        layers.append(output)
        self.net = nn.Sequential(*layers)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return (2 * torch.sigmoid(self.net(latent)) - 1).view(len(latent), *self.out_shape)
