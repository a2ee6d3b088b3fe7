"""The Olivetti faces: 400 images of 40 people, read from the shared archive; bad files named."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gankit.config import DataConfig
from gankit.data import build_dataset
from gankit.data.faces import OLIVETTI_FILE, load_olivetti
from gankit.data.root import resolve_data_root
from gankit.errors import GankitError


@pytest.mark.skipif(not (resolve_data_root() / OLIVETTI_FILE).is_file(),
                    reason="the Olivetti faces are not under the data root")
def test_olivetti_holds_ten_images_of_each_of_forty_people():
    faces = build_dataset(DataConfig(name="olivetti"))
    assert faces.images.shape == (400, 1, 64, 64) and faces.images.dtype == torch.uint8
    assert torch.equal(faces.labels.bincount(), torch.full((40,), 10))
    assert int(faces.images.max()) == 242  # SOURCE.md: pixel range 0-242
    batch = faces.sample(8, torch.Generator().manual_seed(0))
    assert batch.shape == (8, 1, 64, 64) and -1 <= batch.min() and batch.max() <= 1


def test_missing_or_corrupt_archive_is_one_line_naming_the_file(tmp_path):
    with pytest.raises(GankitError, match="olivetti_faces.npz"):
        load_olivetti(tmp_path)
    path = tmp_path / OLIVETTI_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an archive")
    with pytest.raises(GankitError, match=f"{path}: not a readable faces archive"):
        load_olivetti(tmp_path)
    np.savez(path, images=np.zeros((3, 64, 64), np.float32), target=np.zeros(3, np.int64))
    with pytest.raises(GankitError, match="expected uint8 images"):
        load_olivetti(tmp_path)
