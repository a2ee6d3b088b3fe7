"""Image data: the IDX reader, MNIST-layout loading, the cache-root download path, scaling
between uint8 and [-1, 1], the real MNIST files when present, and scikit-learn digits."""

from __future__ import annotations

import gzip
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from gankit.config import DataConfig
from gankit.data import build_dataset, images
from gankit.data.images import (
    IDX_FILES,
    ImageData,
    idx_paths,
    load_digits,
    load_idx_dataset,
    read_idx,
    to_float,
    to_uint8,
)
from gankit.errors import GankitError

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def error_line(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message, f"message is not one line: {message!r}"
    return message


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes: magic 0x0000 08 <ndim>, big-endian dims, raw data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">I", 0x00000800 | array.ndim)
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as handle:
        handle.write(idx_bytes(array))
    return path


def fake_images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


def write_fake_mnist(root: Path, split: str = "train", n: int = 10, folder: str = "MNIST"):
    images_name, labels_name = IDX_FILES[split]
    pixels = fake_images(n, seed=1 if split == "train" else 2)
    labels = (np.arange(n) * 3 % 10).astype(np.uint8)
    write_idx(root / folder / "raw" / images_name, pixels)
    write_idx(root / folder / "raw" / labels_name, labels)
    return pixels, labels


# ---------------------------------------------------------------- read_idx


def test_idx_header_layout_is_what_we_think():
    raw = idx_bytes(np.zeros((2, 3, 4), dtype=np.uint8))
    assert raw[:4] == bytes([0, 0, 8, 3])
    assert raw[4:16] == bytes([0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4])
    assert len(raw) == 16 + 24


def test_read_idx_images_exactly(tmp_path):
    pixels = fake_images(7)
    pixels[0, 0, 0], pixels[-1, -1, -1] = 0, 255
    got = read_idx(write_idx(tmp_path / "images.gz", pixels))
    assert got.dtype == np.uint8
    assert got.shape == (7, 28, 28)
    np.testing.assert_array_equal(got, pixels)


def test_read_idx_labels_exactly(tmp_path):
    labels = np.array([5, 0, 4, 1, 9, 2, 1, 3, 1, 4, 255], dtype=np.uint8)
    path = write_idx(tmp_path / "labels.gz", labels)
    with gzip.open(path) as handle:
        assert handle.read(4) == bytes([0, 0, 8, 1])  # 0x00000801
    got = read_idx(path)
    assert got.shape == (11,)
    np.testing.assert_array_equal(got, labels)


def test_read_idx_non_square_and_big_dims(tmp_path):
    pixels = np.arange(2 * 300 * 5, dtype=np.int64).reshape(2, 300, 5).astype(np.uint8)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "x.gz", pixels)), pixels)


def test_read_idx_truncated_data(tmp_path):
    path = tmp_path / "short.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(idx_bytes(fake_images(3))[:-10])
    with pytest.raises(GankitError) as excinfo:
        read_idx(path)
    message = error_line(excinfo)
    assert str(path) in message
    assert "truncated" in message


def test_read_idx_extra_bytes(tmp_path):
    path = tmp_path / "long.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(idx_bytes(fake_images(3)) + b"\0")
    with pytest.raises(GankitError) as excinfo:
        read_idx(path)
    assert str(path) in error_line(excinfo)


def test_read_idx_truncated_gzip_stream(tmp_path):
    good = write_idx(tmp_path / "good.gz", fake_images(20))
    path = tmp_path / "cut.gz"
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(GankitError) as excinfo:
        read_idx(path)
    assert str(path) in error_line(excinfo)


@pytest.mark.parametrize("magic", [bytes([0, 0, 0x0D, 3]), bytes([1, 0, 8, 3]),
                                   bytes([0, 0, 0x09, 1]), b"\x1f\x8b"])
def test_read_idx_bad_magic(tmp_path, magic):
    path = tmp_path / "magic.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(magic + idx_bytes(np.zeros((2, 2), dtype=np.uint8))[len(magic):])
    with pytest.raises(GankitError) as excinfo:
        read_idx(path)
    message = error_line(excinfo)
    assert str(path) in message
    assert "magic" in message


def test_read_idx_not_gzip(tmp_path):
    path = tmp_path / "plain.gz"
    path.write_bytes(idx_bytes(fake_images(2)))  # the right bytes, but not compressed
    with pytest.raises(GankitError) as excinfo:
        read_idx(path)
    message = error_line(excinfo)
    assert str(path) in message
    assert "gzip" in message


def test_read_idx_missing_file(tmp_path):
    path = tmp_path / "absent.gz"
    with pytest.raises(GankitError) as excinfo:
        read_idx(path)
    assert str(path) in error_line(excinfo)


