"""CIFAR-10 in its official `cifar-10-batches-py` layout (pickled batches, as torchvision reads it).

The files are read directly rather than through torchvision.datasets.CIFAR10, which refuses any
copy whose MD5 differs from the download (a copy rebuilt from images, say). They are pickles, as
the official format is: only point this at files you trust.
"""

from __future__ import annotations

import pickle
import socket
from pathlib import Path

import numpy as np

from datasets.download import leaves_no_empty_dirs
from datasets.registry import DataError, ImageSplits, Split

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
FILES = TRAIN_FILES + ("test_batch", "batches.meta")


def _missing(root: Path) -> list[str]:
    return [f for f in FILES if not (root / FOLDER / f).is_file()]


def prepare(data_dir: Path) -> None:
    """Make sure the batches are there and readable: download through torchvision if reachable,
    else one line; reading them once here (about a second) stops a bad file before Ray starts."""
    if not _missing(data_dir):
        load(data_dir)
        return
    from torchvision.datasets.utils import download_and_extract_archive

    archive = data_dir / Path(URL).name
    had_archive = archive.exists()
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)  # why: fail fast on a machine with no internet
    try:
        with leaves_no_empty_dirs(data_dir):
            download_and_extract_archive(URL, str(data_dir), md5=MD5)
    except Exception as exc:  # any network or disk failure ends in the same instruction
        if not had_archive:
            archive.unlink(missing_ok=True)  # why: leave no half-downloaded file behind
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        missing = _missing(data_dir)
        what = "has no CIFAR-10 batches" if len(missing) == len(FILES) else f"lacks {', '.join(missing)}"
        raise DataError(
            f"cifar10: {data_dir / FOLDER} {what} and the download failed ({reason}); "
            f"put data_batch_1..5, test_batch and batches.meta from {URL} there"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)
    if _missing(data_dir):
        raise DataError(f"cifar10: {data_dir / FOLDER} still lacks {', '.join(_missing(data_dir))} after download")
    load(data_dir)


def _unpickle(path: Path) -> dict:
    """The official files were pickled by Python 2 (str keys under latin1); copies written by
    Python 3 have bytes keys. Both are the same format."""
    with open(path, "rb") as f:
        raw = pickle.load(f, encoding="latin1")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _unpickle(path)
        data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch["labels"], dtype=np.int64)
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, ValueError) as exc:
        raise DataError(f"cifar10: cannot read {path}: {type(exc).__name__}: {exc}") from None
    if len(data) != len(labels) or labels.min() < 0 or labels.max() > 9:
        raise DataError(f"cifar10: {path} holds {len(data)} images and {len(labels)} labels in 0..9")
    return data, labels


def load(data_dir: Path) -> ImageSplits:
    root = data_dir / FOLDER
    if _missing(data_dir):
        raise DataError(f"cifar10: {root} lacks {', '.join(_missing(data_dir))}")
    parts = [_read_batch(root / f) for f in TRAIN_FILES]
    train = Split(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    test = Split(*_read_batch(root / "test_batch"))
    try:
        names = _unpickle(root / "batches.meta")["label_names"]
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, ValueError) as exc:
        raise DataError(f"cifar10: cannot read {root / 'batches.meta'}: {type(exc).__name__}: {exc}") from None
    classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    return ImageSplits(train, None, test, classes)
