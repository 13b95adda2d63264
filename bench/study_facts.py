"""Print what a closing note needs from an experiment directory: every trial's digests and score,
the spread per configuration, and epoch times per mode.

Usage: python bench/study_facts.py EXPERIMENT_DIR
"""

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis import load_experiment  # noqa: E402

exp = load_experiment(sys.argv[1])
if exp.trials.empty:
    sys.exit(f"no trial under {sys.argv[1]}")
trials = exp.trials.sort_values(["optimizer", "seed", "mode", "repeat"])
for digest in ("weights_sha256", "init_sha256", "data_sha256"):
    trials[digest] = trials[digest].str[:12]
columns = [
    "optimizer",
    "seed",
    "mode",
    "repeat",
    "status",
    "final_metric",
    "weights_sha256",
    "init_sha256",
    "data_sha256",
    "runtime_s",
    "startup_s",
    *(c for c in trials if c.startswith("startup_") and c != "startup_s"),
    "energy_j",
    "restarts",
    "env_gpu",
]
with pd.option_context("display.width", 250, "display.max_rows", 500):
    print(trials[[c for c in columns if c in trials]].to_string(index=False))
    print(
        trials.groupby(["optimizer", "seed", "mode"])["final_metric"]
        .agg(["count", "mean", "std", "min", "max"])
        .to_string()
    )
    print(
        exp.epochs.groupby(["mode", "epoch"])[["epoch_time_s", "train_time_s"]]
        .agg(["mean", "min", "max"])
        .round(2)
        .to_string()
    )
