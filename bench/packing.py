"""Claims: how much more sweep throughput --gpus-per-trial 0.5 and 0.25
give than 1.0 on one GPU (to choose each preset's default share); and on several GPUs, how close a
study's wall time comes to the sum of its trial times divided by the GPU count (target 0.9).

Runs real studies through sweeps/run.py (Ray, Tune, the trainable: everything a user runs), one per
share, and reads their experiment directories. Usage on a GPU machine:
    python bench/packing.py --data-dir /tmp/data/cifar10 --shares 1,0.5,0.25 --trials 16 --epochs 3
Efficiency = sum of trial runtimes / (wall time x slots), where slots = GPUs / share: at one GPU
per trial that is sum / (wall x GPUs); packed, it is how much of the slots' time trials filled
(that packed trials each run slower shows in the throughput, not here). Throughput = trials per hour. Where the
rest of the wall went is printed from each trial's `started_at` and its slot (`env.parent_pid`):
before the first trial (the driver's imports, Ray's and Tune's start), switches between one slot's
trials, slots idle while the last trials finish, and after the last trial (summary, Ray's stop).
Each study prints its median training epoch and evaluation per mode over epochs 2.., and again
over only the epochs that trained while as many trials as the share packs were all past their
first epoch: packed trials start unevenly (non-deterministic ones tune cuDNN first), so in short
studies the plain median mixes epochs trained alone with epochs trained together (bench/RESULTS.md,
cbis, 2026-11-30). On a GPU machine each study also prints how busy every GPU was while it ran (bench/gpu_use.py).
Record the printed lines in bench/RESULTS.md with the card and the GPU count.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from gpu_use import Sampler  # noqa: E402  (bench/ is the script's own folder)

from layout import PAPER_MODES  # noqa: E402


def trial_spans(trials: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Each trial's start and end on the wall clock: from its process's (or its slot's) start, through its imports and runtime."""
    return trials["started_at"], trials["started_at"] + trials["startup_imports_s"] + trials["runtime_s"]


def where_the_wall_went(trials: pd.DataFrame, command_start: float, command_end: float) -> str:
    """The command's wall split, for the average slot, into: before its first trial (the driver's
    imports, Ray's and Tune's start, the slot's own start), its trials (imports included), switches
    between its trials, idle while other slots finish, and after the last trial; they add up to the wall."""
    start, end = trial_spans(trials)
    timeline = pd.DataFrame({"slot": trials["env_parent_pid"], "start": start, "end": end})
    timeline = timeline.sort_values(["slot", "start"])
    slots = timeline.groupby("slot")
    last = timeline["end"].max()
    parts = {
        "before its first trial": slots["start"].min() - command_start,
        "trials": slots.apply(lambda t: (t["end"] - t["start"]).sum(), include_groups=False),
        "switches": (slots["start"].shift(-1) - timeline["end"]).groupby(timeline["slot"]).sum(),
        "idle at the end": last - slots["end"].max(),
        "after the last trial": pd.Series(command_end - last, index=slots["start"].min().index),
    }
    return f"wall {command_end - command_start:.1f} s, per slot ({len(parts['trials'])}) on average: " + "; ".join(
        f"{name} {float(values.mean()):.1f} s" for name, values in parts.items()
    )


def together(epochs: pd.DataFrame, trials: pd.DataFrame, count: int) -> pd.DataFrame:
    """Epochs 2.. that trained while at least `count` trials (this one included) were all past their
    first epoch: a packed GPU's steady state. Packed trials start unevenly (non-deterministic ones
    tune cuDNN first), so in a short study most epochs may have trained alone or in fewer company.
    An epoch's end is placed on the wall clock from its trial's end and Tune's time_total_s."""
    trial_end = trial_spans(trials)[1].set_axis(trials["trial"])
    later = epochs[epochs["epoch"] >= 2].copy()
    if later.empty:  # --epochs 1: no epoch past the first
        return later
    last_total = epochs.groupby("trial")["time_total_s"].max()
    later["end"] = later["trial"].map(trial_end) - (later["trial"].map(last_total) - later["time_total_s"])
    later["start"] = later["end"] - later["epoch_time_s"]
    spans = later.groupby("trial").agg(first=("start", "min"), last=("end", "max"))
    company = [int(((spans["first"] <= e.start) & (spans["last"] >= e.end)).sum()) for e in later.itertuples()]
    return later[np.asarray(company) >= count]


