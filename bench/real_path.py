"""Claims (issue #9): a preset's training epoch through `sweeps/run.py` (Ray, Tune, a forked trial
process: what users run) is within 1.10x of the best plain PyTorch loop for the same model, batch,
optimizer, precision and augmentation, in both modes; the epochs of one trial spread by under 5%;
and whether pinning each trial's process to its cores (--pin-cpus) helps, alone and packed.

All in one process tree, interleaved, so that machines differing by 30% from one call to the next
do not enter a ratio. Each repeat runs, per mode, in turn:
  - the plain loop, in a fresh process per mode: the data set uint8 on the GPU, a random
    permutation per epoch, the preset's crop and flip on the GPU (for sdnet and cbis: a shuffled
    DataLoader over the files with the preset's workers and albumentations pipeline), normalise,
    forward (the preset's precision), backward, step, with the preset's loss; four variants
    interleaved epoch by epoch: NCHW or channels_last, each on all cores or pinned to the preset's
    CPUs per trial (always that many threads, OMP_NUM_THREADS as Ray sets it). Files are not pinned,
    as their workers would not be: their second pair is the GPU's floor instead, every image decoded
    and augmented once and held on the device, so for them "best plain" means the GPU's limit;
  - one study through sweeps/run.py with one trial per mode, alone on the GPU, pinned and not.
Then the preset's packing (its GPUs per trial), `--packed` trials, pinned and not: wall and epochs.
Times are medians over epochs 2.. (epoch 1 holds cuDNN's autotuning); training only, no evaluation.

    python bench/real_path.py --dataset cifar10-fast --data-dir /tmp/data/cifar10 --epochs 6 --repeats 2
    python bench/real_path.py --dataset sdnet --data-dir SDNET_TREE --epochs 3 --repeats 1   # bench/input_pipeline.py writes one
    python bench/real_path.py --dataset digits --epochs 3 --repeats 1 --packed 0   # CPU: checks the script
--set KEY=VALUE applies a trial setting to the plain loop and the studies alike (a memory format,
say); each trial's line ends with its weights' digest, so deterministic trials of different
studies show whether they are bit-identical.
Record the printed tables in bench/RESULTS.md with card, commit and command.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
MODES = ("nondeterministic", "deterministic")
VARIANTS = [(layout, pinned) for layout in ("nchw", "channels_last") for pinned in (False, True)]


def trial_config(dataset: str, data_dir: str, epochs: int, mode: str, settings: Sequence[str] = ()):  # noqa: ANN201 (a TrialConfig)
    """The preset's first configuration in `mode`, with `settings` (KEY=VALUE, as sweeps/run.py's --set) applied."""
    from sweeps.cli import parse_value
    from sweeps.grid import GridSpec, build_trials
    from sweeps.presets import PRESETS
    from trainables.config import TrialConfig

    preset = PRESETS[dataset]
    overrides = {key: parse_value(value) for key, _, value in (item.partition("=") for item in settings)}
    overrides |= {"data_dir": data_dir, "gpu_share": 1.0, "epochs": epochs}
    spec = GridSpec((0,), ("sgd",), 1, 1, preset["trial"], preset["optimizers"], overrides)
    return TrialConfig.from_dict({**build_trials(spec)[0], "mode": mode})


def memory_batches(cfg, data, device):  # noqa: ANN001, ANN201 (a TrialConfig, ImageSplits; an epoch -> batches callable)
    """Each epoch: a random permutation of the uint8 images held on the device, cropped and flipped there."""
    import torch

    return device_batches(cfg, torch.from_numpy(data.train.images), torch.from_numpy(data.train.labels), device)


def device_batches(cfg, images, labels, device):  # noqa: ANN001, ANN201 (a TrialConfig, N x C x H x W uint8, labels; an epoch -> batches callable)
    """Each epoch: a random permutation of `images` moved to the device once, cropped and flipped there."""
    import torch

    from trainables.batches import augment

    x_all, y_all = images.to(device), torch.as_tensor(labels).to(device)

    def epoch():  # noqa: ANN202
        order = torch.randperm(len(y_all), device=device).split(cfg.batch_size)
        for idx in order[:-1] if cfg.drop_last and len(order[-1]) < cfg.batch_size else order:
            offsets = torch.randint(0, 2 * cfg.crop_padding + 1, (len(idx), 2), device=device)
            flips = torch.rand(len(idx), device=device) < 0.5 if cfg.hflip else None
            yield augment(x_all[idx], offsets, flips, cfg.crop_padding), y_all[idx]

    return epoch


def training_files(cfg, data):  # noqa: ANN001, ANN201 (a TrialConfig, FileSplits; a Dataset)
    """The training files, each decoded and augmented (the preset's albumentations pipeline) when read."""
    import numpy as np
    import torch
    from torch.utils.data import Dataset

    from trainables import augment
    from trainables.file_stream import read_image

    class Files(Dataset):
        def __init__(self) -> None:
            self.transform = augment.build(cfg.augment, cfg.image_size)

        def __len__(self) -> int:
            return len(data.train.paths)

        def __getitem__(self, i: int):  # noqa: ANN204
            image = self.transform(image=read_image(data.train.paths[i], data.in_chans))["image"]
            image = image if image.ndim == 3 else image[:, :, None]
            return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))), int(data.train.labels[i])

    return Files()


