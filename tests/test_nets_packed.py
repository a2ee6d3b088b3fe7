"""PacGAN packing: which samples share a decision, the penalties per pack, and the config."""

import pytest
import torch

from gankit.config import load_config
from gankit.errors import GankitError
from gankit.losses import gradient_penalty, r1_penalty
from gankit.nets import PackedDiscriminator, build_discriminator
from gankit.objectives import build_objective


def test_consecutive_samples_are_concatenated_along_channels():
    seen = []
    packed = PackedDiscriminator(lambda x: seen.append(x) or x.flatten(1).sum(1), pack=2)
    images = torch.arange(4 * 3 * 2 * 2, dtype=torch.float32).reshape(4, 3, 2, 2)
    logits = packed(images)
    assert logits.shape == (2,)
    assert seen[0].shape == (2, 6, 2, 2)
    assert torch.equal(seen[0][1, :3], images[2]) and torch.equal(seen[0][1, 3:], images[3])
    assert torch.allclose(logits, images.flatten(1).sum(1).reshape(2, 2).sum(1))


def test_a_batch_that_does_not_fill_whole_packs_is_refused():
    packed = PackedDiscriminator(lambda x: x.sum(1), pack=4)
    with pytest.raises(ValueError, match="multiple of 4 samples, got 6"):
        packed(torch.zeros(6, 2))


def test_pointwise_judges_a_pack_of_copies():
    weight = torch.tensor([1.0, -2.0, 3.0, 0.5])
    packed = PackedDiscriminator(lambda x: x @ weight, pack=2)
    points = torch.tensor([[1.0, 2.0], [0.0, -1.0], [3.0, 3.0]])
    expected = points @ (weight[:2] + weight[2:])
    assert torch.allclose(packed.pointwise(points), expected)


def test_penalties_take_one_gradient_per_pack():
    # D([x1, x2]) = w . [x1, x2]: the gradient of each pack is w itself, so the gradient penalty
    # is (|w| - 1)^2 and R1 is |w|^2 exactly; per sample they would be computed on halves of w.
    weight = torch.tensor([3.0, 0.0, 0.0, 4.0])
    packed = PackedDiscriminator(lambda x: x @ weight, pack=2)
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    assert gradient_penalty(packed, real, fake).item() == pytest.approx((5.0 - 1.0) ** 2)
    real.requires_grad_(True)
    assert r1_penalty(packed(real), real).item() == pytest.approx(25.0)


def test_pack_builds_a_discriminator_for_pack_times_the_channels():
    config = load_config("toy-grid", {"loss.pack": 4})
    objective = build_objective(config, (2,))
    assert isinstance(objective.discriminator, PackedDiscriminator)
    assert objective.discriminator(torch.zeros(16, 2)).shape == (4,)
    images = build_discriminator(load_config("mnist-dcgan").model, (1, 28, 28), pack=2)
    assert images.inner.net[0].in_channels == 2
    assert images(torch.zeros(4, 1, 28, 28)).shape == (2,)


@pytest.mark.parametrize("overrides, message", [
    ({"loss.pack": 3}, "train.batch_size=256 must be a multiple of loss.pack=3"),
    ({"loss.pack": 0}, "loss.pack=0 must be > 0"),
])
def test_bad_pack_values_are_refused_in_one_line(overrides, message):
    with pytest.raises(GankitError, match=message):
        load_config("toy-grid", overrides)


def test_pack_is_refused_for_conditional_objectives():
    with pytest.raises(GankitError, match="needs model.objective=gan, not 'projection'"):
        load_config("mnist-cgan", {"loss.pack": 2})
