"""evaluate() on images with the shipped MNIST extractor: floors, keys, caching, bad input."""

from __future__ import annotations

import pytest
import torch

import gankit
from conftest import TINY
from gankit.config import DataConfig
from gankit.data import build_dataset
from gankit.data.images import to_float, to_uint8
from gankit.data.root import resolve_data_root
from gankit.errors import GankitError
from gankit.eval.evaluate import evaluate

pytestmark = pytest.mark.skipif(not (resolve_data_root() / "MNIST" / "raw").is_dir(),
                                reason="MNIST is not under the data root")


def mnist_images(split: str, n: int, name: str = "mnist") -> torch.Tensor:
    return build_dataset(DataConfig(name=name, split=split)).first(n)


def test_fid_floor_of_mnist_train_against_test_and_against_fashion(tmp_path):
    train = mnist_images("train", 10000)
    floor = evaluate(train, "mnist:test", ["fid"], features="mnist", n=10000,
                     cache_dir=tmp_path)["fid/mnist-cnn/n10000"]
    fashion = mnist_images("test", 10000, "fashion-mnist")
    other = evaluate(fashion, "mnist:test", ["fid"], features="mnist", n=10000,
                     cache_dir=tmp_path)["fid/mnist-cnn/n10000"]
    print(f"FID mnist-cnn n=10000: MNIST train vs test {floor:.4f}, Fashion vs MNIST {other:.1f}")
    # Two disjoint 10k halves of the train split already give 1.57 with these features.
    assert 0 < floor < 5.0
    assert other > 100 * floor
    # The reference features were computed once and cached under the extractor's name.
    assert len(list((tmp_path / "mnist-cnn").glob("mnist-test-n10000-seed0-*.npy"))) == 1


def test_real_images_score_as_real_on_every_metric(tmp_path):
    train = mnist_images("train", 2000)
    results = evaluate(train, "mnist:test", ["fid", "kid", "pr", "dc", "cs"],
                       features="mnist", n=2000, cache_dir=tmp_path)
    assert set(results) == {f"{m}/mnist-cnn/n2000" for m in (
        "fid", "kid", "kid_std", "precision", "recall", "density", "coverage",
        "classifier_score")}
    fashion = evaluate(mnist_images("test", 2000, "fashion-mnist"), "mnist:test", ["kid"],
                       features="mnist", n=2000, cache_dir=tmp_path)
    # KID's scale follows the features' (cubic kernel): judge it against a wrong dataset.
    assert results["kid/mnist-cnn/n2000"] < fashion["kid/mnist-cnn/n2000"] / 100
    assert results["precision/mnist-cnn/n2000"] > 0.6 and results["recall/mnist-cnn/n2000"] > 0.6
    assert results["coverage/mnist-cnn/n2000"] > 0.9
    assert 9.0 < results["classifier_score/mnist-cnn/n2000"] <= 10.0


def test_a_run_folder_is_measured_through_its_generator(tmp_path):
    run = gankit.train("mnist-mlp", out=tmp_path / "run", **{**TINY, "train.steps": 4})
    results = evaluate(run, "mnist:test", ["fid", "cs"], features="mnist", n=300,
                       cache_dir=tmp_path / "cache")
    assert results["fid/mnist-cnn/n300"] > 10  # 4 steps of training: far from MNIST
    assert 1.0 <= results["classifier_score/mnist-cnn/n300"] <= 10.0


def test_bad_image_requests_are_one_line(tmp_path):
    with pytest.raises(GankitError, match=r"shape \(10, 1, 8, 8\)"):
        evaluate(torch.zeros(10, 1, 8, 8), "mnist:test", ["fid"], features="mnist", n=10)
    with pytest.raises(GankitError, match=r"shape \(10, 3, 28, 28\)"):
        evaluate(torch.zeros(10, 3, 28, 28), "mnist:test", ["fid"], features="mnist", n=10)
    with pytest.raises(GankitError, match="unknown feature extractor 'lenet'"):
        evaluate(torch.zeros(10, 1, 28, 28), "mnist:test", ["fid"], features="lenet", n=10)
    with pytest.raises(GankitError, match="n=20000 is larger than mnist:test"):
        evaluate(torch.zeros(20000, 1, 28, 28), "mnist:test", ["fid"], n=20000,
                 cache_dir=tmp_path)
    # A diverged generator's NaNs were a ValueError from the FID's statistics.
    with pytest.raises(GankitError, match="the source: samples contain NaN or inf"):
        evaluate(torch.full((10, 1, 28, 28), float("nan")), "mnist:test", ["fid"], n=10,
                 cache_dir=tmp_path)
    if not torch.cuda.is_available():  # was the driver's RuntimeError
        with pytest.raises(GankitError, match="device 'cuda': torch finds no usable CUDA"):
            evaluate(torch.zeros(10, 1, 28, 28), "mnist:test", ["fid"], n=10, device="cuda")


def test_numpy_and_uint8_sources_and_comma_separated_metrics_are_accepted(tmp_path):
    images = torch.rand(200, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    expected = evaluate(images, "mnist:test", ["fid", "pr"], n=200, cache_dir=tmp_path)
    assert evaluate(images.numpy(), "mnist:test", "fid,pr", n=200,
                    cache_dir=tmp_path) == pytest.approx(expected)
    # uint8 images are read as [0, 255] (they were refused as lying outside [-1, 1]).
    stored = to_uint8(images)
    assert evaluate(stored, "mnist:test", ["fid"], n=200, cache_dir=tmp_path) == pytest.approx(
        evaluate(to_float(stored), "mnist:test", ["fid"], n=200, cache_dir=tmp_path))


def test_label_accuracy_of_real_digits_against_their_own_and_shuffled_labels():
    data = build_dataset(DataConfig(name="mnist", split="test"))
    images, labels = to_float(data.images[:2000]), data.labels[:2000]
    right = evaluate(images, metrics=["label-acc"], n=2000, labels=labels)
    # The shipped classifier's test accuracy is 99.54%: that is what true labels must score.
    assert right["label_accuracy/mnist-cnn/n2000"] == pytest.approx(0.995, abs=0.006)
    shifted = evaluate(images, metrics=["label-acc"], n=2000, labels=(labels + 1) % 10)
    assert shifted["label_accuracy/mnist-cnn/n2000"] < 0.01
    with pytest.raises(GankitError, match="label-acc needs a conditional run"):
        evaluate(images, metrics=["label-acc"], n=2000)