def decoded_batches(cfg, data, device):  # noqa: ANN001, ANN201 (a TrialConfig, FileSplits; an epoch -> batches callable)
    """The GPU's floor for a streamed set: every training image decoded and augmented once, held on
    the device, then served as in-memory sets are. No decoding in the epochs, so no loop that reads
    files can be faster; a trial's ratio to it is its distance from the GPU's limit."""
    import torch
    from torch.utils.data import DataLoader

    loader = DataLoader(training_files(cfg, data), batch_size=64, num_workers=max(1, cfg.num_workers))
    images, labels = zip(*loader, strict=True)
    return device_batches(cfg, torch.cat(images), torch.cat(labels), device)


def file_batches(cfg, data, device):  # noqa: ANN001, ANN201 (a TrialConfig, FileSplits; an epoch -> batches callable)
    """Each epoch: a shuffled DataLoader over the image files, decoded and augmented in as many
    persistent workers as the preset gives, pinned memory."""
    from torch.utils.data import DataLoader

    loader = DataLoader(
        training_files(cfg, data),
        batch_size=cfg.batch_size,
        shuffle=True,
        drop_last=cfg.drop_last,
        num_workers=cfg.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=cfg.num_workers > 0,
    )

    def epoch():  # noqa: ANN202
        for x, y in loader:
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    return epoch


