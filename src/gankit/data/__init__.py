"""Real data for the game: toy distributions that know their density, and image sets in memory."""

from __future__ import annotations

from pathlib import Path

import torch

from gankit.config import DataConfig
from gankit.data.faces import load_olivetti
from gankit.data.folder import load_image_folder
from gankit.data.images import IDX_FOLDERS, ImageData, load_digits, load_idx_dataset, pad_images
from gankit.data.root import resolve_data_root
from gankit.data.shifted import ShiftedDigits
from gankit.data.stacked_mnist import StackedMNIST
from gankit.data.toy import TOY_DATASETS, ToyDistribution
from gankit.data.usps import load_usps
from gankit.errors import GankitError


class PointData:
    """Samples from a toy distribution, with the same `sample` interface as `ImageData`."""

    kind = "points"

    def __init__(self, distribution: ToyDistribution):
        self.distribution = distribution
        self.name = distribution.name

    @property
    def shape(self) -> tuple[int]:
        return (self.distribution.dim,)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.distribution.sample(n, generator)


def build_dataset(config: DataConfig, data_root: str | Path | None = None,
                  progress: bool = True
                  ) -> ImageData | PointData | StackedMNIST | ShiftedDigits:
    """The dataset a run config names, read from the resolved data root when it needs files.

    With `config.pad` > 0 every image gets that many pixels of background on each side, once,
    in the uint8 tensor held in memory (e.g. pad 2: 28-px Fashion-MNIST at 32 px). `progress`
    shows a bar while an image folder is decoded.
    """
    data = _load(config, data_root, progress)
    if config.pad:
        if not isinstance(data, ImageData):
            raise GankitError(f"data.pad={config.pad} needs an image dataset held in memory; "
                              f"{config.name!r} is not one")
        # In place: every build loads its own ImageData, so no other user sees the padding.
        data.images = pad_images(data.images, config.pad)
    return data


def _load(config: DataConfig, data_root: str | Path | None, progress: bool
          ) -> ImageData | PointData | StackedMNIST | ShiftedDigits:
    """The dataset `config.name` names, as stored (no padding)."""
    if config.name in TOY_DATASETS:
        return PointData(TOY_DATASETS[config.name]())
    if config.name == "digits":
        return load_digits(config.split)
    if config.name == "stacked-mnist":
        # Fresh triples every batch: the 1,000-mode distribution itself, not a fixed sample.
        return StackedMNIST(load_idx_dataset("mnist", resolve_data_root(data_root), config.split))
    if config.name == "shifted-mnist":
        return ShiftedDigits(load_idx_dataset("mnist", resolve_data_root(data_root), config.split))
    if config.name == "olivetti":
        return load_olivetti(resolve_data_root(data_root))
    if config.name == "usps":
        return load_usps(resolve_data_root(data_root), config.split)
    if config.name == "folder":
        return load_image_folder(config.path, config.size, config.channels, data_root,
                                 progress)
    if config.name in IDX_FOLDERS:
        return load_idx_dataset(config.name, resolve_data_root(data_root), config.split)
    raise ValueError(f"unknown dataset {config.name!r}")  # config validation stops this first


__all__ = ["ImageData", "PointData", "ShiftedDigits", "StackedMNIST", "ToyDistribution",
           "build_dataset", "resolve_data_root"]
