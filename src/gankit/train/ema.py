"""An exponential moving average of the generator's weights, used for sampling and pictures.

Averaging G's weights over the last few hundred steps removes much of the step-to-step
jitter of adversarial training (Yazici et al. 2019; Karras et al.'s G_ema).
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class WeightAverage:
    """Keeps `average` = decay * average + (1 - decay) * net after every update.

    Args:
        net: the net to follow.
        decay: the EMA decay, in (0, 1).
    """

    def __init__(self, net: nn.Module, decay: float):
        self.decay = decay
        self.average = copy.deepcopy(net).requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        """Move the average towards `net`; buffers (e.g. batch-norm statistics) are copied."""
        self.updates += 1
        # Warm-up: early on the average would be dominated by the random initial weights.
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        averaged = list(self.average.parameters())
        current = [p.detach() for p in net.parameters()]
        torch._foreach_lerp_(averaged, current, 1.0 - decay)
        for mine, theirs in zip(self.average.buffers(), net.buffers(), strict=True):
            mine.copy_(theirs)
