"""scikit-learn's bundled 1,797 real 8x8 handwritten digits: the offline default.

It ships inside scikit-learn, so the whole pipeline runs anywhere with no download. Pixels are
0..16 in the original; they are scaled to 0..255 uint8 like every other data set here. The split
(60/20/20, stratified) uses a fixed seed, so every trial of every study sees the same split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datasets.registry import ImageSplits, Split

SPLIT_SEED = 0  # why: the study varies the training seed, never the split


def prepare(data_dir: Path) -> None:
    """Nothing to fetch: the data ships with scikit-learn."""


def load(data_dir: Path) -> ImageSplits:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = np.rint(bunch.images * (255 / 16)).astype(np.uint8)[:, None]  # N x 1 x 8 x 8
    labels = bunch.target.astype(np.int64)
    idx = np.arange(len(labels))
    trainval, test = train_test_split(idx, test_size=0.2, stratify=labels, random_state=SPLIT_SEED)
    train, val = train_test_split(trainval, test_size=0.25, stratify=labels[trainval], random_state=SPLIT_SEED)
    split = lambda i: Split(images[np.sort(i)], labels[np.sort(i)])  # noqa: E731
    return ImageSplits(split(train), split(val), split(test), tuple(str(c) for c in bunch.target_names))
