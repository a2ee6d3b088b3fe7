"""PacGAN's packed discriminator (Lin et al. 2018): D judges m samples at once.

A discriminator that sees m samples together, all real or all fake, can notice that a batch of
fakes lacks the variety of real data, which a one-sample D cannot: packing penalises mode
collapse. The m samples are concatenated along the channel (or feature) axis, so the inner D is
an ordinary one built for m times the channels.
"""

from __future__ import annotations

import torch
from torch import nn


class PackedDiscriminator(nn.Module):
    """samples (N x C x ...) -> one logit per pack of `pack` consecutive samples (N / pack,).

    Args:
        inner: a discriminator taking (N / pack) x (pack * C) x ... inputs.
        pack: m, the samples per decision.
    """

    def __init__(self, inner: nn.Module, pack: int):
        super().__init__()
        self.inner = inner
        self.pack = pack

    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        n = len(samples)
        if n % self.pack:
            raise ValueError(f"a packed discriminator needs a multiple of {self.pack} samples, "
                             f"got {n}")
        # (N, C, ...) -> (N/m, m*C, ...): sample i of a pack fills channels i*C .. (i+1)*C - 1.
        return self.inner(samples.reshape(n // self.pack, self.pack * samples.shape[1],
                                          *samples.shape[2:]))

    def pointwise(self, samples: torch.Tensor) -> torch.Tensor:
        """A logit per sample: D's verdict on a pack of `pack` copies of it (for pictures)."""
        return self(samples.repeat_interleave(self.pack, dim=0))
