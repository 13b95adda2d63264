"""Claims (issue #30): how many more trial-epochs an hour a preset's packed trials give under CUDA
MPS than time-sliced, at the preset's packing and at twice it; that deterministic repeats keep their
digest under MPS; and whether the non-deterministic runs differ as often (the autotuner times its
candidates beside other processes' kernels under MPS, which may change what it picks).

Each share runs the same small study (bench/packing.py: sweeps/run.py, Ray, Tune, the trainable)
without and with the MPS control daemon, which this script starts and stops (sweeps/mps.py); the
order alternates between shares so that a drifting machine does not favour one side. While a study
runs, the daemon is asked every second how many clients its server has: the largest count is
printed, so "MPS on" is a measurement, not an assumption. Then `--plain K` bare processes of the
preset's plain training loop (bench/real_path.py, channels_last, no Ray) run at once, time-sliced
and under MPS: what MPS does without Ray.

    python bench/mps.py --dataset cifar10 --data-dir /tmp/data/cifar10 --shares 0.25,0.125 --epochs 3 --plain 4
Record the printed lines in bench/RESULTS.md with the card and the commit.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import packing  # noqa: E402  (bench/ is the script's own folder)

from sweeps import mps  # noqa: E402


@contextlib.contextmanager
def daemon(on: bool) -> Iterator[list[int]]:
    """MPS on (started here, stopped after) or off; yields the client counts sampled every second."""
    counts: list[int] = []
    if not on:
        if mps.running():
            sys.exit("an MPS daemon is already running: the time-sliced side cannot be measured here")
        yield counts
        return
    started = mps.start(Path(tempfile.mkdtemp(prefix="mps-log-")))
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(1.0):
            counts.append(mps.clients())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield counts
    finally:
        stop.set()
        thread.join()
        mps.stop(started)
        deadline = time.monotonic() + 10
        while mps.running() and time.monotonic() < deadline:
            time.sleep(0.2)


def plain(args: argparse.Namespace, k: int) -> tuple[float, list[float]]:
    """K bare plain-loop processes at once: (their summed epochs per hour, each one's median epoch s)."""
    command = [sys.executable, "bench/real_path.py", "--plain", args.plain_mode, "--plain-layout", "channels_last"]
    command += ["--dataset", args.dataset, "--data-dir", args.data_dir, "--epochs", str(args.plain_epochs)]
    procs = [
        subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(k)
    ]
    medians = []
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode != 0:
            sys.exit(f"plain loop failed:\n{err[-3000:]}")
        times = next(iter(json.loads(out.splitlines()[-1]).values()))
        medians.append(float(np.median(times[1:])))  # epochs 2..: the first holds cuDNN's autotuning
    return sum(3600 / m for m in medians), medians


def main() -> None:
    parser = packing.parser()
    parser.description = __doc__
    parser.add_argument("--plain", type=int, default=0, help="bare plain-loop processes at once (0: none)")
    parser.add_argument("--plain-epochs", type=int, default=3)
    parser.add_argument("--plain-mode", default="nondeterministic")
    args = parser.parse_args()
    import torch

    print(
        f"{torch.cuda.get_device_name()} x {torch.cuda.device_count()}, {os.cpu_count()} cores | {args.dataset}, "
        f"{args.trials} repeats + {args.det_repeats} deterministic per study, {args.epochs or 'the preset'} epochs",
        flush=True,
    )
    stamp = int(time.time())
    for i, share in enumerate(args.shares.split(",")):
        rates = {}
        for on in (False, True) if i % 2 == 0 else (True, False):
            label = "MPS" if on else "time-sliced"
            with daemon(on) as counts:
                rates[label], text = packing.study(args, share, f"{label}-{share}-{stamp}")
            seen = f"; MPS clients at once: at most {max(counts, default=0)}" if on else ""
            print(f"{label}{seen}\n{text}", flush=True)
        print(f"share {share}: MPS / time-sliced = {rates['MPS'] / rates['time-sliced']:.2f}x\n", flush=True)
    if args.plain:
        rates = {}
        for on in (False, True):
            label = "MPS" if on else "time-sliced"
            with daemon(on) as counts:
                rates[label], medians = plain(args, args.plain)
            seen = f", MPS clients at most {max(counts, default=0)}" if on else ""
            print(
                f"plain loop x {args.plain} ({args.plain_mode}), {label}: {rates[label]:.0f} epochs/h; "
                f"median epochs {', '.join(f'{m:.3f}' for m in medians)} s{seen}",
                flush=True,
            )
        print(f"plain loop x {args.plain}: MPS / time-sliced = {rates['MPS'] / rates['time-sliced']:.2f}x")


if __name__ == "__main__":
    main()
