"""Batch norm over stacked batches (gankit.nets.batchnorm): each part normalised by its own
statistics, as separate passes would be, and which nets a joint D batch would mix."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gankit.nets.batchnorm import PartwiseBatchNorm2d, batch_norm_parts, mixes_batch_statistics
from gankit.nets.dcgan import DCGANDiscriminator


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_parts_are_normalised_like_separate_passes_with_the_same_running_statistics():
    stacked, separate = PartwiseBatchNorm2d(3).double(), nn.BatchNorm2d(3).double()
    first, second = randn(4, 3, 5, 5) * 3 + 2, randn(4, 3, 5, 5, seed=1)  # unlike statistics
    expected = torch.cat([separate(first), separate(second)])
    with batch_norm_parts(stacked, 2):
        out = stacked(torch.cat([first, second]))
    assert torch.allclose(out, expected, atol=1e-12)
    # One batch norm over all eight images would give another answer.
    assert not torch.allclose(out, nn.BatchNorm2d(3).double()(torch.cat([first, second])))
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        assert torch.equal(getattr(stacked, name), getattr(separate, name))
    assert stacked.parts == 1  # plain batch norm again after the block


def test_parts_reset_after_an_error_and_an_uneven_batch_is_refused():
    layer = PartwiseBatchNorm2d(2)
    with pytest.raises(ValueError, match="a batch of 5 does not split into 2 equal parts"):
        with batch_norm_parts(nn.Sequential(layer), 2):
            layer(torch.randn(5, 2, 3, 3))
    assert layer.parts == 1


def test_dcgan_discriminator_keeps_its_state_dict_and_does_not_mix_statistics():
    discriminator = DCGANDiscriminator(image_shape=(1, 28, 28), width=8)
    layers = [m for m in discriminator.modules() if isinstance(m, nn.BatchNorm2d)]
    assert layers and all(isinstance(m, PartwiseBatchNorm2d) for m in layers)
    assert not mixes_batch_statistics(discriminator)
    assert mixes_batch_statistics(nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)))
    assert mixes_batch_statistics(nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)))
    assert not mixes_batch_statistics(nn.Sequential(nn.Linear(4, 4)))
    # The same keys as nn.BatchNorm2d: checkpoints from before still load.
    keys = set(nn.BatchNorm2d(16).state_dict())
    assert set(layers[0].state_dict()) == keys
