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

PIPELINES = ("none", "flip", "sdnet")


def build(name: str, size: int) -> A.Compose:
    """`size` x `size` output; `name`: none (resize only), flip, or the reference study's SDNET set."""
    resize = [A.Resize(size, size)] if size else []
    if name == "none":
        steps = []
    elif name == "flip":
        steps = [A.HorizontalFlip(p=0.5)]
    elif name == "sdnet":  # flips, sharpness, autocontrast, grayscale, rotation up to 45 degrees
        steps = [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5), A.Sharpen(p=0.5), A.AutoContrast(p=0.5),
                 A.ToGray(num_output_channels=3, p=0.2), A.Rotate(limit=45, p=0.5)]
    else:
        raise ValueError(f"unknown augmentation {name!r}; known: {', '.join(PIPELINES)}")
    return A.Compose(resize + steps)


def example_seed(seed: int, epoch: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])
