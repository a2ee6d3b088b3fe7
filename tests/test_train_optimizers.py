"""gankit's FusedAdam is torch's fused Adam without its discarded gradient copies."""

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


def run(optimizer_class, steps: int = 3, **kwargs) -> tuple[list[torch.Tensor], dict]:
    params = weights(0)
    optimizer = optimizer_class(params, lr=1e-2, betas=(0.5, 0.999), **kwargs)
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        for param in params:
            # Gradients in their weight's layout, as autograd hands them over.
            param.grad = torch.empty_like(param).copy_(torch.randn(param.shape,
                                                                   generator=generator))
        optimizer.step()
    return params, optimizer.state_dict()


@pytest.mark.parametrize("amsgrad", [False, True])
def test_fused_adam_makes_torchs_fused_updates_bit_for_bit(amsgrad):
    ours, our_state = run(FusedAdam, amsgrad=amsgrad)
    theirs, their_state = run(torch.optim.Adam, fused=True, amsgrad=amsgrad)
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    # The same state, in the weights' shapes and layouts: checkpoints do not change.
    for index, state in our_state["state"].items():
        for key, value in state.items():
            assert torch.equal(value, their_state["state"][index][key])
            assert value.stride() == their_state["state"][index][key].stride()
    # And the per-tensor Adam's updates, to rounding.
    plain, _ = run(torch.optim.Adam, amsgrad=amsgrad)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(ours, plain, strict=True))


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
