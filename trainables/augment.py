"""Named albumentations pipelines for data sets streamed from files, each seeded per example.

Every draw of an example's augmentation comes from a seed made of (seed, epoch, example index), set
on the pipeline right before that example, each step drawing from a seed of its own (seed_pipeline):
the stream is the same for every repeat and mode and whatever worker process handles the example. A
step that costs the CPU far more than the GPU runs on the device instead (device_steps), from a seed
of its own made the same way.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # why: its import otherwise asks the network

import albumentations as A  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

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
    elif name == "cbis":  # flip, affine (15 deg, translate 0.1, scale 0.8-1.6, shear 25); then device_steps' noise
        steps = [
            A.HorizontalFlip(p=0.5),
            A.Affine(rotate=(-15, 15), translate_percent=(-0.1, 0.1), scale=(0.8, 1.6), shear=(-25, 25), p=1.0),
        ]
    else:
        raise ValueError(f"unknown augmentation {name!r}; known: {', '.join(PIPELINES)}")
    return A.Compose(resize + steps)


DeviceSteps = Callable[[torch.Tensor, Sequence[int]], torch.Tensor]  # (uint8 N x C x H x W, a seed per example)


def device_steps(name: str) -> DeviceSteps | None:
    """The pipeline's last steps, run on the batch once it is on the device. cbis: Gaussian noise
    of 0.005 of the pixel range (the reference study's), which albumentations drew on the CPU at
    0.11-0.14 s a full-size mammogram, 60% of a decoding worker's time (bench/RESULTS.md)."""
    return functools.partial(gaussian_noise, std=0.005 * 255) if name == "cbis" else None


def gaussian_noise(x: torch.Tensor, seeds: Sequence[int], std: float) -> torch.Tensor:
    """Per pixel and channel noise of `std` on uint8 images, each example's drawn from its own seed,
    applied as albumentations' GaussNoise applies it to uint8: truncated toward zero, saturated."""
    noisy = torch.empty_like(x)
    for k, seed in enumerate(seeds):
        generator = torch.Generator(x.device).manual_seed(seed)
        noise = torch.randn(x.shape[1:], generator=generator, device=x.device).mul_(std).trunc_()
        noisy[k] = noise.add_(x[k]).clamp_(0, 255).to(torch.uint8)
    return noisy


def seed_pipeline(pipeline: A.BaseCompose, seed: int) -> None:
    """Seed `pipeline` for one example, each of its steps from a seed of its own. Compose's
    set_random_seed hands every step the same seed: reseeded per example, every step then draws the
    same first number, and the sdnet pipeline's five steps of p=0.5 fired all together or not at all
    (3 of the 64 combinations of its six random steps occurred in 2,000 examples; 2026-12-01)."""
    pipeline.set_random_seed(seed)
    for position, step in enumerate(pipeline.transforms):
        if isinstance(step, A.BaseCompose):
            seed_pipeline(step, seed << 8 | position)
        else:
            step.set_random_seed(seed << 8 | position)


def example_seed(seed: int, epoch: int, index: int, part: int = 0) -> int:
    """The seed of example `index` in `epoch`; part 0 seeds its albumentations pipeline, part 1 its device steps."""
    return int(np.random.SeedSequence([seed, epoch, index, *([part] if part else [])]).generate_state(1)[0])
