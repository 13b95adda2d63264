"""`--dataset folder:PATH`: any data set of one sub-folder of images per class (a user's own)."""

from __future__ import annotations

from pathlib import Path

from datasets.image_folder import FileSplits, class_folders, load_or_make

SPLIT = {"test": 0.1, "val": 0.2, "seed": 0}  # 90/10 trainval/test, then 80/20 train/val, as for SDNET


def prepare(data_dir: Path) -> None:
    """Check the layout and decode every image once, writing the split manifest."""
    load(data_dir, verify_files=True)


def load(data_dir: Path, verify_files: bool = False) -> FileSplits:
    """The split; verify_files: check every file against the manifest (the driver's prepare does)."""
    return load_or_make(data_dir, class_folders(data_dir), **SPLIT, verify_files=verify_files)


def num_classes(data_dir: Path) -> int:
    return len(class_folders(data_dir))
