"""Print what a closing note needs from an experiment directory: digests, spread, epoch times.

Usage: python bench/study_facts.py EXPERIMENT_DIR
Reads each trial's result.json directly (one JSON object per epoch).
"""
import json
import sys
from pathlib import Path

import pandas as pd

rows, epochs = [], []
for result in sorted(Path(sys.argv[1]).glob("*/result.json")):
    lines = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
    if not lines:
        continue
    cfg, last = lines[-1]["config"], lines[-1]
    rows.append({"optimizer": cfg["optimizer"], "seed": cfg["seed"], "mode": cfg["mode"], "repeat": cfg["repeat"],
                 "final": last.get("final_metric"), "weights": (last.get("weights_sha256") or "")[:12],
                 "init": (last.get("init_sha256") or "")[:12], "data": (last.get("data_sha256") or "")[:12],
                 "runtime_s": last.get("runtime_s"), "startup_s": last.get("startup_s"),
                 "energy_j": last.get("energy_j"), "gpu": (last.get("env") or {}).get("gpu")})
    epochs += [{"mode": cfg["mode"], "epoch": r["epoch"], "epoch_time_s": r["epoch_time_s"],
                "train_time_s": r["train_time_s"]} for r in lines]
if not rows:
    sys.exit(f"no trial with results under {sys.argv[1]}")
df = pd.DataFrame(rows).sort_values(["optimizer", "seed", "mode", "repeat"])
with pd.option_context("display.width", 250, "display.max_rows", 500):
    print(df.to_string(index=False))
    print(df.groupby(["optimizer", "seed", "mode"])["final"].agg(["count", "mean", "std", "min", "max"]).to_string())
    print(pd.DataFrame(epochs).groupby(["mode", "epoch"])[["epoch_time_s", "train_time_s"]].agg(["mean", "min", "max"]).round(2).to_string())
