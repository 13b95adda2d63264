"""Claim (issue #9): OpenCV's own thread pool, which every DataLoader worker starts with one thread
per core, oversubscribes the cores once as many workers as cores decode and augment at once; with
one OpenCV thread per worker the same workers deliver more images a second. Four packed sdnet trials
on a 16-core H200 machine run 16 workers and were held by decoding (bench/RESULTS.md, 2026-12-01).

CPU only: the trial's own dataset of a streamed set (trainables.file_stream: read, the preset's
albumentations pipeline, per-example seeding) through DataLoaders of `--workers` workers, the two
variants interleaved `--repeats` times. Without --data-dir it writes a synthetic SDNET2018 tree
(noise JPEGs, which decode slower than photographs). Usage:
    python bench/worker_threads.py [--data-dir SDNET] [--images 6000] [--workers 16] [--repeats 3]
Record the printed lines in bench/RESULTS.md with the machine's core count. On a 16-core H200
machine it measured 1.03x (16 workers) and 1.01x (4), within the repeats' spread: the claim did not
hold, and the trainable leaves OpenCV's threads as they are (bench/RESULTS.md, 2026-12-01).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
VARIANTS = {"OpenCV's default threads": -1, "one OpenCV thread": 1}  # cv2.setNumThreads: < 0 restores the default


def _init_worker(cv2_threads: int, seed: int, worker: int) -> None:
    import cv2

    from trainables.batches import _seed_worker

    _seed_worker(seed, 0, worker)
    cv2.setNumThreads(cv2_threads)


def images_per_second(paths: tuple[str, ...], workers: int, cv2_threads: int, batch_size: int) -> float:
    """One pass of the sdnet preset's training pipeline over `paths`, its first batch (the workers'
    start) left out of the timing."""
    import functools

    from torch.utils.data import DataLoader

    from sweeps.presets import PRESETS
    from trainables.file_stream import _Examples

    trial = PRESETS["sdnet"]["trial"]
    dataset = _Examples(paths, np.zeros(len(paths), dtype=np.int64), 3, trial["image_size"], trial["augment"], 0)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=[(1, i) for i in range(len(paths))],
        num_workers=workers,
        worker_init_fn=functools.partial(_init_worker, cv2_threads, 0),
    )
    batches = iter(loader)
    next(batches)
    start, count = time.perf_counter(), 0
    for images, *_ in batches:
        count += len(images)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, help="an SDNET2018 tree (default: a synthetic one in /tmp)")
    parser.add_argument("--images", type=int, default=6000, help="synthetic images, and at most this many read")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--batch-size", type=int, default=256, help="the sdnet preset's")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.data_dir is None:
        from input_pipeline import synthetic_sdnet

        args.data_dir = synthetic_sdnet(Path("/tmp/bench_sdnet"), args.images)
    paths = tuple(sorted(str(p) for p in args.data_dir.rglob("*.jpg")))[: args.images]
    if len(paths) < 2 * args.batch_size:
        sys.exit(f"--data-dir: {args.data_dir} holds {len(paths)} .jpg files; at least {2 * args.batch_size} needed")
    print(f"{os.cpu_count()} cores | {len(paths)} images, {args.workers} workers, batch {args.batch_size}")
    rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.repeats):
        for name, threads in VARIANTS.items():
            rates[name].append(images_per_second(paths, args.workers, threads, args.batch_size))
    for name, values in rates.items():
        print(f"  {name}: {np.median(values):,.0f} images/s (each repeat: {', '.join(f'{v:,.0f}' for v in values)})")
    default, one = (np.median(rates[name]) for name in VARIANTS)
    print(f"one OpenCV thread per worker: {one / default:.2f}x the images/s of OpenCV's default")


if __name__ == "__main__":
    main()
