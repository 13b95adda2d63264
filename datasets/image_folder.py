"""One sub-folder of images per class -> a fixed, seeded, stratified split, written once.

The split is a manifest (JSON) in the data directory, keyed by the split's settings, so every trial
of every study that uses this folder trains and tests on the same files. Every image is decoded once
when the manifest is made, so a corrupt or truncated file stops the study before any trial, named.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datasets.registry import DataError

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}


@dataclass(frozen=True)
class FileSplit:
    paths: tuple[str, ...]  # absolute paths
    labels: np.ndarray  # int64


@dataclass(frozen=True)
class FileSplits:
    """Like ImageSplits, for data sets too large to hold in memory: files, read as they stream."""

    train: FileSplit
    val: FileSplit
    test: FileSplit
    classes: tuple[str, ...]
    in_chans: int  # every file is read as RGB


def scan(root: Path, class_dirs: dict[str, list[str]]) -> tuple[list[str], np.ndarray]:
    """Files and labels; `class_dirs` maps each class to the sub-folders (relative to root) holding it."""
    paths, labels = [], []
    for label, (name, folders) in enumerate(class_dirs.items()):
        before = len(paths)
        for folder in folders:
            files = sorted(p for p in (root / folder).rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
            paths += [str(p.resolve()) for p in files]
            labels += [label] * len(files)
        if len(paths) == before:
            raise DataError(f"{root}: no images for class {name!r} in {', '.join(str(root / f) for f in folders)}")
    return paths, np.asarray(labels, dtype=np.int64)


def class_folders(root: Path) -> dict[str, list[str]]:
    """The plain layout: every sub-folder is a class, in sorted order."""
    if not root.is_dir():
        raise DataError(f"{root}: no such directory")
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(folders) < 2:
        raise DataError(f"{root}: needs one sub-folder of images per class, found {len(folders)} sub-folder(s)")
    return {name: [name] for name in folders}


def verify(paths: list[str]) -> None:
    """Decode every image once; a file that cannot be decoded stops here, named."""
    from PIL import Image

    for path in paths:
        try:
            with Image.open(path) as image:
                image.load()
        except Exception as exc:  # PIL raises many types for broken files
            raise DataError(f"{path}: cannot be decoded as an image ({type(exc).__name__}: {exc})") from None


def split(paths: list[str], labels: np.ndarray, test: float, val: float, seed: int) -> dict[str, list[int]]:
    """Stratified trainval/test, then train/val, both seeded (the reference study's was not)."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(paths))
    trainval, test_idx = train_test_split(index, test_size=test, stratify=labels, random_state=seed)
    train_idx, val_idx = train_test_split(trainval, test_size=val, stratify=labels[trainval], random_state=seed)
    return {"train": sorted(train_idx.tolist()), "val": sorted(val_idx.tolist()), "test": sorted(test_idx.tolist())}


def write_json_atomically(path: Path, data: object) -> None:
    """Write to a temporary file, then rename: a crash never leaves half a manifest that later runs would trust."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def load_or_make(root: Path, class_dirs: dict[str, list[str]], test: float, val: float, seed: int) -> FileSplits:
    """The manifest's split if it exists for these settings, else a new one (files verified first)."""
    key = hashlib.sha256(json.dumps([class_dirs, test, val, seed]).encode()).hexdigest()[:10]
    manifest = root / f".split-{key}.json"
    if manifest.is_file():
        data = json.loads(manifest.read_text())
    else:
        paths, labels = scan(root, class_dirs)
        verify(paths)
        parts = split(paths, labels, test, val, seed)
        data = {"classes": list(class_dirs), "settings": {"test": test, "val": val, "seed": seed},
                **{name: {"paths": [paths[i] for i in idx], "labels": labels[idx].tolist()} for name, idx in parts.items()}}
        write_json_atomically(manifest, data)
    missing = [p for name in ("train", "val", "test") for p in data[name]["paths"][:1] if not Path(p).is_file()]
    if missing:
        raise DataError(f"{manifest}: lists {missing[0]}, which is gone; delete the manifest to split again")
    return FileSplits(*(FileSplit(tuple(data[n]["paths"]), np.asarray(data[n]["labels"], dtype=np.int64)) for n in ("train", "val", "test")),
                      classes=tuple(data["classes"]), in_chans=3)
