"""USPS from usps.h5: the real file when present, pixel scaling, resizing, and bad files."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gankit.data.images import to_float
from gankit.data.usps import load_usps, resize_images, usps_path
from gankit.errors import GankitError

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_h5py = pytest.mark.skipif(
    importlib.util.find_spec("h5py") is None, reason="reading USPS needs h5py"
)
needs_real_usps = pytest.mark.skipif(
    not usps_path(SHARED_DATA).is_file(), reason=f"no {usps_path(SHARED_DATA)}"
)


def error_line(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message, f"message is not one line: {message!r}"
    return message


def write_usps(root: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    """A usps.h5 in the shared layout: split/data (N, 256) floats, split/target (N,) ints."""
    import h5py

    path = usps_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        for split, (data, target) in splits.items():
            handle.create_dataset(f"{split}/data", data=data)
            handle.create_dataset(f"{split}/target", data=target)
    return path


def small_split(n: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    data = rng.random((n, 256)).astype(np.float32)
    return data, (np.arange(n) % 10).astype(np.int32)


@needs_real_usps
@needs_h5py
def test_real_file_has_the_standard_split():
    train = load_usps(SHARED_DATA, "train")
    test = load_usps(SHARED_DATA, "test")
    assert (len(train), len(test)) == (7291, 2007)
    assert train.shape == test.shape == (1, 16, 16)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    assert (train.name, test.name) == ("usps-train", "usps-test")
    # The class counts of SOURCE.md: the standard split, labels 0-9 in order.
    counts = [1194, 1005, 731, 658, 652, 556, 664, 645, 542, 644]
    assert torch.bincount(train.labels, minlength=10).tolist() == counts
    assert test.labels.min() == 0 and test.labels.max() == 9
    # Digits are bright strokes on a dark ground that reach both ends of the range.
    assert train.images.min() == 0 and train.images.max() == 255
    assert train.images.float().mean() < 128


@needs_h5py
def test_pixels_scale_from_unit_range_to_bytes(tmp_path):
    data = np.zeros((2, 256), dtype=np.float32)
    data[0, :3] = [0.0, 0.2, 1.0]
    data[1, 17] = 0.5
    write_usps(tmp_path, {"train": (data, np.array([3, 7], dtype=np.int32))})
    loaded = load_usps(tmp_path, "train")
    assert loaded.images.shape == (2, 1, 16, 16)
    assert loaded.images[0, 0, 0, :3].tolist() == [0, 51, 255]
    assert loaded.images[1, 0, 1, 1] == 128  # row-major: index 17 is row 1, column 1
    assert loaded.labels.tolist() == [3, 7]


@needs_h5py
def test_splits_are_read_from_their_own_groups(tmp_path):
    write_usps(tmp_path, {"train": small_split(6), "test": small_split(3, seed=1)})
    assert len(load_usps(tmp_path, "train")) == 6
    assert len(load_usps(tmp_path, "test")) == 3


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(GankitError) as excinfo:
        load_usps(tmp_path, "train")
    assert str(usps_path(tmp_path)) in error_line(excinfo)


@needs_h5py
def test_file_that_is_not_hdf5_is_one_line_naming_it(tmp_path):
    path = usps_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(GankitError) as excinfo:
        load_usps(tmp_path, "train")
    assert str(path) in error_line(excinfo)


@needs_h5py
def test_missing_split_names_the_dataset(tmp_path):
    path = write_usps(tmp_path, {"train": small_split()})
    with pytest.raises(GankitError) as excinfo:
        load_usps(tmp_path, "test")
    message = error_line(excinfo)
    assert str(path) in message and "test/data" in message


@needs_h5py
@pytest.mark.parametrize(
    ("data", "target", "words"),
    [
        (np.zeros((3, 100), np.float32), np.zeros(3, np.int32), "(3, 100)"),
        (np.zeros((3, 256), np.float32), np.zeros(4, np.int32), "(4,)"),
        (np.full((3, 256), 2.0, np.float32), np.zeros(3, np.int32), "[0, 1]"),
        (np.zeros((3, 256), np.float32), np.array([0, 1, 10], np.int32), "0-10"),
        (np.zeros((3, 256), np.float32), np.zeros(3, np.float32), "integers"),
    ],
    ids=["row-length", "label-count", "pixel-range", "label-range", "label-dtype"],
)
def test_bad_contents_are_one_line_naming_the_file(tmp_path, data, target, words):
    path = write_usps(tmp_path, {"train": (data, target)})
    with pytest.raises(GankitError) as excinfo:
        load_usps(tmp_path, "train")
    message = error_line(excinfo)
    assert str(path) in message and words in message


def test_unknown_split_is_refused(tmp_path):
    with pytest.raises(GankitError, match="'valid'"):
        load_usps(tmp_path, "valid")


@needs_h5py
def test_missing_h5py_says_how_to_install_it(tmp_path, monkeypatch):
    write_usps(tmp_path, {"train": small_split()})
    monkeypatch.setitem(sys.modules, "h5py", None)  # makes `import h5py` raise ImportError
    with pytest.raises(GankitError, match="pip install h5py"):
        load_usps(tmp_path, "train")


def test_resize_keeps_range_constants_and_layout():
    images = torch.full((2, 1, 16, 16), -1.0)
    images[1] = 0.25
    resized = resize_images(images, 28)
    assert resized.shape == (2, 1, 28, 28)
    torch.testing.assert_close(resized[0], torch.full((1, 28, 28), -1.0))
    torch.testing.assert_close(resized[1], torch.full((1, 28, 28), 0.25))


def test_resize_is_bilinear_without_corner_alignment():
    """A left-to-right ramp stays a ramp; its ends move inward as half-pixel centres dictate."""
    ramp = torch.linspace(-1, 1, 16).expand(1, 1, 16, 16)
    resized = resize_images(ramp, 28)
    assert resized.min() >= -1 and resized.max() <= 1
    row = resized[0, 0, 5]
    assert (row.diff() >= 0).all()
    # Output pixel 0 samples input x = (0 + 0.5) * 16 / 28 - 0.5 < 0, clamped to pixel 0.
    assert row[0] == -1.0
    # Output pixel 14 samples x = 14.5 * 16 / 28 - 0.5 = 7.7857: 0.2143 of pixel 7 + 0.7857 of 8.
    expected = ramp[0, 0, 0, 7] * (1 - 0.7857143) + ramp[0, 0, 0, 8] * 0.7857143
    torch.testing.assert_close(row[14], expected)


def test_resize_returns_images_of_the_target_size_unchanged():
    images = to_float(torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8))
    assert resize_images(images, 28) is images
