"""A small CNN digit classifier whose penultimate activations serve as evaluation features.

One architecture serves MNIST, Fashion-MNIST and USPS: it takes 28x28 images in [-1, 1] (USPS's
16x16 digits are resized to 28x28 by the data loader, not here). Two blocks of two 3x3
convolutions with batch norm, each block followed by 2x2 max pooling (28 -> 14 -> 7), a third
pooling to 4x4, then a fully connected layer to `feature_dim` units with ReLU: these are the
FEATURES, the input of the final linear layer that gives the class logits. The third pooling
keeps the net at about 200k parameters (under 1 MB as float32 safetensors); without it the
first fully connected layer alone would hold 400k.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_block(in_channels: int, out_channels: int) -> list[nn.Module]:
    # No conv bias: batch norm's shift makes it redundant.
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class DigitClassifier(nn.Module):
    """28x28 images in [-1, 1] -> class logits, with `features` giving the penultimate layer.

    Args:
        in_channels: channels of the input images (1 for greyscale digits).
        num_classes: number of classes, the width of the logits.
        feature_dim: width of the penultimate layer, the feature vector.
        dropout: dropout probability between the features and the logits (training only).
    """

    image_size = 28

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        feature_dim: int = 128,
        dropout: float = 0.3,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.feature_dim = feature_dim
        self.body = nn.Sequential(
            *_conv_block(in_channels, 32),
            *_conv_block(32, 32),
            nn.MaxPool2d(2),  # 28 -> 14
            *_conv_block(32, 64),
            *_conv_block(64, 64),
            nn.MaxPool2d(2),  # 14 -> 7
            nn.MaxPool2d(2, ceil_mode=True),  # 7 -> 4, keeping the last row and column
        )
        self.embed = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, feature_dim),
            nn.ReLU(inplace=True),
        )
        self.dropout = nn.Dropout(dropout)
        self.classify = nn.Linear(feature_dim, num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The penultimate activations: the input of the final linear layer.

        Args:
            images: float (N, in_channels, 28, 28) in [-1, 1].

        Returns:
            (N, feature_dim) non-negative activations (after ReLU, before dropout).
        """
        return self.embed(self.body(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits.

        Args:
            images: float (N, in_channels, 28, 28) in [-1, 1].

        Returns:
            (N, num_classes) logits; in eval mode `classify(features(images))` exactly.
        """
        return self.classify(self.dropout(self.features(images)))
