"""Named albumentations pipelines for data sets streamed from files, each seeded per example.

Every draw of an example's augmentation comes from a seed made of (seed, epoch, example index), set
on the pipeline right before that example: the stream is the same for every repeat and mode and
whatever worker process handles the example.
"""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # why: its import otherwise asks the network

import albumentations as A  # noqa: E402
import numpy as np  # noqa: E402

from trainables.config import AUGMENTS  # noqa: E402

PIPELINES = AUGMENTS  # the names TrialConfig accepts; build() makes each


def build(name: str, size: tuple[int, int]) -> A.Compose:
    """(height, width) output ((0, 0): as read); `name`: none (resize only), flip, the reference
    study's SDNET set, or its CBIS-DDSM set."""
    resize = [A.Resize(*size)] if all(size) else []
    if name == "none":
        steps = []
    elif name == "flip":
        steps = [A.HorizontalFlip(p=0.5)]
    elif name == "sdnet":  # flips, sharpness, autocontrast, grayscale, rotation up to 45 degrees
        steps = [
            A.HorizontalFlip(p=0.5),
            A.VerticalFlip(p=0.5),
            A.Sharpen(p=0.5),
            A.AutoContrast(p=0.5),
            A.ToGray(num_output_channels=3, p=0.2),
            A.Rotate(limit=45, p=0.5),
        ]
    elif name == "cbis":  # flip, affine (15 deg, translate 0.1, scale 0.8-1.6, shear 25), Gaussian noise 0.005
        steps = [
            A.HorizontalFlip(p=0.5),
            A.Affine(rotate=(-15, 15), translate_percent=(-0.1, 0.1), scale=(0.8, 1.6), shear=(-25, 25), p=1.0),
            A.GaussNoise(std_range=(0.005, 0.005), p=1.0),
        ]
    else:
        raise ValueError(f"unknown augmentation {name!r}; known: {', '.join(PIPELINES)}")
    return A.Compose(resize + steps)


def example_seed(seed: int, epoch: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])
