"""Streams a data set of image files through DataLoader workers, for sets too large for memory.

The order is the epoch plan of trainables.batches (a function of (seed, epoch)); each example is
decoded, resized and augmented in a worker with its own seed from (seed, epoch, index). Batches stay
uint8 until they reach the device, like the in-memory stream's.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset

from trainables.batches import EpochPlan, epoch_plan, seeded_loader


def read_image(path: str, channels: int) -> np.ndarray:
    """H x W x C uint8. 16-bit grey images (CBIS-DDSM's PNGs) keep their top 8 bits, replicated to
    `channels`, so ImageNet-pretrained models see the three channels they were trained on."""
    import cv2

    array = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if array is None:
        raise OSError(f"{path}: cannot be read as an image")
    if array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.shape[2] == 4:
        array = array[:, :, :3]
    if array.shape[2] == 3:
        array = array[:, :, ::-1]  # OpenCV reads BGR
        return array if channels == 3 else cv2.cvtColor(np.ascontiguousarray(array), cv2.COLOR_RGB2GRAY)[:, :, None]
    return np.repeat(array, channels, axis=2) if channels > 1 else array


class _Examples(Dataset):
    def __init__(self, paths: tuple[str, ...], labels: np.ndarray, channels: int, size: tuple[int, int], pipeline: str,
                 seed: int, epoch: int) -> None:
        self.paths, self.labels, self.channels, self.size = paths, labels, channels, size
        self.pipeline, self.seed, self.epoch = pipeline, seed, epoch
        self._transform = None  # built in the worker: albumentations objects are not shared

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        from trainables import augment  # why: albumentations takes 0.5 s to import; in-memory sets never need it

        if self._transform is None:
            self._transform = augment.build(self.pipeline, self.size)
        self._transform.set_random_seed(augment.example_seed(self.seed, self.epoch, index))
        image = self._transform(image=read_image(self.paths[index], self.channels))["image"]
        image = image if image.ndim == 3 else image[:, :, None]
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))), int(self.labels[index]), index


class FileStream:
    """The file-based counterpart of trainables.batches.TrainStream (same plan, same yields)."""

    def __init__(self, paths: tuple[str, ...], labels: np.ndarray, *, channels: int, size: tuple[int, int], pipeline: str,
                 batch_size: int, seed: int, num_workers: int, device: torch.device) -> None:
        self.paths, self.labels, self.channels, self.size, self.pipeline = paths, labels, channels, size, pipeline
        self.batch_size, self.seed, self.num_workers, self.device = batch_size, seed, num_workers, device

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    def plan(self, epoch: int) -> EpochPlan:
        return epoch_plan(len(self.labels), self.seed, epoch, 0, False)

    def epoch(self, epoch: int, plan: EpochPlan | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        plan = plan or self.plan(epoch)
        dataset = _Examples(self.paths, self.labels, self.channels, self.size, self.pipeline, self.seed, epoch)
        yield from seeded_loader(dataset, seed=self.seed, epoch=epoch, num_workers=self.num_workers, device=self.device,
                                 batch_size=self.batch_size, sampler=plan.order.tolist())

    def evaluation(self, paths: tuple[str, ...], labels: np.ndarray, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Fixed-order, un-augmented (resized only) batches of a held-out split."""
        dataset = _Examples(paths, labels, self.channels, self.size, "none", self.seed, 0)
        for x, y, _ in seeded_loader(dataset, seed=self.seed, epoch=0, num_workers=self.num_workers, device=self.device,
                                     batch_size=batch_size, shuffle=False):
            yield x, y
