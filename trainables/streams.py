"""The trial's data streams, built from its data and settings: a Stream for training and, per
held-out split, its evaluation batches. Which kind follows the registry's table (datasets.registry):
held in memory (TrainStream, augmented on the device) or streamed from files (FileStream)."""

from __future__ import annotations

import torch

from datasets import ImageSplits
from datasets.image_folder import FileSplits
from datasets.registry import STREAMED
from trainables.batches import HeldOut, Stream, StreamSeeds, TrainStream
from trainables.config import TrialConfig


def build(cfg: TrialConfig, data: ImageSplits | FileSplits, device: torch.device) -> tuple[Stream, dict[str, HeldOut]]:
    """(training stream, {"val": ..., "test": ...}); a split the data set lacks is left out."""
    stream = _from_files(cfg, data, device) if cfg.dataset in STREAMED else _in_memory(cfg, data, device)
    held = {
        name: stream.held_out(split, cfg.eval_batch_size)
        for name, split in (("val", data.val), ("test", data.test))
        if split is not None
    }
    return stream, held


def _in_memory(cfg: TrialConfig, data: ImageSplits, device: torch.device) -> Stream:
    return TrainStream(
        data.train.images,
        data.train.labels,
        batch_size=cfg.batch_size,
        seeds=StreamSeeds(cfg.stream_seed("order"), cfg.stream_seed("augment")),
        crop_padding=cfg.crop_padding,
        hflip=cfg.hflip,
        alternate_flip=cfg.alternate_flip,
        drop_last=cfg.drop_last,
        num_workers=cfg.num_workers,
        device=device,
    )


def _from_files(cfg: TrialConfig, data: FileSplits, device: torch.device) -> Stream:
    from trainables.file_stream import (
        FileStream,  # why: it imports albumentations (0.5 s), which in-memory sets never need
    )

    return FileStream(
        data.train.paths,
        data.train.labels,
        channels=data.in_chans,
        size=cfg.image_size,
        pipeline=cfg.augment,
        batch_size=cfg.batch_size,
        seeds=StreamSeeds(cfg.stream_seed("order"), cfg.stream_seed("augment")),
        num_workers=cfg.num_workers,
        device=device,
        drop_last=cfg.drop_last,
        eval_cache_mb=cfg.eval_cache_mb,
    )
