"""eval_every: held-out splits evaluated every k epochs and always the last, changing no final result."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from analysis import load_experiment
from sweeps.grid import GridSpec, build_trials
from sweeps.presets import PRESETS
from tests.conftest import run_report
from tests.test_determinism import train
from trainables.config import FieldError, TrialConfig

REPO = Path(__file__).resolve().parent.parent


def test_only_every_kth_and_the_last_epoch_are_evaluated_and_nothing_else_changes(tmp_path):
    every = train(tmp_path, "every", epochs=5, mode="deterministic")
    sparse = train(tmp_path, "sparse", epochs=5, mode="deterministic", eval_every=3)
    evaluated = [r["epoch"] for r in sparse if not math.isnan(r["test_accuracy"])]
    assert evaluated == [3, 5]
    assert all(set(r) == set(sparse[0]) for r in sparse[1:-1])  # one set of keys for every row, as progress.csv needs
    assert all(math.isnan(r["val_loss"]) and math.isnan(r["metric"]) for r in sparse if r["epoch"] in (1, 2, 4))
    for key in ("weights_sha256", "final_metric", "final_epoch", "init_sha256", "data_sha256"):
        assert sparse[-1][key] == every[-1][key], key
    assert sparse[2]["test_accuracy"] == every[2]["test_accuracy"]  # evaluating changes no training step


def test_eval_every_is_refused_where_an_epoch_needs_the_validation_split():
    base = PRESETS["digits"]
    spec = GridSpec((0,), ("adam",), 1, 1, base["trial"], base["optimizers"], {"data_dir": "", "gpu_share": 0.0})
    trial = build_trials(spec)[0]
    with pytest.raises(FieldError, match="eval_every must be at least 1"):
        TrialConfig.from_dict({**trial, "eval_every": 0})
    for setting in ({"select": "best_val_loss"}, {"scheduler": "plateau"}):
        with pytest.raises(FieldError, match="eval_every must be 1 with"):
            TrialConfig.from_dict({**trial, **setting, "eval_every": 2})


def test_a_study_written_before_eval_every_existed_still_loads_and_keeps_its_name():
    """Presets that evaluate every epoch leave the key out, so their default study's directory hash
    (the trial dicts) is as before; a params.json or study.json without it means every epoch.
    cifar10-fast evaluates every 4th epoch since 2026-11-30, which gave its default study a new name."""
    for name, preset in PRESETS.items():
        optimizer = next(iter(preset["optimizers"]))
        spec = GridSpec(
            (0,), (optimizer,), 1, 1, preset["trial"], preset["optimizers"], {"data_dir": "", "gpu_share": 0.0}
        )
        trial = build_trials(spec)[0]
        assert trial.get("eval_every") == (4 if name == "cifar10-fast" else None), name
        assert TrialConfig.from_dict({k: v for k, v in trial.items() if k != "eval_every"}).eval_every == 1


@pytest.mark.slow
def test_a_study_evaluated_every_other_epoch_reports_end_to_end(tmp_path):
    args = "--dataset digits --seeds 0 --optimizers sgd --repeats 1 --det-repeats 1 --epochs 3 --gpus-per-trial 0"
    study = [*args.split(), "--set", "eval_every=2", "--storage-path", str(tmp_path), "--name", "sparse"]
    proc = subprocess.run([sys.executable, "sweeps/run.py", *study], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    exp = load_experiment(tmp_path / "sparse")
    assert not exp.skipped and (exp.trials["final_metric"] > 0).all()
    scored = exp.epochs.groupby("epoch")["test_accuracy"].apply(lambda s: s.notna().all())
    assert scored.to_dict() == {1: False, 2: True, 3: True}
    report = run_report(tmp_path / "sparse", "--out", tmp_path / "report")
    assert report.returncode == 0 and "Integrity OK" in report.stdout, report.stdout + report.stderr
    assert pd.read_csv(tmp_path / "report" / "table2_configurations.csv")["n"].tolist() == [1]
