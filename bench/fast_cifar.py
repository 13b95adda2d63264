"""Claim: the cifar10-fast preset reaches a mean test accuracy of at least
90.69% (airbench94's score on the project's JPEG-rebuilt CIFAR-10) in 10 s or less per trial on one
H100 or H200, in both modes, with the determinism contract kept.

This script trains trials one after another in one process (trainables.loop.run_trial, as a trial
runs it, minus Ray), so it measures accuracy and the training itself; the time of a whole trial,
start-up included, comes from a real sweep (`python sweeps/run.py --dataset cifar10-fast`, then
bench/study_facts.py). Usage on a GPU machine:
    python bench/fast_cifar.py --data-dir /tmp/data/cifar10 --seeds 0,1,2,3 [--set lr=0.8 ...]
Record the printed lines in bench/RESULTS.md with the card.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--preset", default="cifar10-fast")
    parser.add_argument("--seeds", default="0,1,2,3")
    parser.add_argument("--optimizer", default="sgd")
    parser.add_argument("--modes", default="nondeterministic,deterministic")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a trial setting")
    parser.add_argument("--device", default="cuda", help="cpu only to check that the script runs")
    args = parser.parse_args()
    import torch

    from sweeps.cli import parse_value
    from sweeps.grid import GridSpec, build_trials
    from sweeps.presets import PRESETS
    from trainables.config import TrialConfig
    from trainables.loop import run_trial

    preset = PRESETS[args.preset]
    overrides = {"data_dir": str(Path(args.data_dir).resolve()), "gpu_share": 1.0}
    for item in args.set:
        key, _, text = item.partition("=")
        overrides[key] = parse_value(text)
    seeds = tuple(int(s) for s in args.seeds.split(","))
    spec = GridSpec(seeds, (args.optimizer,), 1, 1, preset["trial"], preset["optimizers"], overrides)
    device = torch.device(args.device)
    card = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"{card} | {args.preset} {args.optimizer} {' '.join(args.set)}")
    for mode in args.modes.split(","):
        rows = []
        for trial in (t for t in build_trials(spec) if t["mode"] == mode):
            cfg = TrialConfig.from_dict(trial)
            reports: list[dict] = []
            run_trial(
                cfg, lambda m, s, into=reports: into.append(m), Path(tempfile.mkdtemp(prefix="fast_cifar_")), device
            )
            last = reports[-1]
            rows.append((last["final_metric"], last["runtime_s"], sum(r["train_time_s"] for r in reports)))
            print(
                f"  {mode} seed {cfg.seed}: test accuracy {last['final_metric']:.4f}, trial {last['runtime_s']:.2f} s "
                f"(training {rows[-1][2]:.2f} s), weights {last['weights_sha256'][:12]}",
                flush=True,
            )
        acc = np.array([r[0] for r in rows])
        print(
            f"{mode}: mean accuracy {acc.mean():.4f} +- {acc.std(ddof=1) if len(acc) > 1 else 0:.4f} over {len(acc)}, "
            f"median trial {np.median([r[1] for r in rows]):.2f} s, median training {np.median([r[2] for r in rows]):.2f} s"
        )


if __name__ == "__main__":
    main()
