"""Streams a data set of image files through DataLoader workers, for sets too large for memory.

The order is the epoch plan of trainables.batches (a function of (seed, epoch)); each example is
decoded, resized and augmented in a worker with its own seed from (seed, epoch, index). Batches stay
uint8 until they reach the device, like the in-memory stream's.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from datasets.image_folder import MAX_IMAGE_PIXELS
from trainables import augment  # why: imported before the workers fork, so none of them imports it again
from trainables.batches import EpochPlan, StreamSeeds, batch_count, epoch_plan, seeded_loader
from trainables.determinism import seed_host

# why: OpenCV's own pixel limit, read at its first imread, follows the one the driver checked with
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_IMAGE_PIXELS))


def read_image(path: str, channels: int) -> np.ndarray:
    """H x W x C uint8. 16-bit grey images (CBIS-DDSM's PNGs) keep their top 8 bits, replicated to
    `channels`, so ImageNet-pretrained models see the three channels they were trained on."""
    import cv2

    array = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if array is None:
        raise OSError(f"{path}: cannot be read as an image")
    if array.dtype not in (np.uint8, np.uint16):  # why: a float image cast to uint8 trains as near black
        raise OSError(f"{path}: {array.dtype} pixels; only 8- and 16-bit images are read")
    if array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.shape[2] in (3, 4):  # OpenCV reads BGR(A); the alpha channel is dropped
        # why: a reversed view ([:, :, ::-1]) cost the first augmentation step a 0.15-ms copy of a 256 x 256
        # image, 15% of an SDNET example's time in a decoding worker; cvtColor writes it contiguous
        code = (cv2.COLOR_BGR2RGB, cv2.COLOR_BGRA2RGB) if channels == 3 else (cv2.COLOR_BGR2GRAY, cv2.COLOR_BGRA2GRAY)
        converted = cv2.cvtColor(array, code[array.shape[2] == 4])
        return converted if channels == 3 else converted[:, :, None]
    return np.repeat(array, channels, axis=2) if channels > 1 else array


class _Examples(Dataset):
    """Item (epoch, index): example `index` as augmented in `epoch`. The epoch travels in the key
    because the workers persist across epochs and never see the stream's later state."""

    def __init__(
        self, paths: tuple[str, ...], labels: np.ndarray, channels: int, size: tuple[int, int], pipeline: str, seed: int
    ) -> None:
        self.paths, self.labels, self.channels, self.seed = paths, labels, channels, seed
        self.transform = augment.build(pipeline, size)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int, int, int]:
        """(image, label, index, the seed of its device steps)."""
        epoch, index = key
        example_seed = augment.example_seed(self.seed, epoch, index)
        seed_host(example_seed)  # why: a draw from a global RNG is then the same whichever worker runs the example
        augment.seed_pipeline(self.transform, example_seed)
        image = self.transform(image=read_image(self.paths[index], self.channels))["image"]
        image = image if image.ndim == 3 else image[:, :, None]
        image = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        return image, int(self.labels[index]), index, augment.example_seed(self.seed, epoch, index, part=1)


class _Keys(Sampler):
    """(epoch, index) keys of a held-out split, in a fixed order (its loader lives all trial)."""

    def __init__(self, order: np.ndarray) -> None:
        self.order = order

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((0, int(i)) for i in self.order)

    def __len__(self) -> int:
        return len(self.order)


class _EpochBatches(Sampler):
    """Batches of (epoch, index) keys, each epoch in its plan's order, epoch after epoch from `first`
    for as long as the trial asks: one iterator serves the whole trial, so the workers already
    decode the next epoch's first batches while this epoch's last ones train and the model is
    evaluated, instead of the GPU waiting for them at every epoch's start."""

    def __init__(self, plan: Callable[[int], EpochPlan], batch_size: int, drop_last: bool) -> None:
        self.plan, self.batch_size, self.drop_last, self.first = plan, batch_size, drop_last, 1

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for epoch in itertools.count(self.first):
            order = self.plan(epoch).order
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                if self.drop_last and len(batch) < self.batch_size:
                    break
                yield [(epoch, int(i)) for i in batch]


