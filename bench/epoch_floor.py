"""Claims: the trainable's steady-state training epoch on the cifar10
preset is at most 1.10x a plain PyTorch loop over the same model, batch size and data already on the
GPU; and what determinism costs (the reference study's Table IV) for the same model.

Runs on a GPU machine with CIFAR-10 in the official layout. For each mode it runs the trainable
(trainables.loop.run_trial, as a trial runs it, minus Ray) and a plain loop: uint8 data resident on
the GPU, one random permutation per epoch, normalise, forward, backward, step; no augmentation and
no evaluation. The trainable's train_time_s (its epochs without evaluation) is compared with it.
    python bench/epoch_floor.py --data-dir /tmp/data/cifar10 [--epochs 4]
Record the printed table in bench/RESULTS.md with the card.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def plain_epochs(
    cfg, images: np.ndarray, labels: np.ndarray, classes: int, epochs: int, device: torch.device
) -> list[float]:  # noqa: ANN001
    from trainables import determinism
    from trainables.models import create_model
    from trainables.optim import build_optimizer

    determinism.apply(cfg.mode, cfg.seed, cfg.conv_tf32, cfg.matmul_tf32, False)
    model = create_model(cfg.model, classes, images.shape[1]).to(device)
    optimizer = build_optimizer(cfg, model.parameters())
    x_all, y_all = torch.from_numpy(images).to(device), torch.from_numpy(labels).to(device)
    mean = torch.tensor(cfg.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(cfg.std, device=device).view(1, -1, 1, 1)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []
    for _ in range(epochs):
        sync()
        start = time.perf_counter()
        model.train()
        for idx in torch.randperm(len(y_all), device=device).split(cfg.batch_size):
            loss = torch.nn.functional.cross_entropy(model((x_all[idx].float() / 255 - mean) / std), y_all[idx])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        sync()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--device", default="cuda", help="cpu only to check that the script runs")
    args = parser.parse_args()
    from real_path import trial_config  # bench/ is this script's folder, first on its path

    from datasets import get_dataset
    from sweeps.presets import PRESETS
    from trainables.loop import run_trial

    preset = PRESETS[args.dataset]
    device = torch.device(args.device)
    data = get_dataset(args.dataset).load(args.data_dir)
    card = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(
        f"{card} | {args.dataset} preset, {preset['trial']['model']}, batch {preset['trial']['batch_size']}, "
        f"{len(data.train.labels)} training images; medians over epochs 2..{args.epochs} (epoch 1 warms up)"
    )
    rows = {}
    for mode in ("nondeterministic", "deterministic"):
        cfg = trial_config(args.dataset, str(args.data_dir), args.epochs, mode)
        reports: list[dict] = []
        out = Path(tempfile.mkdtemp(prefix=f"epoch_floor_{mode}_"))
        run_trial(cfg, lambda m, s, into=reports: into.append(m), out, device)
        trainable = float(np.median([r["train_time_s"] for r in reports[1:]]))
        full = float(np.median([r["epoch_time_s"] for r in reports[1:]]))
        plain = float(
            np.median(
                plain_epochs(cfg, data.train.images, data.train.labels, len(data.classes), args.epochs, device)[1:]
            )
        )
        rows[mode] = (plain, trainable, full, reports[-1]["startup_s"])
        print(
            f"{mode:>16}: plain loop {plain:.2f} s | trainable train {trainable:.2f} s ({trainable / plain:.3f}x) | "
            f"with evaluation {full:.2f} s | startup {reports[-1]['startup_s']:.1f} s"
        )
    det, nondet = rows["deterministic"], rows["nondeterministic"]
    print(f"determinism overhead (trainable train epoch): {(det[1] / nondet[1] - 1) * 100:+.1f}%")


if __name__ == "__main__":
    main()
