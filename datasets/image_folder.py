"""One sub-folder of images per class -> a fixed, seeded, stratified split, written once.

The split is a manifest (JSON) in the data directory, keyed by the split's settings, so every trial
of every study that uses this folder trains and tests on the same files. Every image is decoded once
when the manifest is made, so a corrupt or truncated file stops the study before any trial, named.

Paths in it are relative to the data directory, so a copy of the directory reads its own files; it
records each file's size and modification time, and the driver checks them before any trial, so a
copy that was emptied or changed, or files added since the split, are named instead of trained on.
A read-only data directory keeps its manifest under SPLITS_DIR_ENV (the driver sets it to a folder
of the storage path).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datasets.registry import DataError
from datasets.threads import in_threads

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}
SPLITS_DIR_ENV = "CUDA_RANDOMNESS_SPLITS_DIR"  # where manifests of read-only data directories live
MAX_PIXELS_ENV = "CUDA_RANDOMNESS_MAX_IMAGE_PIXELS"
# why: Pillow refuses images above 179 M pixels as possible decompression bombs; a mammogram at full
# resolution is about 30 M. 2^30 is OpenCV's own limit, which the trials' reader applies too.
MAX_IMAGE_PIXELS = int(os.environ.get(MAX_PIXELS_ENV, 2**30))
# Pillow modes the trials' reader turns into 8 bits correctly: 8-bit (grey, palette, colour, alpha) and 16-bit grey
PIL_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "I;16", "I;16L", "I;16B"}
MANIFEST_VERSION = 2  # 2: paths relative to the data directory, with sizes and modification times


@dataclass(frozen=True)
class FileSplit:
    paths: tuple[str, ...]  # absolute paths (the manifest keeps them relative to the data directory)
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
    """Files (relative to root) and labels; `class_dirs` maps each class to the sub-folders holding it."""
    paths, labels = [], []
    for label, (name, folders) in enumerate(class_dirs.items()):
        before = len(paths)
        for folder in folders:
            files = sorted(
                p
                for p in (root / folder).rglob("*")
                if p.suffix.lower() in EXTENSIONS
                and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(root).parts)
            )  # ._x.jpg: macOS metadata
            paths += [p.relative_to(root).as_posix() for p in files]
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


def _check(path: str) -> None:
    """Decode one image; raise DataError naming it if it cannot be read, or read correctly, as 8 bits."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataError(f"{path}: larger than {MAX_IMAGE_PIXELS:,} pixels; set {MAX_PIXELS_ENV} to allow it") from None
    except Exception as exc:  # PIL raises many types for broken files
        raise DataError(f"{path}: cannot be decoded as an image ({type(exc).__name__}: {exc})") from None
    if mode not in PIL_MODES:
        raise DataError(
            f"{path}: its pixels are {mode} (Pillow's mode: 32-bit integer or float); only 8- and 16-bit "
            "images are read correctly: convert it to 8 bits"
        ) from None


def verify(paths: list[str]) -> None:
    """Decode every image once; a file that cannot be decoded, or whose pixels the trials could
    not turn into 8 bits correctly (32-bit integer or float), stops here, named (the first such in
    `paths`). Pillow decodes outside the GIL, so threads share the work (3,000 noise JPEGs of 256x256
    on 2 cores: 1.37 s in one thread, 0.93 s in two)."""
    import warnings

    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    # why: the filter is process-wide, so it is set here, around the threads, not inside each one
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        for _ in in_threads(_check, paths):
            pass


def split(paths: list[str], labels: np.ndarray, test: float, val: float, seed: int) -> dict[str, list[int]]:
    """Stratified trainval/test, then train/val, both seeded (the reference study's was not)."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(paths))
    try:
        trainval, test_idx = train_test_split(index, test_size=test, stratify=labels, random_state=seed)
        train_idx, val_idx = train_test_split(trainval, test_size=val, stratify=labels[trainval], random_state=seed)
    except ValueError as exc:  # sklearn's word for too few images of a class to stratify
        counts = np.bincount(labels)
        raise DataError(
            f"{len(paths)} images ({', '.join(map(str, counts))} per class) are too few for a stratified "
            f"{1 - test:.0%}/{test:.0%} then {1 - val:.0%}/{val:.0%} split ({exc})"
        ) from None
    return {"train": sorted(train_idx.tolist()), "val": sorted(val_idx.tolist()), "test": sorted(test_idx.tolist())}


def write_json_atomically(path: Path, data: object) -> None:
    """Write to a temporary file, then rename: a crash never leaves half a manifest that later runs would trust."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def _stat(root: Path, relative: str) -> tuple[int, int] | None:
    try:
        st = (root / relative).stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _elsewhere(root: Path, name: str) -> Path | None:
    """The manifest's place for a data directory this process cannot write, if the driver gave one."""
    base = os.environ.get(SPLITS_DIR_ENV)
    if not base:
        return None
    return Path(base) / hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12] / name


