"""The seeded training stream: order and augmentation are a function of (seed, epoch) alone.

Every epoch's plan (the permutation and, per example, its crop offsets and flip) is drawn up
front from a NumPy generator keyed on (seed, epoch) and indexed by example, so the stream is
the same whatever the repeat, the mode, the number of DataLoader workers or where the work runs.
The images stay uint8 until they reach the device; crop and flip are exact integer copies, so the
GPU-resident path and the worker path give the same pixels bit for bit.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from trainables.determinism import seed_host


@dataclass(frozen=True)
class EpochPlan:
    order: np.ndarray  # int64 permutation of the training examples
    offsets: np.ndarray  # int64 N x 2 crop offsets (y, x) in [0, 2 * padding], by example index
    flips: np.ndarray  # bool N, by example index

    def digest_parts(self) -> tuple[np.ndarray, ...]:
        return self.order, self.offsets, self.flips


@dataclass(frozen=True)
class StreamSeeds:
    """The two seeds a training stream draws from: its order, and its augmentation (crops, flips,
    albumentations' draws). A trial's default passes its configuration's seed for both."""

    order: int
    augment: int


def epoch_plan(
    n: int, seeds: StreamSeeds, epoch: int, crop_padding: int, hflip: bool, alternate_flip: bool = False
) -> EpochPlan:
    # why: each a function of (its seed, epoch) alone, independent of repeat, mode and workers
    order = np.random.default_rng([seeds.order, epoch]).permutation(n).astype(np.int64)
    rng = np.random.default_rng([seeds.augment, epoch])
    # why: order and draws once came from this one generator, the draws after the permutation;
    # drawing it and dropping it keeps every study made before the streams were split bit-identical
    rng.permutation(n)
    offsets = rng.integers(0, 2 * crop_padding + 1, size=(n, 2), dtype=np.int64)
    if not hflip:
        flips = np.zeros(n, dtype=bool)
    elif alternate_flip:
        # why: after a random first epoch every image is seen mirrored and not in turn, so any
        # two consecutive epochs show both views (Jordan 2024, "alternating flip")
        flips = (np.random.default_rng([seeds.augment, 0]).random(n) < 0.5) ^ (epoch % 2 == 0)
    else:
        flips = rng.random(n) < 0.5
    return EpochPlan(order, offsets, flips)


def augment(images: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor | None, padding: int) -> torch.Tensor:
    """Random crop with zero padding and horizontal flip (None: no flips), batched, on whatever
    device holds the batch; pure tensor ops, so the host never waits for the GPU here."""
    b, c, h, w = images.shape
    if padding:
        padded = F.pad(images, (padding, padding, padding, padding))
        rows = (offsets[:, 0, None] + torch.arange(h, device=images.device))[:, None, :, None]
        cols = (offsets[:, 1, None] + torch.arange(w, device=images.device))[:, None, None, :]
        images = padded[
            torch.arange(b, device=images.device)[:, None, None, None],
            torch.arange(c, device=images.device)[None, :, None, None],
            rows,
            cols,
        ]
    if flips is not None:
        images = torch.where(flips[:, None, None, None], images.flip(3), images)
    return images


class _PlannedBatches(Dataset):
    """Item k is the k-th batch of the plan, augmented; used when DataLoader workers do the work."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        plan: EpochPlan,
        batch_size: int,
        padding: int,
        hflip: bool,
        drop_last: bool,
    ) -> None:
        self.images, self.labels, self.plan, self.batch_size = images, labels, plan, batch_size
        self.padding, self.hflip, self.drop_last = padding, hflip, drop_last

    def __len__(self) -> int:
        return batch_count(len(self.plan.order), self.batch_size, self.drop_last)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        idx = torch.from_numpy(self.plan.order[k * self.batch_size : (k + 1) * self.batch_size])
        flips = torch.from_numpy(self.plan.flips)[idx] if self.hflip else None
        x = augment(self.images[idx], torch.from_numpy(self.plan.offsets)[idx], flips, self.padding)
        return x, self.labels[idx], idx


def batch_count(n: int, batch_size: int, drop_last: bool) -> int:
    return n // batch_size if drop_last else -(-n // batch_size)


Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # uint8 images, labels, example indices, on the trial's device
HeldOut = Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]  # a held-out split's batches, fresh each call


class Stream(Protocol):
    """What a trial trains and evaluates from, the same calls whether the images are held in memory
    (TrainStream) or read from files (trainables.file_stream.FileStream); trainables.streams builds one."""

    def __len__(self) -> int: ...  # batches per epoch

    def plan(self, epoch: int) -> EpochPlan: ...  # the epoch's order and augmentation draws, for the data digest

    def augment_draws(self, epoch: int) -> tuple[np.ndarray, ...]: ...  # what the augmentation seed decides, digested

    def epoch(self, epoch: int) -> Iterator[Batch]: ...  # the epoch's batches, in plan(epoch)'s order

    def held_out(self, split, batch_size: int) -> HeldOut: ...  # noqa: ANN001 (a Split or a FileSplit)


class TrainStream:
    """Yields (uint8 images, labels, example indices) on `device`, one epoch at a time."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        *,
        batch_size: int,
        seeds: StreamSeeds,
        crop_padding: int,
        hflip: bool,
        num_workers: int,
        device: torch.device,
        alternate_flip: bool = False,
        drop_last: bool = False,
    ) -> None:
        self.batch_size, self.seeds, self.padding, self.hflip = batch_size, seeds, crop_padding, hflip
        self.alternate_flip, self.drop_last = alternate_flip, drop_last
        self.num_workers, self.device = num_workers, device
        # why: with no workers the whole uint8 set lives on the device and is augmented there
        home = device if num_workers == 0 else torch.device("cpu")
        self.images = torch.from_numpy(images).to(home)
        self.labels = torch.from_numpy(labels).to(home)
        self._plan: tuple[int, EpochPlan] | None = None

    def held_out(self, split, batch_size: int) -> HeldOut:  # noqa: ANN001 (a datasets Split)
        """A held-out split's fixed-order batches; its images stay where the training images live."""
        home = self.images.device
        images, labels = torch.from_numpy(split.images).to(home), torch.from_numpy(split.labels).to(home)
        return functools.partial(eval_batches, images, labels, batch_size, self.device)

    def __len__(self) -> int:
        return batch_count(len(self.labels), self.batch_size, self.drop_last)

    def plan(self, epoch: int) -> EpochPlan:
        if self._plan is None or self._plan[0] != epoch:  # why: the digest and the epoch ask for the same plan
            self._plan = (
                epoch,
                epoch_plan(len(self.labels), self.seeds, epoch, self.padding, self.hflip, self.alternate_flip),
            )
        return self._plan[1]

    def augment_draws(self, epoch: int) -> tuple[np.ndarray, ...]:
        plan = self.plan(epoch)
        return plan.offsets, plan.flips

    def epoch(self, epoch: int) -> Iterator[Batch]:
        plan = self.plan(epoch)
        if self.num_workers == 0:
            yield from self._on_device(plan)
        else:
            yield from self._from_workers(plan, epoch)

    def _on_device(self, plan: EpochPlan) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        order = torch.from_numpy(plan.order).to(self.device)
        offsets = torch.from_numpy(plan.offsets).to(self.device)
        flips = torch.from_numpy(plan.flips).to(self.device)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            idx = order[start : start + self.batch_size]
            yield (
                augment(self.images[idx], offsets[idx], flips[idx] if self.hflip else None, self.padding),
                self.labels[idx],
                idx,
            )

    def _from_workers(self, plan: EpochPlan, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        batches = _PlannedBatches(
            self.images, self.labels, plan, self.batch_size, self.padding, self.hflip, self.drop_last
        )
        yield from on_device(
            seeded_loader(
                batches,
                seed=self.seeds.augment,
                epoch=epoch,
                num_workers=self.num_workers,
                device=self.device,
                batch_size=None,
            ),
            self.device,
        )


def seeded_loader(
    dataset: Dataset, *, seed: int, epoch: int, num_workers: int, device: torch.device, **options: object
) -> DataLoader:
    """A DataLoader over `dataset` whose base seed and workers' seeds depend on (seed, epoch, worker)
    alone, so a library that draws from a global RNG inside a worker still draws the same numbers
    in every repeat. `options` are DataLoader's (batch_size, sampler, persistent_workers)."""
    return DataLoader(
        dataset,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch),
        worker_init_fn=functools.partial(_seed_worker, seed, epoch),
        **options,
    )


def on_device(loader: DataLoader, device: torch.device) -> Iterator[tuple[torch.Tensor, ...]]:
    """The loader's batches moved to `device` (asynchronously from pinned memory on a GPU)."""
    for batch in loader:
        yield tuple(t.to(device, non_blocking=loader.pin_memory) for t in batch)


def _seed_worker(seed: int, epoch: int, worker: int) -> None:
    seed_host(int(np.random.SeedSequence([seed, epoch, worker]).generate_state(1)[0]))
    torch.set_num_threads(1)  # why: workers are processes already; threads would oversubscribe


def eval_batches(
    images: torch.Tensor, labels: torch.Tensor, batch_size: int, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Fixed-order, un-augmented batches for validation and test."""
    for start in range(0, len(labels), batch_size):
        yield (
            images[start : start + batch_size].to(device, non_blocking=True),
            labels[start : start + batch_size].to(device, non_blocking=True),
        )
