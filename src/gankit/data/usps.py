"""USPS handwritten digits (7,291 train / 2,007 test, 16x16 greyscale) from `root/USPS/usps.h5`.

The file is the widely shared HDF5 layout: `train/data` float (7291, 256) and `train/target`
int (7291,), the same under `test/`, each row a 16x16 digit in [0, 1], row-major. (It is not the
LIBSVM `usps.bz2` that `torchvision.datasets.USPS` reads, so torchvision cannot read it.)

The dataset keeps the native 16x16 size, as uint8 (N, 1, 16, 16) like every other `ImageData`;
`resize_images` brings float images to 28x28 where a model made for MNIST needs them, so that
the data loader of the USPS classifier and its feature extractor resize in exactly the same way.
Reading needs h5py, which is imported only here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gankit.data.images import ImageData
from gankit.errors import GankitError

USPS_FILE = Path("USPS") / "usps.h5"
USPS_SPLITS = ("train", "test")
USPS_SIZE = 16
NUM_CLASSES = 10


def usps_path(root: str | Path) -> Path:
    """Where `load_usps` looks for the file: `root/USPS/usps.h5`."""
    return Path(root) / USPS_FILE


def load_usps(root: str | Path, split: str = "train") -> ImageData:
    """The USPS train or test split as uint8 (N, 1, 16, 16) images with int64 labels 0-9.

    Pixels in [0, 1] are scaled to 0..255 and rounded to nearest.

    Args:
        root: the data root, holding `USPS/usps.h5`.
        split: "train" (7,291 images) or "test" (2,007 images).

    Returns:
        An `ImageData` named "usps-<split>".

    Raises:
        GankitError: naming the file, if it is missing, is not HDF5, lacks the split's datasets,
            or holds data of the wrong shape or range; or if h5py is not installed.
    """
    if split not in USPS_SPLITS:
        raise GankitError(
            f"unknown USPS split {split!r} (expected one of {', '.join(USPS_SPLITS)})"
        )
    path = usps_path(root)
    if not path.is_file():
        raise GankitError(
            f"usps {split} split not found: looked for {path} (set --data-root or "
            f"$GANKIT_DATA_ROOT to a folder holding {USPS_FILE})"
        )
    pixels, labels = _read_split(path, split)
    if pixels.ndim != 2 or pixels.shape[1] != USPS_SIZE * USPS_SIZE:
        raise GankitError(
            f"{path}: {split}/data has shape {pixels.shape}, expected (N, {USPS_SIZE**2})"
        )
    if labels.shape != (len(pixels),):
        raise GankitError(
            f"{path}: {split}/target has shape {labels.shape}, expected ({len(pixels)},) to "
            f"match {split}/data {pixels.shape}"
        )
    if len(pixels) == 0:
        raise GankitError(f"{path}: {split}/data holds no images")
    if not np.isfinite(pixels).all() or pixels.min() < 0.0 or pixels.max() > 1.0:
        raise GankitError(
            f"{path}: {split}/data values must lie in [0, 1], got [{pixels.min()}, {pixels.max()}]"
        )
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise GankitError(
            f"{path}: {split}/target labels must lie in 0-{NUM_CLASSES - 1}, got "
            f"{labels.min()}-{labels.max()}"
        )
    images = np.round(pixels * 255.0).astype(np.uint8).reshape(-1, 1, USPS_SIZE, USPS_SIZE)
    return ImageData(
        torch.from_numpy(images),
        torch.from_numpy(labels.astype(np.int64)),
        name=f"usps-{split}",
    )


def _read_split(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """`split/data` as float64 and `split/target` as int64 numpy arrays, read whole."""
    try:
        import h5py
    except ImportError:
        raise GankitError(f"reading {path} needs h5py: pip install h5py") from None
    try:
        with h5py.File(path, "r") as handle:
            missing = [
                f"{split}/{key}" for key in ("data", "target") if f"{split}/{key}" not in handle
            ]
            if missing:
                raise GankitError(f"{path}: no dataset {', '.join(missing)} in the HDF5 file")
            pixels = np.asarray(handle[f"{split}/data"][()], dtype=np.float64)
            labels = np.asarray(handle[f"{split}/target"][()])
    except GankitError:
        raise
    except (OSError, ValueError, TypeError, KeyError) as exc:
        # h5py raises OSError for a file that is not HDF5 and ValueError/TypeError for a
        # dataset that is not numeric.
        message = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise GankitError(f"{path}: cannot read as USPS HDF5 ({message})") from None
    if not np.issubdtype(labels.dtype, np.integer):
        raise GankitError(f"{path}: {split}/target must hold integers, got {labels.dtype}")
    return pixels, labels.astype(np.int64)


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of float images to size x size, e.g. USPS 16x16 -> MNIST's 28x28.

    Corners are not aligned (`align_corners=False`, pixel centres map to pixel centres) and
    there is no antialiasing, as torchvision's `Resize` does for tensors when enlarging. Each
    output pixel is a convex combination of input pixels, so the range stays [-1, 1].

    Args:
        images: float (N, C, H, W) in [-1, 1].
        size: output height and width.

    Returns:
        float (N, C, size, size); the input itself when it already has that size.
    """
    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
