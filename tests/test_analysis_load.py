import json
import subprocess
import sys

import numpy as np
import pytest

from analysis import load_experiment
from tests.conftest import REPO
from tests.experiment_factory import STUDY, write_study, write_trial


def test_one_row_per_trial_and_per_epoch(tmp_path):
    exp = load_experiment(write_study(tmp_path))
    n = sum(len(v["det"]) + len(v["nondet"]) for v in STUDY.values())
    assert len(exp.trials) == n and len(exp.epochs) == 2 * n
    assert (exp.trials["status"] == "finished").all() and exp.skipped == []
    row = exp.trials.set_index(["optimizer", "seed", "mode", "repeat"]).loc[("adam", 0, "nondeterministic", 1)]
    assert row["final_metric"] == 0.93 and row["best_metric"] == 0.93 and row["runtime_s"] == 91.0
    assert row["weights_sha256"] == "adam0-1" and row["env_gpu"] == "Fixture GPU" and row["lr"] == 0.1
    assert set(exp.epochs.columns) >= {"trial", "epoch", "metric", "train_loss", "optimizer", "seed", "mode", "repeat"}
    assert "config" not in exp.epochs.columns
    assert all(epochs == [1, 2] for epochs in exp.epochs.groupby("trial")["epoch"].apply(list))


def test_errored_running_and_truncated_trials_are_kept_and_explained(tmp_path):
    write_trial(tmp_path, optimizer="sgd", seed=0, mode="deterministic", repeat=0, scores=[0.5, 0.6])
    write_trial(
        tmp_path,
        optimizer="sgd",
        seed=0,
        mode="nondeterministic",
        repeat=0,
        scores=[0.5],
        finished=False,
        error="RuntimeError: CUDA out of memory. Tried to allocate 2 GiB",
    )
    write_trial(
        tmp_path, optimizer="sgd", seed=0, mode="nondeterministic", repeat=1, scores=[0.5, 0.55, 0.58], finished=False
    )
    write_trial(
        tmp_path,
        optimizer="sgd",
        seed=0,
        mode="nondeterministic",
        repeat=2,
        scores=[0.4, 0.45, 0.7],
        truncate_last_line=True,
    )
    exp = load_experiment(tmp_path)
    status = {
        name.split("_")[2] + "_" + name.split("_")[3]: s for name, s in zip(exp.trials["trial"], exp.trials["status"])
    }
    assert status == {"det_r0": "finished", "nondet_r0": "errored", "nondet_r1": "running", "nondet_r2": "running"}
    errored = exp.trials[exp.trials["status"] == "errored"].iloc[0]
    assert errored["error"] == "RuntimeError: CUDA out of memory. Tried to allocate 2 GiB"
    truncated = exp.trials[exp.trials["trial"].str.contains("nondet_r2")].iloc[0]
    assert truncated["status"] == "running" and truncated["epochs_done"] == 2  # the two whole lines were kept
    assert len(exp.skipped) == 2 and all(
        "nondet_r2" in s and "truncated" in s for s in exp.skipped
    )  # result.json and progress.csv
    assert exp.epochs[exp.epochs["trial"] == truncated["trial"]]["epoch"].tolist() == [1, 2]
    assert np.isnan(exp.trials.loc[exp.trials["status"] != "finished", "final_metric"].astype(float)).all()


