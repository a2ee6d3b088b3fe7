"""Class-conditional discriminators built around an unconditional one.

The unconditional discriminators here (MLP, DCGAN) end in one layer that maps a feature vector
(or feature map) phi(x) to the logit. A conditional discriminator keeps the body and adds the
label where the literature puts it:

- projection (Miyato & Koyama 2018): logit = psi(phi(x)) + <embed(y), phi(x)>;
- AC-GAN (Odena et al. 2017): the real/fake logit and, from the same phi(x), K class logits.

The generator needs no new module: its input is [z, one_hot(y)] (Mirza & Osindero 2014), so
it is an ordinary generator with latent_dim + K inputs.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm as apply_spectral_norm


def split_head(discriminator: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(body, head): every layer but the last of `discriminator.net`, and that last layer."""
    layers = list(discriminator.net)
    if not isinstance(layers[-1], (nn.Linear, nn.Conv2d)):
        raise ValueError(f"{type(discriminator).__name__} does not end in a Linear or Conv2d")
    return nn.Sequential(*layers[:-1]), layers[-1]


def _feature_size(head: nn.Module) -> int:
    """How many numbers phi(x) holds: the inputs of one output unit of the head."""
    return head.weight[0].numel()


class ProjectionDiscriminator(nn.Module):
    """D(x, y) = psi(phi(x)) + <embed(y), phi(x)> (images or points, labels) -> logits (N,).

    The embedding is spectrally normalised when D's logit layer is (SNGAN's projection D normalises
    both), so that a spectrally normed D has no unbounded term.

    Args:
        discriminator: an unconditional D whose `.net` ends in its logit layer.
        num_classes: K, the number of labels.
    """

    def __init__(self, discriminator: nn.Module, num_classes: int):
        super().__init__()
        self.body, self.head = split_head(discriminator)
        self.embed = nn.Embedding(num_classes, _feature_size(self.head))
        # Start the projection small: at init D behaves like its unconditional self.
        nn.init.normal_(self.embed.weight, std=0.02)
        if parametrize.is_parametrized(self.head):
            apply_spectral_norm(self.embed)

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        features = self.body(inputs)
        logits = self.head(features).reshape(-1)
        projection = (self.embed(labels) * features.flatten(1)).sum(dim=1)
        return logits + projection


class AuxiliaryClassifierDiscriminator(nn.Module):
    """x -> (real/fake logits (N,), class logits (N, K)) from one shared body (AC-GAN).

    Args:
        discriminator: an unconditional D whose `.net` ends in its logit layer.
        num_classes: K, the number of labels.
    """

    def __init__(self, discriminator: nn.Module, num_classes: int):
        super().__init__()
        self.body, self.head = split_head(discriminator)
        # The class head has the logit layer's shape with K outputs (Linear or valid conv).
        if isinstance(self.head, nn.Linear):
            self.classifier = nn.Linear(self.head.in_features, num_classes)
        else:
            self.classifier = nn.Conv2d(self.head.in_channels, num_classes,
                                        kernel_size=self.head.kernel_size)
        if parametrize.is_parametrized(self.head):  # a spectrally normalised D stays so
            apply_spectral_norm(self.classifier)

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(inputs)
        return self.head(features).reshape(-1), self.classifier(features).flatten(1)
