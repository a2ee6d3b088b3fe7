"""The players' optimizers: SGD with momentum (the seeds' choice) or Adam.

torch 2.14.1's fused CPU Adam calls `grad.contiguous()` on every gradient and then never uses
the result, so each channels_last weight (train.channels_last) pays a full copy of its gradient
every step. `FusedAdam` hands the fused kernel flat views of such weights instead: mnist-dcgan's
step, whose latent projection and ConvT(192 -> 96) weights were copied, ran 0.22-0.54 ms faster
(median difference over 100 pairs of steps, five runs; `python benchmarks/step_profile.py
mnist-dcgan --adam-pairs 100`). Adam is elementwise, so updating the same memory through a flat
view is the same update, bit for bit; the state keeps the weights' shape.
"""

from __future__ import annotations

import torch
from torch import nn


def _flat_view(tensor: torch.Tensor) -> torch.Tensor:
    """A 1-D view of a channels_last tensor's memory (NHWC order)."""
    return tensor.permute(0, 2, 3, 1).view(-1)


class FusedAdam(torch.optim.Adam):
    """torch.optim.Adam(fused=True) without the discarded gradient copy of channels_last
    weights (module docstring); the same state_dict as torch's."""

    def __init__(self, params, **kwargs):
        super().__init__(params, fused=True, **kwargs)

    def _init_group(self, group, params_with_grad, grads, exp_avgs, exp_avg_sqs,
                    max_exp_avg_sqs, state_steps):
        has_complex = super()._init_group(group, params_with_grad, grads, exp_avgs, exp_avg_sqs,
                                          max_exp_avg_sqs, state_steps)
        lists = [params_with_grad, grads, exp_avgs, exp_avg_sqs]
        if group["amsgrad"]:
            lists.append(max_exp_avg_sqs)
        for index, param in enumerate(params_with_grad):
            # Only where all of them share the channels_last layout (they do after backward:
            # autograd hands a weight its gradient in the weight's own layout).
            if (param.dim() == 4 and not param.is_contiguous()
                    and param.is_contiguous(memory_format=torch.channels_last)
                    and all(tensors[index].stride() == param.stride() for tensors in lists)):
                for tensors in lists:
                    tensors[index] = _flat_view(tensors[index])
        return has_complex


def make_optimizer(params: list[nn.Parameter], name: str, lr: float, momentum: float,
                   betas: list[float], fused: bool = False) -> torch.optim.Optimizer:
    """SGD with momentum or Adam; `fused` updates all weights in one kernel."""
    if name == "sgd":
        # fused=None is torch's own choice (its for-each or per-tensor loop), not "off".
        return torch.optim.SGD(params, lr=lr, momentum=momentum, fused=True if fused else None)
    if fused:
        return FusedAdam(params, lr=lr, betas=tuple(betas))
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas))
