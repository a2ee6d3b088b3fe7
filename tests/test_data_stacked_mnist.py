"""Stacked MNIST: independent uniform channels, modes 100 d_R + 10 d_G + d_B, a seeded fixed set,
fresh on-the-fly batches, an even spread over all 1,000 modes, the real MNIST files when present,
and use as the training loop's data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from conftest import tiny_config
from gankit.data.images import ImageData, load_idx_dataset, to_float
from gankit.data.root import resolve_data_root
from gankit.data.stacked_mnist import StackedMNIST, digits_to_modes
from gankit.errors import GankitError
from gankit.train.loop import Trainer

N_SOURCES = 100
# Source image i is filled with the value i and labelled i % 10 (ten of each digit, a balanced
# set), so every channel of a stacked image tells which source went into it.
SOURCE_LABELS = torch.arange(N_SOURCES) % 10
# Smallest p-value accepted from a goodness-of-fit test: a correct sampler fails it once in a
# thousand seeds, and the seeds here are fixed.
P_MIN = 1e-3


def fake_mnist(n: int = N_SOURCES) -> ImageData:
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 28, 28).clone()
    return ImageData(images, torch.arange(n) % 10, name="fake-mnist")


def source_indices(images: torch.Tensor) -> torch.Tensor:
    """(N, 3) source index of each channel, read off uint8 images that are constant per channel."""
    flat = images.flatten(2)
    assert torch.equal(flat.min(dim=2).values, flat.max(dim=2).values), "channel not constant"
    return flat[:, :, 0].to(torch.int64)


def decode_float(images: torch.Tensor) -> torch.Tensor:
    """Back from [-1, 1] to the uint8 values that were stacked."""
    return images.add(1).mul(127.5).round().to(torch.uint8)


def error_line(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message, f"message is not one line: {message!r}"
    return message


def test_digits_to_modes_reads_the_triple_as_a_three_digit_number():
    digits = torch.tensor([[0, 0, 0], [1, 2, 3], [9, 0, 4], [9, 9, 9]])
    assert digits_to_modes(digits).tolist() == [0, 123, 904, 999]
    with pytest.raises(ValueError, match=r"\(4, 2\)"):
        digits_to_modes(digits[:, :2])


def test_fixed_set_labels_are_the_modes_of_its_three_channels():
    data = StackedMNIST(fake_mnist(), size=2000, seed=3).build()
    assert isinstance(data, ImageData)
    assert data.images.dtype == torch.uint8 and data.images.shape == (2000, 3, 28, 28)
    assert data.labels.dtype == torch.int64
    digits = SOURCE_LABELS[source_indices(data.images)]
    expected = 100 * digits[:, 0] + 10 * digits[:, 1] + digits[:, 2]
    assert torch.equal(data.labels, expected)
    assert data.name == "stacked-fake-mnist" and data.shape == (3, 28, 28)


def test_channels_are_independent_uniform_draws_with_replacement():
    images, modes = StackedMNIST(fake_mnist()).draw(20000, torch.Generator().manual_seed(0))
    sources = source_indices(images)
    assert torch.equal(modes, digits_to_modes(SOURCE_LABELS[sources]))
    for channel in range(3):  # each channel uniform over the 100 sources: 200 expected each
        counts = torch.bincount(sources[:, channel], minlength=N_SOURCES).numpy()
        assert stats.chisquare(counts).pvalue > P_MIN
    for first, second in [(0, 1), (0, 2), (1, 2)]:  # no dependence between any two channels
        table = np.zeros((N_SOURCES, N_SOURCES))
        np.add.at(table, (sources[:, first].numpy(), sources[:, second].numpy()), 1)
        assert stats.chi2_contingency(table).pvalue > P_MIN
        # With replacement: the same source in both channels 1 time in 100 (200 of 20,000),
        # never (without replacement) nor always (one draw copied to all channels).
        same = int((sources[:, first] == sources[:, second]).sum())
        assert 140 < same < 260  # 200 +- 4.3 standard deviations


def test_fixed_set_is_reproducible_from_its_seed():
    mnist = fake_mnist()
    first = StackedMNIST(mnist, size=500, seed=7).build()
    again = StackedMNIST(mnist, size=500, seed=7).build()
    other = StackedMNIST(mnist, size=500, seed=8).build()
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    # Two independent sets of 500 triples over 100^3 share almost no rows.
    assert (first.images != other.images).flatten(1).any(dim=1).float().mean() > 0.99


def test_sample_gives_fresh_images_in_minus_one_to_one():
    stacked = StackedMNIST(fake_mnist())
    generator = torch.Generator().manual_seed(0)
    batch = stacked.sample(64, generator)
    assert batch.dtype == torch.float32 and batch.shape == (64, 3, 28, 28)
    assert batch.min() >= -1.0 and batch.max() <= 1.0
    assert batch.min() == -1.0  # source 0 (value 0) is among 192 draws from 100 sources
    sources = source_indices(decode_float(batch))
    assert sources.max() < N_SOURCES
    following = stacked.sample(64, generator)
    # Fresh triples at every call: two batches of 64 from 10^6 triples share nearly no rows.
    assert (batch != following).flatten(1).any(dim=1).float().mean() > 0.95
    same_seed = stacked.sample(64, torch.Generator().manual_seed(0))
    assert torch.equal(batch, same_seed)


def test_fixed_set_sample_draws_only_its_own_images():
    stacked = StackedMNIST(fake_mnist(), size=50, seed=1)
    fixed_rows = {tuple(row) for row in source_indices(stacked.build().images).tolist()}
    batch = stacked.sample(400, torch.Generator().manual_seed(2))
    drawn_rows = {tuple(row) for row in source_indices(decode_float(batch)).tolist()}
    assert drawn_rows <= fixed_rows and len(drawn_rows) > 40  # 400 draws reach most of 50


def test_first_is_a_fixed_picture_set():
    on_the_fly = StackedMNIST(fake_mnist(), seed=5)
    pictures = on_the_fly.first(16)
    assert pictures.shape == (16, 3, 28, 28) and pictures.dtype == torch.float32
    assert torch.equal(pictures, on_the_fly.first(16))
    assert not torch.equal(pictures, StackedMNIST(fake_mnist(), seed=6).first(16))
    fixed = StackedMNIST(fake_mnist(), size=100, seed=5)
    assert torch.equal(fixed.first(16), to_float(fixed.build().images[:16]))


def test_modes_of_fifty_thousand_triples_cover_all_1000_evenly():
    stacked = StackedMNIST(fake_mnist())
    _, modes = stacked.draw(50000, torch.Generator().manual_seed(11))
    counts = torch.bincount(modes, minlength=1000)
    assert len(counts) == 1000
    # 50 expected per mode; a mode stays empty with probability e^-50.
    assert int((counts > 0).sum()) == 1000
    assert stats.chisquare(counts.numpy()).pvalue > P_MIN


def test_an_unbalanced_source_set_gives_unbalanced_modes():
    # Modes follow the source set's digit frequencies: with 9 of 10 sources labelled 0, mode 0
    # holds 0.9^3 = 72.9% of the images. Stacked MNIST is uniform only because MNIST nearly is.
    images = torch.zeros(10, 1, 28, 28, dtype=torch.uint8)
    labels = torch.tensor([0] * 9 + [1])
    _, modes = StackedMNIST(ImageData(images, labels, "skewed")).draw(
        20000, torch.Generator().manual_seed(0)
    )
    assert float((modes == 0).float().mean()) == pytest.approx(0.729, abs=0.015)
    assert set(modes.unique().tolist()) <= {0, 1, 10, 11, 100, 101, 110, 111}


def test_bad_source_sets_and_sizes_raise_one_line_errors():
    rgb = ImageData(torch.zeros(4, 3, 28, 28, dtype=torch.uint8), torch.zeros(4), "rgb")
    with pytest.raises(GankitError) as excinfo:
        StackedMNIST(rgb)
    assert "(4, 3, 28, 28)" in error_line(excinfo)
    empty = ImageData(torch.zeros(0, 1, 28, 28, dtype=torch.uint8), torch.zeros(0), "empty")
    with pytest.raises(GankitError, match=r"\(0, 1, 28, 28\)"):
        StackedMNIST(empty)
    twelve_classes = ImageData(
        torch.zeros(12, 1, 28, 28, dtype=torch.uint8), torch.arange(12), "letters"
    )
    with pytest.raises(GankitError) as excinfo:
        StackedMNIST(twelve_classes)
    assert "from 0 to 11" in error_line(excinfo)
    short = ImageData(torch.zeros(5, 1, 28, 28, dtype=torch.uint8), torch.zeros(3), "short")
    with pytest.raises(GankitError, match=r"\(3,\) do not match 5"):
        StackedMNIST(short)
    for size in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match=f"got {size!r}"):
            StackedMNIST(fake_mnist(), size=size)
    with pytest.raises(ValueError, match="size=N"):
        StackedMNIST(fake_mnist()).build()


def test_trains_in_the_loop_like_any_image_set(tmp_path):
    stacked = StackedMNIST(fake_mnist())
    config = tiny_config("digits-mlp", **{"train.steps": 2, "log.sample_every": 2})
    trainer = Trainer(config, tmp_path / "run", stacked)
    trainer.fit()
    assert trainer.objective.generator(trainer.fixed_latent[:2]).shape == (2, 3, 28, 28)
    assert (tmp_path / "run" / "samples.png").is_file()
    assert (tmp_path / "run" / "real.png").is_file()
    assert (
        "stacked-fake-mnist, samples of shape (3, 28, 28)"
        in (tmp_path / "run" / "report.md").read_text()
    )


MNIST_ROOT = resolve_data_root()
HAS_MNIST = (MNIST_ROOT / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").is_file()


@pytest.mark.skipif(not HAS_MNIST, reason=f"MNIST not found under {MNIST_ROOT}/MNIST/raw")
def test_real_stacked_mnist_modes_match_the_labels_of_its_digits():
    mnist = load_idx_dataset("mnist", MNIST_ROOT)
    data = StackedMNIST(mnist, size=1000, seed=0).build()
    # Find each channel's digit among the 60,000 by its bytes; the label found there is the
    # truth to check the mode against, independent of how StackedMNIST indexes.
    label_of = {}
    for image, label in zip(mnist.images.numpy(), mnist.labels.tolist(), strict=True):
        label_of.setdefault(image.tobytes(), set()).add(label)
    digits = torch.zeros(1000, 3, dtype=torch.int64)
    for row, image in enumerate(data.images.numpy()):
        for channel in range(3):
            labels = label_of[image[channel].tobytes()]
            assert len(labels) == 1, "a digit image carries two labels in MNIST"
            digits[row, channel] = next(iter(labels))
    assert torch.equal(data.labels, 100 * digits[:, 0] + 10 * digits[:, 1] + digits[:, 2])
    # 1,000 draws over 1,000 near-even modes reach 1000 (1 - 1/e) = 632 +- 10 of them.
    assert len(data.labels.unique()) > 590