def plain_epochs(
    dataset: str,
    data_dir: str,
    epochs: int,
    mode: str,
    cores: int,
    settings: Sequence[str],
    variants: Sequence[tuple[str, bool]] = tuple(VARIANTS),
) -> dict[str, list[float]]:
    """The plain loop's epoch times per variant, the variants' epochs interleaved. Data sets streamed
    from files have no pinned variants (their workers keep the placement they started with); their
    second pair of variants is the GPU's floor instead, the images decoded once and held on the device."""
    import torch

    from datasets import get_dataset, reader_options
    from datasets.registry import STREAMED
    from trainables import augment, determinism
    from trainables.loop import build_model, default_device
    from trainables.losses import Loss
    from trainables.optim import build_optimizer

    cfg = trial_config(dataset, data_dir, epochs, mode, settings)
    determinism.apply(cfg.mode, cfg.seed, cfg.conv_tf32, cfg.matmul_tf32, False)
    device = default_device()
    data = get_dataset(cfg.dataset).load(Path(cfg.data_dir), **reader_options(cfg.dataset, cfg.to_dict()))
    streamed = cfg.dataset in STREAMED
    batches = (file_batches if streamed else memory_batches)(cfg, data, device)
    floor = decoded_batches(cfg, data, device) if streamed else None
    steps = augment.device_steps(cfg.augment) if streamed else None  # the pipeline's part on the GPU, every epoch
    loss_fn = Loss(cfg.loss, data.train.labels, device, cfg.label_smoothing)
    mean = torch.tensor(cfg.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(cfg.std, device=device).view(1, -1, 1, 1)
    all_cores = sorted(os.sched_getaffinity(0))
    torch.set_num_threads(cores)  # as a trial runs, pinned or not (Ray sets OMP_NUM_THREADS to its CPUs)
    runs = {}
    for layout, second in variants:
        memory = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        model = build_model(cfg, data, loss_fn.outputs(len(data.classes))).to(device, memory_format=memory)
        name = layout + (("", " decoded in memory") if streamed else ("", " pinned"))[second]
        pinned = second and not streamed
        runs[name] = (
            model,
            build_optimizer(cfg, model.parameters()),
            memory,
            pinned,
            floor if second and streamed else batches,
        )
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(epochs):
        for name, (model, optimizer, memory, pinned, source) in runs.items():
            os.sched_setaffinity(0, all_cores[:cores] if pinned else all_cores)
            model.train()
            sync()
            start = time.perf_counter()
            for x, y in source():
                x = x if steps is None else steps(x, torch.randint(2**31, (len(x),)).tolist())
                x = ((x.float() / 255 - mean) / std).contiguous(memory_format=memory)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
                    loss = loss_fn(model(x), y)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            sync()
            times[name].append(time.perf_counter() - start)
    os.sched_setaffinity(0, all_cores)
    return times


def run_study(args: argparse.Namespace, name: str, extra: list[str]) -> tuple[float, pd.DataFrame]:
    """A study through sweeps/run.py, as a user runs it: (wall, one row per trial and epoch with its mode)."""
    from analysis import load_experiment

    command = [sys.executable, "sweeps/run.py", "--dataset", args.dataset, "--seeds", "0", "--optimizers", "sgd"]
    command += ["--epochs", str(args.epochs), "--storage-path", args.storage, "--name", name, *extra]
    command += ["--data-dir", args.data_dir] if args.data_dir else []
    command += [f"--set={item}" for item in args.set]
    start = time.time()
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    wall = time.time() - start
    if proc.returncode != 0:
        sys.exit(f"{name}: the study failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    exp = load_experiment(Path(args.storage) / name)
    epochs = exp.epochs[["trial", "epoch", "train_time_s", "epoch_time_s"]].merge(
        exp.trials[["trial", "mode", "env_cpu_pinning", "env_cpu_cores", "weights_sha256"]], on="trial"
    )
    return wall, epochs


def steady(times: list[float] | pd.Series) -> tuple[float, float]:
    """(median, spread) of epochs 2..: spread = (max - min) / median."""
    later = np.asarray(times, dtype=float)[1:]
    median = float(np.median(later))
    return median, float((later.max() - later.min()) / median)


def seconds(times: Sequence[float] | pd.Series) -> str:
    """Every epoch's time, so that one slow epoch and a steady drift read differently."""
    return " ".join(f"{t:.3f}" for t in times)


def per_trial(epochs: pd.DataFrame) -> pd.DataFrame:
    """Each trial's steady training epoch, its spread, the evaluation after it, and the weights' digest
    (deterministic trials of the same settings in different studies must share it)."""
    rows = []
    for (trial, mode), group in epochs.sort_values("epoch").groupby(["trial", "mode"]):
        median, spread = steady(group["train_time_s"])
        rows.append(
            {
                "trial": trial,
                "mode": mode,
                "epoch_s": median,
                "spread": spread,
                "eval_s": steady(group["epoch_time_s"] - group["train_time_s"])[0],
                "cores": group["env_cpu_cores"].iloc[0],
                "digest": group["weights_sha256"].iloc[0][:12],
            }
        )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="cifar10-fast")
    parser.add_argument("--data-dir", default="")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--packed", type=int, default=8, help="trials in each packed study (0: none)")
    parser.add_argument("--storage", default="/tmp/bench_real_path")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a trial setting, as sweeps/run.py's --set"
    )
    parser.add_argument("--plain", metavar="MODE", help=argparse.SUPPRESS)  # internal: one plain-loop process
    parser.add_argument(  # internal: one layout, unpinned (bench/mps.py runs several plain loops at once)
        "--plain-layout", choices=("nchw", "channels_last"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    from sweeps.presets import PRESETS

    cores = max(1, int(PRESETS[args.dataset]["study"]["cpus_per_trial"]))
    if args.plain:
        variants = [(args.plain_layout, False)] if args.plain_layout else VARIANTS
        print(json.dumps(plain_epochs(args.dataset, args.data_dir, args.epochs, args.plain, cores, args.set, variants)))
        return
    import torch

    card = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    alone = "1" if torch.cuda.is_available() else "0"  # one trial per GPU; on a CPU, to check the script
    print(f"{card}, {os.cpu_count()} cores | {args.dataset}, {args.epochs} epochs, {cores} CPUs per trial", flush=True)
    plain_rows, trial_rows, stamp = [], [], int(time.time())
    for repeat in range(args.repeats):
        for mode in MODES:
            proc = subprocess.run(
                [sys.executable, __file__, "--plain", mode, "--dataset", args.dataset, "--data-dir", args.data_dir]
                + ["--epochs", str(args.epochs)]
                + [f"--set={item}" for item in args.set],
                cwd=REPO,
                capture_output=True,
                text=True,
                env=os.environ | {"OMP_NUM_THREADS": str(cores)},  # as Ray sets it for a trial and its workers
            )
            if proc.returncode != 0:
                sys.exit(f"plain loop ({mode}) failed:\n{proc.stderr[-3000:]}")
            for variant, times in json.loads(proc.stdout.splitlines()[-1]).items():
                median, spread = steady(times)
                plain_rows.append({"repeat": repeat, "mode": mode, "variant": variant, "epoch_s": median})
                print(f"  plain {mode} {variant}: {median:.3f} s (spread {spread:.1%}; {seconds(times)})", flush=True)
        for pinning in (["--pin-cpus"], []) if repeat % 2 == 0 else ([], ["--pin-cpus"]):
            label = "pinned" if pinning else "unpinned"
            _, epochs = run_study(
                args,
                f"alone-{label}-{repeat}-{stamp}",
                ["--repeats", "1", "--det-repeats", "1", "--gpus-per-trial", alone, "--max-concurrent", "1"] + pinning,
            )
            measured = per_trial(epochs)
            trial_rows += [dict(r, repeat=repeat, run=f"alone, {label}") for r in measured.to_dict("records")]
            print(measured.round(3).to_string(index=False, header=False), flush=True)
            for mode, group in epochs.sort_values("epoch").groupby("mode"):
                print(f"    {mode} trial's epochs: {seconds(group['train_time_s'])}", flush=True)
        print(f"repeat {repeat + 1} of {args.repeats} done", flush=True)
    walls = {}
    for pinning in (["--pin-cpus"], []) if args.packed else ():
        label = "pinned" if pinning else "unpinned"
        extra = ["--repeats", str(args.packed - 1), "--det-repeats", "1"] + pinning
        walls[label], epochs = run_study(args, f"packed-{label}-{stamp}", extra)
        trial_rows += [dict(r, repeat=0, run=f"packed, {label}") for r in per_trial(epochs).to_dict("records")]
    report(pd.DataFrame(plain_rows), pd.DataFrame(trial_rows), walls, args.packed)


def report(plain: pd.DataFrame, trials: pd.DataFrame, walls: dict[str, float], packed: int) -> None:
    """Per mode: each plain variant; the best one; each way through run.py against it, min and median
    over repeats of the ratio taken within a repeat."""
    pd.set_option("display.width", 200)
    print("\nplain loop, median epoch (s) per repeat:")
    print(plain.pivot_table(index=["mode", "variant"], columns="repeat", values="epoch_s").round(3).to_string())
    best = plain.groupby(["mode", "variant"])["epoch_s"].median().groupby("mode").idxmin()
    print("fastest plain variant per mode: " + ", ".join(f"{m}: {v[1]}" for m, v in best.items()))
    rows = []
    for (run, mode), group in trials.groupby(["run", "mode"]):
        floor = plain[(plain["mode"] == mode) & (plain["variant"] == best[mode][1])].set_index("repeat")["epoch_s"]
        ratios = group["epoch_s"].to_numpy() / floor.reindex(group["repeat"]).to_numpy()
        rows.append(
            {
                "run": run,
                "mode": mode,
                "trials": len(group),
                "epoch_s median": group["epoch_s"].median(),
                "vs best plain, min": np.nanmin(ratios),
                "median": np.nanmedian(ratios),
                "epoch spread, max": group["spread"].max(),
            }
        )
    print("\nthrough sweeps/run.py (training epoch, epochs 2..):")
    print(pd.DataFrame(rows).round(3).to_string(index=False))
    for label, wall in walls.items():
        print(f"packed study of {packed} trials, {label}: wall {wall:.1f} s")


if __name__ == "__main__":
    main()