# ---------------------------------------------------------------- MNIST layout


def test_load_fake_mnist(tmp_path):
    pixels, labels = write_fake_mnist(tmp_path, "train", n=10)
    data = load_idx_dataset("mnist", root=tmp_path)
    assert isinstance(data, ImageData)
    assert data.kind == "images"
    assert data.name == "mnist-train"
    assert data.shape == (1, 28, 28)
    assert len(data) == 10
    assert data.images.dtype == torch.uint8
    assert data.images.shape == (10, 1, 28, 28)
    np.testing.assert_array_equal(data.images[:, 0].numpy(), pixels)
    assert data.labels.dtype == torch.int64
    assert data.labels.tolist() == labels.tolist()
    assert data.labels.tolist() == [0, 3, 6, 9, 2, 5, 8, 1, 4, 7]


def test_load_fake_test_split_and_fashion(tmp_path):
    pixels, labels = write_fake_mnist(tmp_path, "test", n=4)
    data = load_idx_dataset("mnist", root=tmp_path, split="test")
    assert data.name == "mnist-test" and len(data) == 4
    np.testing.assert_array_equal(data.images[:, 0].numpy(), pixels)
    write_fake_mnist(tmp_path, "train", n=6, folder="FashionMNIST")
    fashion = build_dataset(DataConfig(name="fashion-mnist"), data_root=tmp_path)
    assert fashion.name == "fashion-mnist-train" and len(fashion) == 6


def test_idx_paths_follow_torchvision_layout(tmp_path):
    assert idx_paths(tmp_path, "fashion-mnist", "test") == (
        tmp_path / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte.gz",
        tmp_path / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte.gz",
    )
    # e.g. `gankit eval RUN --reference mnist:val` (it raised a bare KeyError)
    with pytest.raises(GankitError, match="mnist has no split 'val'; choose from train, test"):
        idx_paths(tmp_path, "mnist", "val")


def test_mismatched_images_and_labels(tmp_path):
    images_name, labels_name = IDX_FILES["train"]
    write_idx(tmp_path / "MNIST" / "raw" / images_name, fake_images(5))
    write_idx(tmp_path / "MNIST" / "raw" / labels_name, np.zeros(4, dtype=np.uint8))
    with pytest.raises(GankitError) as excinfo:
        load_idx_dataset("mnist", root=tmp_path)
    message = error_line(excinfo)
    assert images_name in message and labels_name in message


def test_sample_is_in_range_and_reproducible(tmp_path):
    write_fake_mnist(tmp_path, "train", n=10)
    data = load_idx_dataset("mnist", root=tmp_path)
    before = torch.get_rng_state().clone()
    a = data.sample(32, torch.Generator().manual_seed(3))
    b = data.sample(32, torch.Generator().manual_seed(3))
    c = data.sample(32, torch.Generator().manual_seed(4))
    assert torch.equal(torch.get_rng_state(), before)
    assert a.shape == (32, 1, 28, 28)
    assert a.dtype == torch.float32
    assert a.min().item() >= -1.0 and a.max().item() <= 1.0
    assert a.min().item() < -0.9 and a.max().item() > 0.9  # random pixels span the range
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # Every sampled image is one of the stored ones, scaled.
    stored = to_float(data.images).reshape(10, -1)
    for image in a.reshape(32, -1):
        assert (stored == image).all(dim=1).any()


def test_first_is_the_first_images_scaled(tmp_path):
    pixels, _ = write_fake_mnist(tmp_path, "train", n=10)
    first = load_idx_dataset("mnist", root=tmp_path).first(3)
    expected = torch.from_numpy(pixels[:3].astype(np.float32) / 127.5 - 1.0).unsqueeze(1)
    assert torch.allclose(first, expected, atol=1e-6)


def test_to_float_and_to_uint8_round_trip_every_value():
    values = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    scaled = to_float(values)
    assert scaled.dtype == torch.float32
    assert scaled.min().item() == -1.0 and scaled.max().item() == 1.0
    assert scaled.flatten()[128].item() == pytest.approx(128 / 127.5 - 1, abs=1e-6)
    assert torch.equal(to_uint8(scaled), values)
    assert values.tolist() == torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16).tolist()


def test_to_uint8_clamps_and_rounds():
    got = to_uint8(torch.tensor([-3.0, -1.0, 0.0, 1.0, 5.0, 0.5 / 127.5 - 1 + 1e-4]))
    assert got.tolist() == [0, 0, 128, 255, 255, 1]  # 0.0 -> 127.5 rounds half to even: 128


def test_image_data_rejects_non_uint8(tmp_path):
    with pytest.raises(GankitError) as excinfo:
        ImageData(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.int64), name="floaty")
    message = error_line(excinfo)
    assert "floaty" in message and "uint8" in message