def test_the_analysis_needs_neither_torch_nor_ray(tmp_path):
    write_study(tmp_path)
    code = (
        "import sys; from analysis import load_experiment, report, compare, sources; e = load_experiment(sys.argv[1]); "
        "report.build(e, __import__('pathlib').Path(sys.argv[1]) / 'out'); assert len(e.trials) == 24; "
        "assert not {'ray', 'torch', 'trainables', 'sweeps'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=REPO, check=True)


def test_result_json_is_the_truth_where_progress_csv_is_missing_or_behind(tmp_path):
    write_trial(
        tmp_path, optimizer="adam", seed=0, mode="deterministic", repeat=0, scores=[0.1, 0.2, 0.3], progress_csv=False
    )
    behind = write_trial(tmp_path, optimizer="adam", seed=0, mode="deterministic", repeat=1, scores=[0.1, 0.2, 0.4])
    csv = (behind / "progress.csv").read_text().splitlines()
    (behind / "progress.csv").write_text("\n".join(csv[:-1]) + "\n")  # one epoch short, as after a crash
    write_trial(tmp_path, optimizer="adam", seed=0, mode="nondeterministic", repeat=0, scores=[0.1, 0.2, 0.5])
    exp = load_experiment(tmp_path)
    per_trial = exp.epochs.groupby("trial")["metric"].apply(list).to_dict()
    assert sorted(map(tuple, per_trial.values())) == [(0.1, 0.2, 0.3), (0.1, 0.2, 0.4), (0.1, 0.2, 0.5)]
    assert exp.trials["best_metric"].tolist() == [0.3, 0.4, 0.5]
    assert exp.epochs["trial"].is_monotonic_increasing  # trials in folder order, epochs in order


def test_a_malformed_progress_csv_falls_back_to_result_json(tmp_path):
    bad = write_trial(tmp_path, optimizer="sgd", seed=1, mode="deterministic", repeat=0, scores=[0.1, 0.2, 0.3])
    lines = (bad / "progress.csv").read_text().splitlines()
    lines[1] += ",surplus,fields"
    (bad / "progress.csv").write_text("\n".join(lines) + "\n")
    exp = load_experiment(tmp_path)
    assert exp.epochs["metric"].tolist() == [0.1, 0.2, 0.3] and exp.trials["status"].tolist() == ["finished"]


def test_keys_ray_writes_after_the_config_are_kept(tmp_path):
    directory = write_trial(tmp_path, optimizer="sgd", seed=0, mode="deterministic", repeat=0, scores=[0.5, 0.6])
    lines = (directory / "result.json").read_text().splitlines()
    lines[-1] = lines[-1][:-1] + ', "time_since_restore": 3.5, "started_at": 1700000000.0}'
    (directory / "result.json").write_text("\n".join(lines) + "\n")
    trial = load_experiment(tmp_path).trials.iloc[0]
    assert trial["started_at"] == 1700000000.0 and trial["final_metric"] == 0.6 and trial["last_metric"] == 0.6


def test_a_last_line_that_is_json_but_not_an_object_is_a_note(tmp_path):
    directory = write_trial(tmp_path, optimizer="sgd", seed=0, mode="deterministic", repeat=0, scores=[0.5, 0.6])
    with open(directory / "result.json", "a") as f:
        f.write("42\n")
    exp = load_experiment(tmp_path)
    assert exp.trials.iloc[0]["status"] == "finished" and any("skipped its last line" in s for s in exp.skipped)


def test_the_per_epoch_key_format_is_written_and_parsed_in_one_place():
    from layout import epoch_key, parse_epoch_key

    assert epoch_key(7, "weight") == "e0007_weight" and parse_epoch_key("e0007_weight") == (7, "weight")
    assert parse_epoch_key(epoch_key(12345, "head.bias")) == (12345, "head.bias")
    for bad in ("weight", "e_weight", "x0001_weight", "e0001"):
        with pytest.raises(ValueError, match="not an epoch key"):
            parse_epoch_key(bad)


def test_epochs_logged_twice_after_a_restart_keep_the_later_run(tmp_path):
    directory = write_trial(
        tmp_path, optimizer="sgd", seed=0, mode="deterministic", repeat=0, scores=[0.1, 0.2, 0.3], progress_csv=False
    )
    lines = (directory / "result.json").read_text().splitlines()
    first_run = [json.loads(line) for line in lines[1:2]]
    for result in first_run:
        result["metric"] = 0.15  # the run before the restart reached epoch 2 with another score
    (directory / "result.json").write_text("\n".join([lines[0], *map(json.dumps, first_run), *lines[1:]]) + "\n")
    exp = load_experiment(tmp_path)
    assert exp.epochs["epoch"].tolist() == [1, 2, 3] and exp.epochs["metric"].tolist() == [0.1, 0.2, 0.3]
    assert any("epochs [2] ran twice (a restart); the later run is kept" in note for note in exp.skipped)


def test_a_last_result_line_over_64_kib_is_read_whole(tmp_path):
    directory = write_trial(tmp_path, optimizer="sgd", seed=0, mode="deterministic", repeat=0, scores=[0.1, 0.2])
    lines = (directory / "result.json").read_text().splitlines()
    last = json.loads(lines[-1])
    last["nondeterministic_ops"] = ["x" * 1000] * 300  # 300 KB on one line
    (directory / "result.json").write_text("\n".join([*lines[:-1], json.dumps(last)]) + "\n")
    trial = load_experiment(tmp_path).trials.iloc[0]
    assert (
        trial["status"] == "finished" and trial["final_metric"] == 0.2 and len(trial["nondeterministic_ops"]) > 300_000
    )
