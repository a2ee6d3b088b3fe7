"""gankit's FusedAdam is torch's fused Adam without its discarded gradient copies and, after its
first step, without torch's per-step Python."""

from __future__ import annotations

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from gankit.train.optimizers import FusedAdam, make_optimizer


def weights(seed: int) -> list[torch.nn.Parameter]:
    """A channels_last 4D weight, a contiguous 4D one, a matrix and a bias."""
    generator = torch.Generator().manual_seed(seed)
    shapes = [(6, 5, 4, 4), (3, 2, 3, 3), (7, 9), (7,)]
    params = [torch.nn.Parameter(torch.randn(*shape, generator=generator)) for shape in shapes]
    params[0].data = params[0].data.contiguous(memory_format=torch.channels_last)
    return params


def run(optimizer_class, steps: int = 4, **kwargs) -> tuple[list[torch.Tensor], dict]:
    params = weights(0)
    optimizer = optimizer_class(params, lr=1e-2, betas=(0.5, 0.999), **kwargs)
    generator = torch.Generator().manual_seed(1)
    for step in range(steps):
        for index, param in enumerate(params):
            # Gradients in their weight's layout, as autograd hands them over; the bias has
            # none at the third step, and the learning rate falls after the second.
            param.grad = None if (step, index) == (2, 3) else torch.empty_like(param).copy_(
                torch.randn(param.shape, generator=generator))
        if step == 2:
            optimizer.param_groups[0]["lr"] = 4e-3
        optimizer.step()
    return params, optimizer.state_dict()


@pytest.mark.parametrize("options", [{}, {"amsgrad": True}, {"weight_decay": 0.1}])
def test_fused_adam_makes_torchs_fused_updates_bit_for_bit(options):
    ours, our_state = run(FusedAdam, **options)
    theirs, their_state = run(torch.optim.Adam, fused=True, **options)
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    # The same state, in the weights' shapes and layouts: checkpoints do not change.
    for index, state in our_state["state"].items():
        for key, value in state.items():
            assert torch.equal(value, their_state["state"][index][key])
            assert value.stride() == their_state["state"][index][key].stride()
    # And the per-tensor Adam's updates, to rounding.
    plain, _ = run(torch.optim.Adam, **options)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(ours, plain, strict=True))


def test_fused_adam_runs_torchs_step_only_until_its_state_exists(monkeypatch):
    groupings = []
    init_group = torch.optim.Adam._init_group
    monkeypatch.setattr(torch.optim.Adam, "_init_group",
                        lambda *args: groupings.append(1) or init_group(*args))
    run(FusedAdam)
    assert len(groupings) == 1  # the first of four steps, which makes the lazy state
    run(FusedAdam, amsgrad=True)  # an option the direct call does not pass: torch's step
    assert len(groupings) == 1 + 4


def test_fused_adam_keeps_torchs_hooks_and_profiler_label():
    params = weights(0)
    optimizer = FusedAdam(params, lr=1e-2)
    calls = []
    optimizer.register_step_pre_hook(lambda *args: calls.append("pre"))
    optimizer.register_step_post_hook(lambda *args: calls.append("post"))
    for _ in range(3):
        for param in params:
            param.grad = torch.ones_like(param)
        optimizer.step()
    assert calls == ["pre", "post"] * 3  # each once a step, with the state made or not
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        optimizer.step()
    assert any(event.name == "Optimizer.step#FusedAdam.step" for event in profiler.events())


def test_fused_adam_direct_step_is_one_kernel_call_without_copies():
    from torch.utils._python_dispatch import TorchDispatchMode

    class Calls(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.names = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.names.append(func.__name__)
            return func(*args, **(kwargs or {}))

    params = weights(0)
    optimizer = FusedAdam(params, lr=1e-2)
    for _ in range(2):  # the first makes the state, in torch's step
        for param in params:
            param.grad = torch.empty_like(param).fill_(1.0)
        with Calls() as calls:
            optimizer.step()
    # Besides the flat views of the channels_last weight, its gradient and moments: the step
    # counts' increment and the update, and no copy.
    kernels = [name for name in calls.names if not name.startswith(("permute.", "view."))]
    assert kernels == ["_foreach_add_.Scalar", "_fused_adam_.default"]


def clones_per_step(optimizer_class, **kwargs) -> int:
    params = weights(0)
    optimizer = optimizer_class(params, lr=1e-2, **kwargs)
    for param in params:
        param.grad = torch.ones_like(param)
    optimizer.step()  # the lazy state
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        optimizer.step()
    return sum(event.name == "aten::clone" for event in profiler.events())


def test_fused_adam_copies_no_gradient():
    # torch's copies the channels_last gradient (and throws the copy away); ours copies none.
    assert clones_per_step(torch.optim.Adam, fused=True) >= 1
    assert clones_per_step(FusedAdam) == 0


def test_make_optimizer_takes_fused_adam_only_when_asked():
    assert type(make_optimizer(weights(0), "adam", 1e-3, 0.0, [0.5, 0.999], True)) is FusedAdam
    plain = make_optimizer(weights(0), "adam", 1e-3, 0.0, [0.5, 0.999], False)
    assert type(plain) is torch.optim.Adam and not plain.param_groups[0]["fused"]
    sgd = make_optimizer(weights(0), "sgd", 1e-3, 0.9, [0.5, 0.999], True)
    assert type(sgd) is torch.optim.SGD and sgd.param_groups[0]["fused"]