# ---------------------------------------------------------------- missing files and download


def test_missing_files_under_explicit_root_name_them_and_do_not_download(tmp_path, monkeypatch):
    def no_download(*args, **kwargs):
        pytest.fail("a download was attempted for an explicit data root")

    monkeypatch.setattr(images, "_download", no_download)
    with pytest.raises(GankitError) as excinfo:
        load_idx_dataset("mnist", root=tmp_path)
    message = error_line(excinfo)
    image_path, label_path = idx_paths(tmp_path, "mnist", "train")
    assert str(image_path) in message
    assert str(label_path) in message
    assert "MNIST/raw/" in message


def test_only_the_missing_file_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "_download", lambda *a: pytest.fail("download attempted"))
    write_fake_mnist(tmp_path, "train", n=3)
    image_path, label_path = idx_paths(tmp_path, "mnist", "train")
    label_path.unlink()
    with pytest.raises(GankitError) as excinfo:
        load_idx_dataset("mnist", root=tmp_path)
    message = error_line(excinfo)
    assert str(label_path) in message
    assert str(image_path) not in message


def test_cache_root_tries_to_download_and_reports_failure(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    def offline(root, train=True, download=False, **kwargs):
        calls.append((root, train, download))
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(images, "cache_root", lambda: tmp_path)
    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(GankitError) as excinfo:
        load_idx_dataset("mnist", root=tmp_path)
    message = error_line(excinfo)
    assert "could not be downloaded" in message
    assert str(tmp_path) in message
    assert "URLError" in message
    assert calls == [(str(tmp_path), True, True)]


def test_cache_root_download_that_fills_the_folder_is_used(tmp_path, monkeypatch):
    calls = []

    def fake_download(name, root):
        calls.append((name, root))
        write_fake_mnist(root, "train", n=5)

    monkeypatch.setattr(images, "cache_root", lambda: tmp_path)
    monkeypatch.setattr(images, "_download", fake_download)
    data = load_idx_dataset("mnist", root=tmp_path)
    assert calls == [("mnist", tmp_path)]
    assert len(data) == 5


# ---------------------------------------------------------------- the real files


@pytest.mark.skipif(not (SHARED_DATA / "MNIST" / "raw").is_dir(),
                    reason=f"real MNIST not present under {SHARED_DATA}")
def test_real_mnist(monkeypatch):
    monkeypatch.delenv("GANKIT_DATA_ROOT", raising=False)
    monkeypatch.chdir(SHARED_DATA.parent)  # ../shared/data beside the working directory
    train = build_dataset(DataConfig(name="mnist"))
    assert len(train) == 60_000
    assert train.shape == (1, 28, 28)
    assert train.labels[:5].tolist() == [5, 0, 4, 1, 9]
    assert torch.bincount(train.labels).tolist()[:2] == [5923, 6742]
    test = build_dataset(DataConfig(name="mnist", split="test"))
    assert len(test) == 10_000
    assert test.labels[:5].tolist() == [7, 2, 1, 0, 4]


@pytest.mark.skipif(not (SHARED_DATA / "FashionMNIST" / "raw").is_dir(),
                    reason=f"real Fashion-MNIST not present under {SHARED_DATA}")
def test_real_fashion_mnist():
    train = build_dataset(DataConfig(name="fashion-mnist"), data_root=SHARED_DATA)
    assert len(train) == 60_000
    assert train.shape == (1, 28, 28)
    assert torch.bincount(train.labels).tolist() == [6000] * 10


# ---------------------------------------------------------------- scikit-learn digits


def test_load_digits():
    train = load_digits("train")
    test = load_digits("test")
    assert len(train) + len(test) == 1797
    assert (len(train), len(test)) == (1437, 360)
    assert train.shape == test.shape == (1, 8, 8)
    assert train.name == "digits-train" and test.name == "digits-test"
    both = torch.cat([train.images, test.images])
    assert both.dtype == torch.uint8
    assert both.min().item() == 0 and both.max().item() == 255
    levels = {round(v * 255 / 16) for v in range(17)}
    assert set(torch.unique(both).tolist()) == levels
    labels = torch.cat([train.labels, test.labels])
    assert sorted(torch.unique(labels).tolist()) == list(range(10))


def test_digits_split_is_every_fifth_image():
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    test = load_digits("test")
    assert test.labels.tolist() == bunch.target[::5].tolist()
    expected = np.round(bunch.images[::5] * 255 / 16).astype(np.uint8)
    np.testing.assert_array_equal(test.images[:, 0].numpy(), expected)
    assert build_dataset(DataConfig(name="digits", split="test")).labels.tolist() == \
        test.labels.tolist()