class FileStream:
    """The file-based counterpart of trainables.batches.TrainStream (same plan, same yields).

    Its DataLoaders (training, and one per held-out split) keep their workers for the whole trial:
    starting workers every epoch cost more than an epoch of a small data set takes to train."""

    def __init__(
        self,
        paths: tuple[str, ...],
        labels: np.ndarray,
        *,
        channels: int,
        size: tuple[int, int],
        pipeline: str,
        batch_size: int,
        seeds: StreamSeeds,
        num_workers: int,
        device: torch.device,
        drop_last: bool = False,
        eval_cache_mb: int = 0,
    ) -> None:
        self.labels, self.channels, self.size, self.seeds = labels, channels, size, seeds
        self.cache_left = eval_cache_mb * 2**20  # bytes of decoded held-out images that may still be kept
        self.batch_size, self.num_workers, self.device, self.drop_last = batch_size, num_workers, device, drop_last
        self.device_steps = augment.device_steps(pipeline)
        self._batches = _EpochBatches(self.plan, batch_size, drop_last)
        self._train = self._loader(
            _Examples(paths, labels, channels, size, pipeline, seeds.augment), batch_sampler=self._batches
        )
        self._running: Iterator[tuple[torch.Tensor, ...]] | None = None  # the trial-long iterator
        self._next_epoch: int | None = None  # the epoch it yields next
        self._held: dict[int, tuple[tuple[str, ...], DataLoader]] = {}
        self._cached: dict[int, tuple[tuple[str, ...], list[tuple[torch.Tensor, torch.Tensor]]]] = {}

    def __len__(self) -> int:
        return batch_count(len(self.labels), self.batch_size, self.drop_last)

    def _loader(self, dataset: _Examples, **batching: object) -> DataLoader:
        return seeded_loader(
            dataset,
            seed=self.seeds.augment,
            epoch=0,
            num_workers=self.num_workers,
            device=self.device,
            persistent_workers=self.num_workers > 0,
            **batching,
        )

    def plan(self, epoch: int) -> EpochPlan:
        return epoch_plan(len(self.labels), self.seeds, epoch, 0, False)

    def augment_draws(self, epoch: int) -> tuple[np.ndarray, ...]:
        """Every example's pipeline seed in `epoch`: what the augmentation seed decides here."""
        seeds = [augment.example_seed(self.seeds.augment, epoch, i) for i in range(len(self.labels))]
        return (np.array(seeds, dtype=np.uint32),)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Epoch `epoch`'s batches in the order of plan(epoch) (the sampler draws that same plan).
        Asking for the epoch after the last one continues the running iterator; any other epoch
        starts a new one there."""
        if self._running is None or epoch != self._next_epoch:
            self._batches.first = epoch
            self._running = self._on_device()
        self._next_epoch = None  # why: an epoch left unfinished cannot be continued
        for _ in range(len(self)):
            yield next(self._running)
        self._next_epoch = epoch + 1

    def _on_device(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """The training loader's batches on the device (asynchronously from pinned memory on a GPU),
        the pipeline's device steps applied; their seeds, drawn in the workers, stay on the host."""
        for x, y, index, seeds in self._train:
            x, y, index = (t.to(self.device, non_blocking=self._train.pin_memory) for t in (x, y, index))
            yield (x if self.device_steps is None else self.device_steps(x, seeds.tolist())), y, index

    def held_out(self, split, batch_size: int) -> Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]:  # noqa: ANN001
        """A held-out FileSplit's fixed-order batches (see evaluation)."""
        return functools.partial(self.evaluation, split.paths, split.labels, batch_size)

    def evaluation(
        self, paths: tuple[str, ...], labels: np.ndarray, batch_size: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Fixed-order, un-augmented (resized only) batches of a held-out split. Identical every
        epoch, so after one complete pass they are kept in memory if they fit what is left of
        eval_cache_mb, and later passes read no file."""
        batches = (
            self._cached[id(paths)][1] if id(paths) in self._cached else self._read_held(paths, labels, batch_size)
        )
        for x, y in batches:  # pinned on a GPU (the loader pins them), so the copies run asynchronously
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def _read_held(
        self, paths: tuple[str, ...], labels: np.ndarray, batch_size: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One pass over a held-out split's files, in host memory; a complete pass that fits is kept."""
        if id(paths) not in self._held:  # the tuple is kept beside its loader, so its id stays its own
            dataset = _Examples(paths, labels, self.channels, self.size, "none", self.seeds.augment)
            self._held[id(paths)] = (
                paths,
                self._loader(dataset, batch_size=batch_size, sampler=_Keys(np.arange(len(labels)))),
            )
        size = len(labels) * self.channels * self.size[0] * self.size[1]  # (0, 0): sizes as read, unknown: never kept
        keep: list[tuple[torch.Tensor, torch.Tensor]] | None = [] if 0 < size <= self.cache_left else None
        for x, y, *_ in self._held[id(paths)][1]:
            if keep is not None:
                keep.append((x, y))
            yield x, y
        if keep is not None:
            self._cached[id(paths)] = (paths, keep)
            self.cache_left -= size
            del self._held[id(paths)]  # why: its workers are no longer needed
