"""Name -> dataset reader, and the arrays every reader returns."""

from __future__ import annotations

import importlib
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


# Every reader, once: name -> (its module, whether it is streamed from image files through workers
# (FileSplits) rather than held in memory). A module has prepare(data_dir) and load(data_dir), and
# reader_options(config) where a trial's settings choose among its options. Modules are imported
# when used: a slot should not pay for pandas (cbis) unless it reads CBIS-DDSM.
READERS = {
    "digits": ("datasets.digits", False),
    "cifar10": ("datasets.cifar10", False),
    "sdnet": ("datasets.sdnet", True),
    "cbis": ("datasets.cbis", True),
    "folder": ("datasets.folder", True),
}
DATASETS = tuple(READERS)
STREAMED = tuple(name for name, (_, streamed) in READERS.items() if streamed)
BUNDLED = ("digits",)  # read from a package: their data directory is never read, so never part of a study's identity


def get_dataset(name: str) -> ModuleType:
    """The reader module for `name`: prepare(data_dir) and load(data_dir) -> ImageSplits (held in
    memory) or image_folder.FileSplits (streamed from files)."""
    if name not in READERS:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return importlib.import_module(READERS[name][0])


def reader_options(name: str, config: Mapping[str, object]) -> dict:
    """The options a trial's settings give its reader; {} for a reader that has none."""
    module = get_dataset(name)
    return module.reader_options(config) if hasattr(module, "reader_options") else {}
