"""Claim: with the sdnet preset, an epoch streamed from JPEG files through
DataLoader workers and albumentations takes at most 10% longer than the same model, batch size and
optimizer on batches already in GPU memory. An epoch is the training pass and, as in a trial, the
validation and test passes after it (the training stream reads the next epoch ahead meanwhile);
the training pass alone is printed too.

Runs on a GPU machine. Without --data-dir it writes a synthetic SDNET2018 tree of the real one's
size (56,092 256x256 JPEGs of noise, quality 90, in the official D/CD ... W/UW layout): decoding and
augmenting JPEGs is the cost being measured, and noise decodes slower than photographs, so this
errs on the pessimistic side. Usage:
    python bench/input_pipeline.py [--data-dir SDNET] [--images 56092] [--workers 4] [--epochs 2]
Prints one line per variant and the ratio; record it in bench/RESULTS.md with the card.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
FOLDERS = ("D/CD", "D/UD", "P/CP", "P/UP", "W/CW", "W/UW")  # SDNET2018's layout

import numpy as np  # noqa: E402
import torch  # noqa: E402


def _write_images(args: tuple[Path, int, int]) -> None:
    from PIL import Image

    root, start, stop = args
    rng = np.random.default_rng(start)
    for i in range(start, stop):
        folder = root / FOLDERS[i % len(FOLDERS)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(folder / f"{i:06d}.jpg", quality=90)


def synthetic_sdnet(root: Path, images: int) -> Path:
    from multiprocessing import Pool

    if not (root / "W/UW").is_dir():
        chunks = [(root, start, min(start + 1000, images)) for start in range(0, images, 1000)]
        with Pool() as pool:
            pool.map(_write_images, chunks)
    return root


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--images", type=int, default=56092, help="SDNET2018 has 56,092")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument(
        "--epochs",
        type=int,
        default=3,
        help="timed epochs of each kind (the first streamed one decodes the held-out splits)",
    )
    parser.add_argument("--device", default="cuda", help="cpu only to check that the script runs")
    args = parser.parse_args()
    from datasets import get_dataset
    from sweeps.presets import PRESETS
    from trainables import determinism
    from trainables.batches import StreamSeeds
    from trainables.file_stream import FileStream
    from trainables.loop import train_step
    from trainables.losses import Loss
    from trainables.models import create_model

    root = args.data_dir or synthetic_sdnet(Path(f"/tmp/sdnet_synthetic_{args.images}"), args.images)
    splits = get_dataset("sdnet").load(root)
    trial = PRESETS["sdnet"]["trial"]
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    determinism.apply("nondeterministic", 0, True, False, False)
    model = create_model(trial["model"], 2, 3).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0075, momentum=0.9, weight_decay=5e-4)
    loss_fn = Loss("ce", splits.train.labels, device)
    mean = torch.tensor(trial["mean"], device=device).view(1, -1, 1, 1)
    std = torch.tensor(trial["std"], device=device).view(1, -1, 1, 1)

    def file_stream(eval_cache_mb: int) -> FileStream:
        return FileStream(
            splits.train.paths,
            splits.train.labels,
            channels=3,
            size=tuple(trial["image_size"]),
            pipeline="sdnet",
            batch_size=trial["batch_size"],
            seeds=StreamSeeds(0, 0),
            num_workers=args.workers,
            device=device,
            eval_cache_mb=eval_cache_mb,
        )

    normalize = lambda x: (x.float() / 255 - mean) / std  # noqa: E731
    held = [(splits.val.paths, splits.val.labels), (splits.test.paths, splits.test.labels)]
    # the same batches, resident on the GPU
    source = file_stream(0)
    cached = [(x.clone(), y.clone()) for x, y, _ in source.epoch(1)]
    cached_held = [
        [(x.clone(), y.clone()) for x, y in source.evaluation(p, labels, trial["eval_batch_size"])]
        for p, labels in held
    ]
    del source
    stream = file_stream(trial["eval_cache_mb"])  # as a trial streams: its first epoch decodes the held-out splits

    def timed(train, evaluations) -> tuple[float, float]:
        """Seconds for the training pass, and for it with the evaluation passes."""
        sync()
        start = time.perf_counter()
        model.train()
        for x, y, *_ in train:
            train_step(model, optimizer, loss_fn, normalize(x), y, contextlib.nullcontext())
        sync()
        trained = time.perf_counter() - start
        model.eval()
        with torch.no_grad():
            for batches in evaluations:
                for x, _ in batches:
                    model(normalize(x))
        sync()
        return trained, time.perf_counter() - start

    timed(cached, cached_held)  # warm-up: cuDNN autotuning, allocator
    resident = [timed(cached, cached_held) for _ in range(args.epochs)]
    streamed = [
        timed(stream.epoch(e), [stream.evaluation(p, labels, trial["eval_batch_size"]) for p, labels in held])
        for e in range(1, args.epochs + 1)
    ]
    card = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(
        f"{card} | {len(splits.train.paths)} training, {sum(len(labels) for _, labels in held)} held-out images, "
        f"batch {trial['batch_size']}, {args.workers} workers"
    )
    epochs = trial["epochs"]
    for name, part in (("training pass", 0), ("epoch with evaluation", 1)):
        res, st = [t[part] for t in resident], [t[part] for t in streamed]
        base, later = np.median(res), np.median(st[1:] or st)
        print(
            f"{name}: in GPU memory {', '.join(f'{t:.2f}' for t in res)} s; from JPEG files {', '.join(f'{t:.2f}' for t in st)} s; "
            f"ratio: first epoch {st[0] / base:.3f}, later epochs {later / base:.3f}, "
            f"over the preset's {epochs} epochs {(st[0] + (epochs - 1) * later) / (epochs * base):.3f} (target <= 1.10)"
        )


if __name__ == "__main__":
    main()
