"""Image datasets held in memory as uint8 tensors: MNIST, Fashion-MNIST and scikit-learn digits.

MNIST-style sets are read straight from the original `*-idx?-ubyte.gz` files in torchvision's
layout (`root/MNIST/raw/`). We parse the IDX files ourselves instead of calling
`torchvision.datasets.MNIST` because torchvision unpacks the archives into its root, and the
shared data root is read-only; the format is a 16-byte header and raw bytes.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from gankit.data.root import cache_root
from gankit.errors import GankitError

# torchvision's folder names and file names, so one root serves both libraries.
IDX_FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


class ImageData:
    """A labelled image set in memory as uint8 (N, C, H, W); batches come out in [-1, 1].

    Args:
        images: uint8 tensor (N, C, H, W).
        labels: int64 tensor (N,).
        name: the dataset's name, for reports.
    """

    kind = "images"

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, name: str):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise GankitError(f"{name}: expected uint8 images N x C x H x W, got "
                              f"{images.dtype} {tuple(images.shape)}")
        self.images = images
        self.labels = labels
        self.name = name

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images drawn uniformly with replacement (Algorithm 1's minibatch), in [-1, 1]."""
        index = torch.randint(len(self.images), (n,), generator=generator)
        return to_float(self.images[index])

    def sample_labeled(self, n: int, generator: torch.Generator | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """n (image, label) pairs drawn like `sample`, for conditional games."""
        index = torch.randint(len(self.images), (n,), generator=generator)
        return to_float(self.images[index]), self.labels[index]

    def first(self, n: int) -> torch.Tensor:
        """The first n images in [-1, 1], a fixed set for pictures."""
        return to_float(self.images[:n])


def pad_images(images: torch.Tensor, pad: int) -> torch.Tensor:
    """Add `pad` pixels of background (value 0: black, -1 after `to_float`) on each side.

    Args:
        images: (N, C, H, W), typically uint8.
        pad: pixels added on each of the four sides.

    Returns:
        (N, C, H + 2 pad, W + 2 pad), same dtype.
    """
    return torch.nn.functional.pad(images, (pad, pad, pad, pad), value=0)


def crop_padding(images: torch.Tensor, pad: int) -> torch.Tensor:
    """Undo `pad_images`: drop `pad` pixels on each side of (..., H, W) images.

    Args:
        images: (..., H, W) images; with pad 0 any tensor (points too) comes back as it is.
        pad: pixels to drop on each of the four sides.

    Returns:
        (..., H - 2 pad, W - 2 pad), a view.
    """
    if pad == 0:
        return images
    return images[..., pad:images.shape[-2] - pad, pad:images.shape[-1] - pad]


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return images.to(torch.float32) / 127.5 - 1.0


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255], rounding to nearest."""
    return images.detach().float().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def read_idx(path: Path) -> np.ndarray:
    """Read one gzipped IDX file (the MNIST format) into a numpy array.

    Raises:
        GankitError: naming the file, if it is not a valid gzipped IDX file.
    """
    try:
        with gzip.open(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as exc:
        raise GankitError(f"{path}: cannot read as gzip ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise GankitError(f"{path}: not an IDX file of unsigned bytes (bad magic number)")
    n_dims = raw[3]
    header = 4 + 4 * n_dims
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(n_dims))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise GankitError(f"{path}: truncated or corrupt IDX file ({len(raw)} bytes, "
                          f"expected {expected} for shape {shape})")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def idx_paths(root: Path, name: str, split: str) -> tuple[Path, Path]:
    folder = Path(root) / IDX_FOLDERS[name] / "raw"
    if split not in IDX_FILES:
        raise GankitError(f"{name} has no split {split!r}; choose from {', '.join(IDX_FILES)}")
    images, labels = IDX_FILES[split]
    return folder / images, folder / labels


def load_idx_dataset(name: str, root: Path, split: str = "train") -> ImageData:
    """MNIST or Fashion-MNIST from `root/<MNIST|FashionMNIST>/raw/*.gz`.

    When the files are missing from the per-user cache root, torchvision is asked to download
    them there (online only). Anywhere else, or offline, a missing file is one clear error.
    """
    image_path, label_path = idx_paths(root, name, split)
    missing = [p for p in (image_path, label_path) if not p.is_file()]
    if missing and Path(root) == cache_root():
        _download(name, Path(root))
        missing = [p for p in (image_path, label_path) if not p.is_file()]
    if missing:
        raise GankitError(f"{name} {split} split not found: looked for "
                          f"{', '.join(str(p) for p in missing)} (set --data-root or "
                          f"$GANKIT_DATA_ROOT to a folder holding {IDX_FOLDERS[name]}/raw/)")
    images = read_idx(image_path)
    labels = read_idx(label_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise GankitError(f"{image_path}: images {images.shape} do not match labels "
                          f"{labels.shape} in {label_path}")
    return ImageData(torch.from_numpy(images.copy()).unsqueeze(1),
                     torch.from_numpy(labels.astype(np.int64)), name=f"{name}-{split}")


def _download(name: str, root: Path) -> None:
    """Let torchvision fetch the archives into the cache root; offline this is one line."""
    from torchvision import datasets

    dataset_class = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST}[name]
    root.mkdir(parents=True, exist_ok=True)
    try:
        dataset_class(str(root), train=True, download=True)
        dataset_class(str(root), train=False, download=True)
    except Exception as exc:  # noqa: BLE001 - any network failure means the same thing here
        raise GankitError(f"{name} is not in {root} and could not be downloaded "
                          f"({exc.__class__.__name__}); set --data-root to a folder holding "
                          f"{IDX_FOLDERS[name]}/raw/*.gz") from None


def load_digits(split: str = "train") -> ImageData:
    """scikit-learn's 8x8 handwritten digits (1,797 images that ship with scikit-learn).

    Pixel values 0..16 are scaled to 0..255. The split holds out every fifth image for "test".
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    held_out = np.arange(len(images)) % 5 == 0
    keep = ~held_out if split == "train" else held_out
    return ImageData(torch.from_numpy(images[keep]).unsqueeze(1),
                     torch.from_numpy(bunch.target[keep].astype(np.int64)), name=f"digits-{split}")
