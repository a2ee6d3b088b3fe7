"""Training images from a folder of files (PNG, JPEG, BMP, WebP), decoded once into a cache.

`data.name=folder data.path=DIR` trains on the images in DIR. Class subfolders (DIR/cat/*.jpg,
DIR/dog/*.jpg, as torchvision's ImageFolder lays them out) give the labels, in sorted order;
a folder without subfolders is one class. With `data.size=S` each image is centre-cropped to a
square and resized to S x S (PIL's `ImageOps.fit`, Lanczos), so photos of any shape can feed a
DCGAN at 28, 32 or 64 px.

Decoding thousands of JPEGs takes longer than many training runs, so the decoded uint8 tensor
is written once to `~/.cache/gankit/folders/` and read back by every later run. Its name hashes
the folder, the settings and each file's path, size and modification time: changing, adding or
removing a file decodes the folder again. The cache is an .npz read with allow_pickle=False.
torchvision's ImageFolder lays folders out the same way but decodes every image again at every
access, which is what the cache avoids; PIL, which it uses too, does the decoding here.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from gankit.data.images import ImageData
from gankit.data.root import cache_root, resolve_data_root
from gankit.errors import GankitError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
GREY_MODES = ("L", "1", "I;16", "I;16B", "I;16L", "I", "F", "LA")


def find_folder(path: str | Path, data_root: str | Path | None = None) -> Path:
    """`data.path` as a folder: as given (absolute, or relative to the working directory), else
    relative to the data root.

    Raises:
        GankitError: naming the places looked at when neither is a folder.
    """
    if not str(path):
        raise GankitError("data.name=folder needs data.path=DIR, the folder of training images")
    given = Path(path).expanduser()
    if given.is_dir():
        return given.resolve()
    under_root = resolve_data_root(data_root) / given
    if not given.is_absolute() and under_root.is_dir():
        return under_root.resolve()
    looked = given if given.is_absolute() else f"{given.resolve()} or {under_root}"
    raise GankitError(f"data.path={str(path)!r}: no folder at {looked}")


def list_images(folder: Path) -> tuple[list[Path], list[int]]:
    """The image files under `folder` in a fixed order, and their labels.

    Raises:
        GankitError: when there are no images, or images beside class subfolders.
    """
    def is_image(path: Path) -> bool:
        return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()

    loose = sorted(p for p in folder.iterdir() if is_image(p))
    by_class = {}
    for subfolder in sorted(p for p in folder.iterdir() if p.is_dir()):
        found = sorted(p for p in subfolder.rglob("*") if is_image(p))
        if found:
            by_class[subfolder.name] = found
    if loose and by_class:
        raise GankitError(f"{folder}: holds images beside class subfolders "
                          f"({', '.join(list(by_class)[:3])}); move the images into a subfolder")
    if by_class:
        files = [file for found in by_class.values() for file in found]
        labels = [label for label, found in enumerate(by_class.values()) for _ in found]
        return files, labels
    if not loose:
        raise GankitError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return loose, [0] * len(loose)


def load_image_folder(path: str | Path, size: int = 0, channels: int = 0,
                      data_root: str | Path | None = None, progress: bool = True) -> ImageData:
    """The images of a folder as uint8 (N, C, S, S), decoded once and cached.

    Args:
        path: the folder (see `find_folder`).
        size: side of the square every image is cropped and resized to; 0 keeps the images'
            own size, which must then be the same for all.
        channels: 1 (grey) or 3 (RGB); 0 picks 1 when every image is grey, else 3.
        data_root: where a relative `path` is also looked for.
        progress: show a bar while decoding.

    Raises:
        GankitError: naming the folder or the file: no images, a file that cannot be decoded,
            or sizes that differ with size=0.
    """
    folder = find_folder(path, data_root)
    files, labels = list_images(folder)
    cache = _cache_path(folder, files, size, channels)
    images = _read_cache(cache, len(files))
    if images is None:
        images = decode_images(files, size, channels,
                               desc=f"decoding {folder.name}" if progress else None)
        _write_cache(cache, images)
    return ImageData(torch.from_numpy(images), torch.tensor(labels, dtype=torch.int64),
                     name=f"folder:{folder.name}")


def decode_images(files: list[Path], size: int = 0, channels: int = 0,
                  desc: str | None = None) -> np.ndarray:
    """Image files as one uint8 array (N, C, S, S); see `load_image_folder` for the arguments.

    Args:
        files: the image files, in the order wanted.
        desc: the progress bar's label (None: no bar).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    arrays = []
    for file in tqdm(files, desc=desc, unit="img", disable=desc is None, leave=False):
        try:
            with Image.open(file) as image:
                grey = image.mode in GREY_MODES
                if image.mode.startswith("I;16"):
                    # 16-bit grey: convert("L") would clip every value above 255 to white.
                    image = Image.fromarray((np.asarray(image) >> 8).astype(np.uint8))
                image = image.convert("L" if channels == 1 or (grey and channels == 0)
                                      else "RGB")
                if size:
                    image = ImageOps.fit(image, (size, size), Image.Resampling.LANCZOS)
                array = np.asarray(image)
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError,
                ValueError) as exc:
            raise GankitError(f"{file}: cannot decode image ({exc.__class__.__name__})") from None
        if not size:
            _check_side(file, array, files[0], arrays[0] if arrays else None)
        arrays.append(array)
    if any(a.ndim == 3 for a in arrays):  # some colour: grey images join as equal R, G, B
        arrays = [np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a for a in arrays]
    stacked = np.stack(arrays)
    stacked = stacked[:, None] if stacked.ndim == 3 else stacked.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(stacked)


def _check_side(file: Path, array: np.ndarray, first: Path, first_array: np.ndarray | None
                ) -> None:
    """Without data.size every image must be as large as the first."""
    if first_array is not None and first_array.shape[:2] != array.shape[:2]:
        raise GankitError(f"{file}: {array.shape[1]}x{array.shape[0]} px, unlike {first.name} "
                          f"({first_array.shape[1]}x{first_array.shape[0]}); set data.size=S to "
                          "crop and resize every image to S x S")


def _cache_path(folder: Path, files: list[Path], size: int, channels: int) -> Path:
    digest = hashlib.sha256(f"{folder}\n{size}\n{channels}\n".encode())
    for file in files:
        stat = file.stat()
        digest.update(f"{file.relative_to(folder)}\t{stat.st_size}\t{stat.st_mtime_ns}\n"
                      .encode())
    return cache_root().parent / "folders" / f"{folder.name}-{digest.hexdigest()[:16]}.npz"


def _read_cache(cache: Path, count: int) -> np.ndarray | None:
    """The `count` cached images, or None when there is no readable cache of them (it is then
    rebuilt)."""
    if not cache.is_file():
        return None
    try:
        with np.load(cache, allow_pickle=False) as archive:
            images = archive["images"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError):
        return None
    intact = images.dtype == np.uint8 and images.ndim == 4 and len(images) == count
    return images if intact else None


def _write_cache(cache: Path, images: np.ndarray) -> None:
    # Written under a temporary name and renamed: a killed run never leaves half a cache. A
    # cache that cannot be written (a read-only home) only costs the next run a decode.
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        staging = cache.with_name(f".{cache.stem}.{os.getpid()}.npz")
        np.savez(staging, images=images)
        os.replace(staging, cache)
    except OSError:
        pass
