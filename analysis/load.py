"""An experiment directory (Ray Tune's layout) -> two DataFrames, reading the files directly.

trials: one row per trial: every params.json key, status, final and best metric, runtime, digests,
energy and environment (env_*). epochs: one row per trial and epoch. Works on a directory copied
from another machine, with no Ray running; survives errored trials, trials still running and a
truncated last line, and says what it skipped.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

KEYS = ["optimizer", "seed", "mode", "repeat"]
CONFIG_MARK = ', "config": '  # Ray Tune writes each result's config last; the metrics come before it
FINAL_KEYS = ("final_metric", "final_epoch", "weights_sha256", "init_sha256", "data_sha256", "runtime_s",
              "startup_s", "energy_j", "gpu_energy_j", "nondeterministic_ops")


@dataclass
class Experiment:
    path: Path
    trials: pd.DataFrame
    epochs: pd.DataFrame
    skipped: list[str] = field(default_factory=list)


def _parse_line(line: str) -> dict:
    """One result.json line without its (repeated, bulky) config; the whole line if that fails."""
    cut = line.rfind(CONFIG_MARK)
    if cut > 0:
        try:
            return json.loads(line[:cut] + "}")
        except ValueError:
            pass
    return json.loads(line)


def _read_results(path: Path, skipped: list[str]) -> list[dict]:
    if not path.is_file():
        return []
    lines = path.read_text(errors="replace").splitlines()
    results = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            results.append(_parse_line(line))
        except ValueError:
            where = "its last line (truncated)" if i == len(lines) - 1 else f"line {i + 1} (not JSON)"
            skipped.append(f"{path}: skipped {where}")
    return results


def _first_error_line(trial_dir: Path) -> str | None:
    path = trial_dir / "error.txt"
    if not path.is_file():
        return None
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if "Error" in ln.split(":")[0] or "Exception" in ln.split(":")[0]]
    return (errors or lines or ["(empty error.txt)"])[-1]


def load_experiment(path: str | Path) -> Experiment:
    """Read every trial folder (one holding params.json) under `path`."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such experiment directory")
    skipped: list[str] = []
    trial_rows, epoch_frames = [], []
    for params_file in sorted(path.glob("*/params.json")):
        trial_dir = params_file.parent
        try:
            params = json.loads(params_file.read_text())
        except ValueError:
            skipped.append(f"{params_file}: not JSON, trial skipped")
            continue
        results = _read_results(trial_dir / "result.json", skipped)
        error = _first_error_line(trial_dir)
        last = results[-1] if results else {}
        status = "errored" if error else "finished" if "weights_sha256" in last else "running"
        row = {"trial": trial_dir.name, **{k: v for k, v in params.items() if not isinstance(v, (list, dict))},
               **{k: json.dumps(v) for k, v in params.items() if isinstance(v, (list, dict))},
               "status": status, "error": error, "epochs_done": int(last.get("epoch", 0)),
               "best_metric": max((r["metric"] for r in results if isinstance(r.get("metric"), (int, float))), default=None)}
        for key in FINAL_KEYS:
            value = last.get(key)
            row[key] = json.dumps(value) if isinstance(value, list) else value
        for key, value in (last.get("env") or {}).items():
            row[f"env_{key}"] = value
        trial_rows.append(row)
        if results:
            frame = pd.DataFrame.from_records(
                [{k: v for k, v in r.items() if not isinstance(v, (dict, list)) and k not in FINAL_KEYS} for r in results])
            frame.insert(0, "trial", trial_dir.name)
            epoch_frames.append(frame)
    trials = pd.DataFrame(trial_rows)
    epochs = pd.concat(epoch_frames, ignore_index=True) if epoch_frames else pd.DataFrame(columns=["trial", "epoch"])
    if len(trials) and len(epochs):
        keys = [k for k in KEYS if k in trials.columns]
        epochs = epochs.merge(trials[["trial", *keys]], on="trial", how="left")
    return Experiment(path, trials, epochs, skipped)