def manifest_path(root: Path, class_dirs: dict[str, list[str]], test: float, val: float, seed: int) -> Path:
    """Where this split's manifest is, or would be written: the data directory, else SPLITS_DIR_ENV."""
    name = f".split-{hashlib.sha256(json.dumps([class_dirs, test, val, seed]).encode()).hexdigest()[:10]}.json"
    local, elsewhere = root / name, _elsewhere(root, name)
    if local.is_file() or elsewhere is None or not elsewhere.is_file():
        return local
    return elsewhere


def _read(manifest: Path) -> dict | None:
    """The manifest's contents; None for one an older version wrote (to be made again)."""
    try:
        data = json.loads(manifest.read_text())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if data.get("version") != MANIFEST_VERSION:
            return None
        for name in ("train", "val", "test"):
            for key in ("paths", "labels", "sizes", "mtimes"):
                data[name][key]  # noqa: B018 (a KeyError names what is missing)
        data["classes"]  # noqa: B018
    except (ValueError, KeyError, TypeError) as exc:
        reason = f"lacks {exc}" if isinstance(exc, KeyError) else str(exc)
        raise DataError(f"{manifest}: not a valid split manifest ({reason}); delete it to split again") from None
    return data


def _write(root: Path, manifest: Path, data: dict) -> Path:
    """Write the manifest in the data directory, or where the driver said if that is read-only."""
    try:
        write_json_atomically(manifest, data)
        return manifest
    except OSError as exc:
        elsewhere = _elsewhere(root, manifest.name)
        if elsewhere is None:
            raise DataError(f"{root}: cannot write the split manifest there ({exc.strerror or exc})") from None
    try:
        elsewhere.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomically(elsewhere, data)
    except OSError as exc:
        raise DataError(
            f"{root} is read-only and {elsewhere.parent}: cannot write the split manifest there "
            f"({exc.strerror or exc}); --storage-path chooses that place"
        ) from None
    print(f"split manifest: {elsewhere} ({root} is read-only)")
    return elsewhere


def check(root: Path, class_dirs: dict[str, list[str]], manifest: Path, data: dict) -> None:
    """Every listed file still has its size and modification time, and no image was added since."""
    problems = {"missing": [], "changed": []}
    listed = set()
    for name in ("train", "val", "test"):
        part = data[name]
        for relative, size, mtime in zip(part["paths"], part["sizes"], part["mtimes"]):
            listed.add(relative)
            now = _stat(root, relative)
            if now is None:
                problems["missing"].append(relative)
            elif now != (size, mtime):
                problems["changed"].append(relative)
    found, _ = scan(root, class_dirs) if not problems["missing"] else ([], None)
    problems["added"] = sorted(set(found) - listed)
    for kind, paths in problems.items():
        if paths:
            raise DataError(
                f"{manifest}: {len(paths)} file(s) {kind} since the split was made (first: {root / paths[0]}); "
                "delete the manifest to split again"
            )


def load_or_make(
    root: Path, class_dirs: dict[str, list[str]], test: float, val: float, seed: int, verify_files: bool = False
) -> FileSplits:
    """The manifest's split if it exists for these settings, else a new one (files verified first).
    verify_files: check every listed file against the manifest (the driver does, before Ray)."""
    manifest = manifest_path(root, class_dirs, test, val, seed)
    data = _read(manifest) if manifest.is_file() else None
    if data is None:
        paths, labels = scan(root, class_dirs)
        verify([str(root / p) for p in paths])
        parts = split(paths, labels, test, val, seed)
        stats = [_stat(root, p) for p in paths]
        data = {
            "version": MANIFEST_VERSION,
            "classes": list(class_dirs),
            "settings": {"test": test, "val": val, "seed": seed},
            **{
                name: {
                    "paths": [paths[i] for i in idx],
                    "labels": labels[idx].tolist(),
                    "sizes": [stats[i][0] for i in idx],
                    "mtimes": [stats[i][1] for i in idx],
                }
                for name, idx in parts.items()
            },
        }
        manifest = _write(root, manifest, data)
    elif verify_files:
        check(root, class_dirs, manifest, data)
    missing = [p for name in ("train", "val", "test") for p in data[name]["paths"][:1] if not (root / p).is_file()]
    if missing:
        raise DataError(f"{manifest}: lists {root / missing[0]}, which is gone; delete the manifest to split again")
    return FileSplits(
        *(
            FileSplit(tuple(str(root / p) for p in data[n]["paths"]), np.asarray(data[n]["labels"], dtype=np.int64))
            for n in ("train", "val", "test")
        ),
        classes=tuple(data["classes"]),
        in_chans=3,
    )
