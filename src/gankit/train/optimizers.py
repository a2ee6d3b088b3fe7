"""The players' optimizers: SGD with momentum (the seeds' choice) or Adam.

torch 2.14.1's fused CPU Adam calls `grad.contiguous()` on every gradient and then never uses
the result, so each channels_last weight (train.channels_last) pays a full copy of its gradient
every step. `FusedAdam` hands the fused kernel flat views of such weights instead: mnist-dcgan's
step, whose latent projection and ConvT(192 -> 96) weights were copied, ran 0.22-0.54 ms faster
(median difference over 100 pairs of steps, five runs; `python benchmarks/step_profile.py
mnist-dcgan --adam-pairs 100`). Adam is elementwise, so updating the same memory through a flat
view is the same update, bit for bit; the state keeps the weights' shape.

Once its state exists, `FusedAdam.step` also calls the fused kernel directly, without torch's
per-step Python around it (its profiler label and hook loops, grad-mode and compile guards, the
graph-capture check, the regrouping of every tensor by device and dtype). Right after a large
kernel that Python runs several times slower than alone (a profiler label 29 us against 6, a
tiny torch op 9 against 1.4; the kernel's data has pushed the interpreter's out of the caches),
and it took 0.17-0.21 ms of each player's 0.73-0.95 ms step. mnist-dcgan's step ran 0.23-0.37 ms
faster (about 1%; median difference over 300 pairs of steps in four runs, AMD EPYC, 2 threads,
two of them `python benchmarks/step_profile.py mnist-dcgan --adam-direct-pairs 300`). The update
is the same kernel call on the same tensors; with hooks, a closure or a profiler running, or
before the first step, torch's own step runs.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim import optimizer as torch_optimizer


def _flat_view(tensor: torch.Tensor) -> torch.Tensor:
    """A 1-D view of a channels_last tensor's memory (NHWC order)."""
    return tensor.permute(0, 2, 3, 1).view(-1)


class FusedAdam(torch.optim.Adam):
    """torch.optim.Adam(fused=True) without the discarded gradient copy of channels_last
    weights, and without its per-step Python once the state exists (module docstring); the same
    updates and state_dict as torch's."""

    def __init__(self, params, **kwargs):
        super().__init__(params, fused=True, **kwargs)

    def _init_group(self, group, params_with_grad, grads, exp_avgs, exp_avg_sqs,
                    max_exp_avg_sqs, state_steps):
        has_complex = super()._init_group(group, params_with_grad, grads, exp_avgs, exp_avg_sqs,
                                          max_exp_avg_sqs, state_steps)
        lists = [params_with_grad, grads, exp_avgs, exp_avg_sqs]
        if group["amsgrad"]:
            lists.append(max_exp_avg_sqs)
        _flatten_channels_last(lists)
        return has_complex

    def step(self, closure=None):
        """One Adam step: the fused kernel called directly (module docstring), else torch's."""
        if (closure is None and not torch._C._autograd._profiler_enabled()
                and not (self._optimizer_step_pre_hooks or self._optimizer_step_post_hooks
                         or torch_optimizer._global_optimizer_pre_hooks
                         or torch_optimizer._global_optimizer_post_hooks)):
            groups = self._direct_groups()
            if groups is not None:
                with torch.no_grad():
                    for group, lists in groups:
                        _fused_adam(group, *lists)
                return None
        return _torch_adam_step(self, closure)

    # Tells torch not to wrap this step in its profiler label and hooks: _torch_adam_step has them.
    step.hooked = True

    def _direct_groups(self):
        """Each group with its kernel's lists (params, grads, moments, steps), or None where
        torch's step must run: lazy state not yet made, a grad scaler's attributes, options the
        direct call does not pass, or tensors of several devices or dtypes."""
        if any(getattr(self, name, None) is not None for name in ("grad_scale", "found_inf")):
            return None
        groups, kinds = [], set()
        for group in self.param_groups:
            if (group["amsgrad"] or group["maximize"] or group["capturable"]
                    or group["differentiable"] or group["decoupled_weight_decay"]
                    or isinstance(group["lr"], torch.Tensor)):
                return None
            params, grads, exp_avgs, exp_avg_sqs, steps = lists = [], [], [], [], []
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state.get(param)
                if not state or param.grad.is_sparse or param.is_complex():
                    return None
                kinds.add((param.device, param.dtype))
                params.append(param)
                grads.append(param.grad)
                exp_avgs.append(state["exp_avg"])
                exp_avg_sqs.append(state["exp_avg_sq"])
                steps.append(state["step"])
            _flatten_channels_last(lists[:4])
            groups.append((group, lists))
        return groups if len(kinds) <= 1 else None


# torch's Adam.step in its profiler label and hooks, as torch wraps every optimizer's step (once:
# an Adam made before this import has already wrapped the class's step).
_torch_adam_step = torch.optim.Adam.step
if getattr(_torch_adam_step, "hooked", False):
    _torch_adam_step = _torch_adam_step.__wrapped__
_torch_adam_step = torch_optimizer.Optimizer.profile_hook_step(_torch_adam_step)


def _fused_adam(group: dict, params, grads, exp_avgs, exp_avg_sqs, steps) -> None:
    """What torch's _fused_adam does for one group of one device and dtype, without amsgrad."""
    beta1, beta2 = group["betas"]
    torch._foreach_add_(steps, 1)
    torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False,
                       lr=group["lr"], beta1=beta1, beta2=beta2,
                       weight_decay=group["weight_decay"], eps=group["eps"], maximize=False,
                       grad_scale=None, found_inf=None)


def _flatten_channels_last(lists: list[list[torch.Tensor]]) -> None:
    """Replace, in place, each channels_last 4D weight of lists[0] and its partners at the same
    index in the other lists (gradient, moments) by flat views, where all share its layout
    (they do after backward: autograd hands a weight its gradient in the weight's own layout)."""
    for index, param in enumerate(lists[0]):
        if (param.dim() == 4 and not param.is_contiguous()
                and param.is_contiguous(memory_format=torch.channels_last)
                and all(tensors[index].stride() == param.stride() for tensors in lists)):
            for tensors in lists:
                tensors[index] = _flat_view(tensors[index])


def make_optimizer(params: list[nn.Parameter], name: str, lr: float, momentum: float,
                   betas: list[float], fused: bool = False) -> torch.optim.Optimizer:
    """SGD with momentum or Adam; `fused` updates all weights in one kernel."""
    if name == "sgd":
        # fused=None is torch's own choice (its for-each or per-tensor loop), not "off".
        return torch.optim.SGD(params, lr=lr, momentum=momentum, fused=True if fused else None)
    if fused:
        return FusedAdam(params, lr=lr, betas=tuple(betas))
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas))
