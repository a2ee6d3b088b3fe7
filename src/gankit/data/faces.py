"""The Olivetti faces (AT&T/ORL, 64 x 64 grey): 400 images of 40 people, the limited-data case.

Read from `faces/olivetti/olivetti_faces.npz` under the data root (uint8 `images` (400, 64, 64),
`target` the subject id), as described in that folder's SOURCE.md. There is no download: the
set ships with the shared data (scikit-learn's `fetch_olivetti_faces` is the online source).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from gankit.data.images import ImageData
from gankit.errors import GankitError

OLIVETTI_FILE = Path("faces") / "olivetti" / "olivetti_faces.npz"


def load_olivetti(root: Path) -> ImageData:
    """All 400 faces as uint8 (400, 1, 64, 64), labels the subject ids 0..39.

    Raises:
        GankitError: naming the file when it is missing or not a readable archive of that shape.
    """
    path = Path(root) / OLIVETTI_FILE
    if not path.is_file():
        raise GankitError(f"Olivetti faces not found: {path} (put olivetti_faces.npz there, see "
                          "scikit-learn's fetch_olivetti_faces)")
    try:
        with np.load(path) as archive:
            images, target = archive["images"], archive["target"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise GankitError(f"{path}: not a readable faces archive ({error})") from None
    if images.dtype != np.uint8 or images.ndim != 3 or len(images) != len(target):
        raise GankitError(f"{path}: expected uint8 images (N, H, W) and N targets, got "
                          f"{images.dtype} {images.shape} and {target.shape}")
    return ImageData(torch.from_numpy(images).unsqueeze(1).contiguous(),
                     torch.from_numpy(target.astype(np.int64)), name="olivetti")
