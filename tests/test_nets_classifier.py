"""DigitClassifier: shapes, the features as the penultimate layer, size, and that it can learn."""

from __future__ import annotations

import torch

from gankit.nets.classifier import DigitClassifier


def signed_images(n: int, channels: int = 1, seed: int = 0) -> torch.Tensor:
    """Random images in [-1, 1]."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, 28, 28, generator=generator) * 2 - 1


def test_logits_and_features_have_the_documented_shapes():
    net = DigitClassifier().eval()
    images = signed_images(5)
    assert net(images).shape == (5, 10)
    assert net.features(images).shape == (5, 128)


def test_widths_follow_the_constructor_arguments():
    net = DigitClassifier(in_channels=3, num_classes=7, feature_dim=32).eval()
    images = signed_images(4, channels=3)
    assert net(images).shape == (4, 7)
    assert net.features(images).shape == (4, 32)
    assert (net.in_channels, net.num_classes, net.feature_dim) == (3, 7, 32)


def test_features_are_the_input_of_the_last_layer():
    """In eval mode the logits are exactly the final linear layer applied to the features."""
    torch.manual_seed(0)
    net = DigitClassifier().eval()
    images = signed_images(6)
    features = net.features(images)
    torch.testing.assert_close(net.classify(features), net(images))
    assert (features >= 0).all(), "features come after the ReLU"
    assert features.abs().sum() > 0


def test_outputs_are_finite_at_the_ends_of_the_range():
    net = DigitClassifier().eval()
    images = torch.cat([torch.full((1, 1, 28, 28), -1.0), torch.ones(1, 1, 28, 28)])
    assert torch.isfinite(net(images)).all()


def test_dropout_acts_in_training_only():
    torch.manual_seed(0)
    net = DigitClassifier(dropout=0.5)
    images = signed_images(8)
    net.eval()
    torch.testing.assert_close(net(images), net(images))
    net.train()
    assert not torch.allclose(net(images), net(images))


def test_parameters_fit_under_one_megabyte_as_float32():
    """The shipped weights must stay small: about 200k float32 parameters."""
    count = sum(p.numel() for p in DigitClassifier().parameters())
    assert 150_000 < count < 250_000
    assert count * 4 < 1_000_000


def test_learns_to_separate_two_simple_classes():
    """A few Adam steps take it to perfect accuracy on bright-top vs bright-bottom images."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(32, 1, 28, 28, generator=generator) * 0.4 - 1
    labels = torch.arange(32) % 2
    images[labels == 0, :, :14] += 1.2
    images[labels == 1, :, 14:] += 1.2
    net = DigitClassifier(num_classes=2)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(15):
        loss = torch.nn.functional.cross_entropy(net(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    net.eval()
    with torch.no_grad():
        assert (net(images).argmax(1) == labels).all()