def epoch_parts(epochs: pd.DataFrame, trials: pd.DataFrame, count: int) -> str:
    """Per mode, the median training epoch and evaluation over epochs 2.. (epoch 1 holds cuDNN's
    autotuning), evaluation taken over the epochs that were evaluated; the same over the epochs that
    trained with `count` trials at once (together()); and the deterministic digests."""

    def medians(rows: pd.DataFrame) -> str:
        evaluation = (rows["epoch_time_s"] - rows["train_time_s"])[rows["metric"].notna()]
        return ", ".join(
            f"{mode} training {group['train_time_s'].median():.3f} s, evaluation "
            f"{evaluation[group.index.intersection(evaluation.index)].median():.3f} s ({len(group)} epochs)"
            for mode, group in rows.groupby("mode")
        )

    packed = together(epochs, trials, count)
    digests = sorted(trials.loc[trials["mode"] == "deterministic", "weights_sha256"].str[:12])
    noisy = trials.loc[trials["mode"] != "deterministic", "weights_sha256"]
    return (
        f"epochs 2..: {medians(epochs[epochs['epoch'] >= 2])}\n    with {count} trials training at once: "
        + (medians(packed) if len(packed) else "none (longer trials would overlap)")
        + f"\n    deterministic digests {', '.join(digests) or 'none'}; other modes: {noisy.nunique()} distinct of {len(noisy)}"
    )


def study(args: argparse.Namespace, share: str, name: str) -> tuple[float, str]:
    """One study through sweeps/run.py at `share` GPUs per trial: (trials per hour, its printed lines)."""
    import torch

    from analysis import load_experiment

    gpus = max(torch.cuda.device_count(), 1)
    command = [
        sys.executable,
        *"sweeps/run.py --dataset".split(),
        args.dataset,
        "--data-dir",
        args.data_dir,
        *"--seeds 0 --optimizers sgd --repeats".split(),
        str(args.trials),
        "--det-repeats",
        args.det_repeats,
        "--modes",
        args.modes,
        "--vary",
        args.vary,
        "--gpus-per-trial",
        share,
        "--cpus-per-trial",
        args.cpus_per_trial,
        "--storage-path",
        args.storage,
        "--name",
        name,
    ]
    command += ["--epochs", str(args.epochs)] if args.epochs else []
    command += [f"--set={item}" for item in args.set] + (["--pin-cpus"] if args.pin_cpus else [])
    start = time.time()
    with Sampler() if torch.cuda.is_available() else contextlib.nullcontext() as gpu_use:
        proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    end = time.time()
    wall = end - start
    if proc.returncode != 0:
        sys.exit(f"share {share}: the study failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    experiment = load_experiment(Path(args.storage) / name)
    trials = experiment.trials
    busy = float(trials["runtime_s"].sum())
    slot_seconds = wall * (gpus / float(share) if float(share) else 1)  # CPU only: one slot
    with_imports = busy + float(trials["startup_imports_s"].sum())
    per_hour = len(trials) / wall * 3600
    epochs = int(trials["epochs_done"].sum())
    text = (
        f"  gpus-per-trial {share}, {Path(args.storage) / name}: {len(trials)} trials, "
        f"{per_hour:.0f} trials/h ({epochs / wall * 3600:.0f} trial-epochs/h), efficiency {busy / slot_seconds:.2f} "
        f"({with_imports / slot_seconds:.2f} counting each trial's imports); median trial {trials['runtime_s'].median():.1f} s, "
        f"median start-up {trials['startup_s'].median():.1f} s\n    {where_the_wall_went(trials, start, end)}"
        f"\n    {epoch_parts(experiment.epochs, trials, min(len(trials), int(1 / float(share)) if float(share) else 1))}"
        + ("" if gpu_use is None else "\n    " + gpu_use.summary().replace("\n", "\n    "))
    )
    return per_hour, text


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument(
        "--shares", default="1,0.5,0.25", help="GPUs per trial to compare (0: CPU only, to check the script)"
    )
    parser.add_argument("--trials", type=int, default=16, help="non-deterministic repeats of one configuration")
    parser.add_argument("--det-repeats", default="1", help="deterministic repeats (2 or more: are they bit-identical?)")
    parser.add_argument("--modes", default=",".join(PAPER_MODES), help="passed to sweeps/run.py")
    parser.add_argument("--vary", default="none", help="arms, passed to sweeps/run.py (default: none)")
    parser.add_argument("--epochs", type=int, help="default: the preset's")
    parser.add_argument("--cpus-per-trial", default="2")
    parser.add_argument("--storage", default="/tmp/bench_packing")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="passed to sweeps/run.py (e.g. eval_every=4)"
    )
    parser.add_argument("--pin-cpus", action="store_true", help="passed to sweeps/run.py")
    return parser


def main() -> None:
    args = parser().parse_args()
    import torch

    card = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(
        f"{card} x {torch.cuda.device_count()} | {args.dataset}, modes {args.modes} ({args.trials} repeats, "
        f"{args.det_repeats} deterministic) per share, "
        f"{args.epochs or 'the preset'} epochs"
    )
    rows = []
    for share in args.shares.split(","):
        per_hour, text = study(args, share, f"share-{share}-{int(time.time())}")
        rows.append((share, per_hour))
        # why: each share's figures print as soon as its study ends, so a run cut short keeps them
        print(text, flush=True)
    print(
        "throughput against the first share: "
        + ", ".join(f"{share} {per_hour / rows[0][1]:.2f}x" for share, per_hour in rows)
    )


if __name__ == "__main__":
    main()
