"""Name -> dataset reader, and the arrays every reader returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType

import numpy as np


class DataError(Exception):
    """Data that is missing or malformed; its message is one line naming the path or field."""


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8, N x C x H x W
    labels: np.ndarray  # int64, N

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or len(self.images) != len(self.labels):
            raise ValueError("Split wants uint8 N x C x H x W images and one label per image")


@dataclass(frozen=True)
class ImageSplits:
    train: Split
    val: Split | None  # None where the preset, like the paper's CIFAR-10, has no validation split
    test: Split
    classes: tuple[str, ...]

    @property
    def in_chans(self) -> int:
        return int(self.train.images.shape[1])


def _modules() -> dict[str, ModuleType]:
    from datasets import cbis, cifar10, digits, folder, sdnet

    return {"digits": digits, "cifar10": cifar10, "sdnet": sdnet, "cbis": cbis, "folder": folder}


DATASETS = ("digits", "cifar10", "sdnet", "cbis", "folder")
STREAMED = ("sdnet", "cbis", "folder")  # read from image files through workers (FileSplits), not held in memory


def reader_options(name: str, config: Mapping[str, object]) -> dict:
    """The options a trial's settings give its reader (only CBIS-DDSM has one)."""
    return {"drop_benign_without_callback": bool(config["drop_benign_without_callback"])} if name == "cbis" else {}


def get_dataset(name: str) -> ModuleType:
    """The reader module for `name`: it has prepare(data_dir) and load(data_dir) -> ImageSplits
    (held in memory) or image_folder.FileSplits (streamed from files)."""
    modules = _modules()
    if name not in modules:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return modules[name]
