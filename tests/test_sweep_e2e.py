"""A small study through Ray Tune, run exactly as a user runs it, and the files it leaves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

ARGS = [
    *"--dataset digits --seeds 0,1 --optimizers sgd --repeats 2 --det-repeats 2 --epochs 2 --cpus-per-trial 1 --gpus-per-trial 0 --max-concurrent 2 --name e2e".split()
]
PARAMS = {
    "dataset",
    "model",
    "seed",
    "optimizer",
    "mode",
    "repeat",
    "epochs",
    "batch_size",
    "lr",
    "momentum",
    "weight_decay",
}
EPOCH_KEYS = {
    "epoch",
    "train_loss",
    "val_accuracy",
    "test_accuracy",
    "test_f1",
    "metric",
    "lr",
    "epoch_time_s",
    "samples_per_s",
}
FINAL_KEYS = {"weights_sha256", "init_sha256", "data_sha256", "runtime_s", "energy_j", "env", "final_metric"}


def run(storage: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "sweeps/run.py", *ARGS, "--storage-path", str(storage)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    storage = tmp_path_factory.mktemp("experiments")
    proc = run(storage)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return storage / "e2e", proc


def trials(experiment: Path) -> dict[str, tuple[dict, list[dict]]]:
    out = {}
    for params in sorted(experiment.glob("*/params.json")):
        results = [json.loads(line) for line in (params.parent / "result.json").read_text().splitlines()]
        out[params.parent.name] = (json.loads(params.read_text()), results)
    return out


def test_every_trial_leaves_the_contract_files(study):
    experiment, _ = study
    found = trials(experiment)
    assert len(found) == 2 * 1 * (2 + 2)
    for name, (params, results) in found.items():
        assert PARAMS <= set(params), name
        assert name.startswith(
            f"sgd_seed{params['seed']}_{'det' if params['mode'] == 'deterministic' else 'nondet'}_r{params['repeat']}"
        )
        assert [r["epoch"] for r in results] == [1, 2]
        assert all(EPOCH_KEYS <= set(r) for r in results)
        assert FINAL_KEYS <= set(results[-1])
        directory = experiment / name
        assert (directory / "progress.csv").is_file()
        assert list(directory.glob("events.out.tfevents.*")), "TensorBoard event file"
        assert sorted(np.load(directory / "last_layer.npz").files) == [
            "e0001_bias",
            "e0001_weight",
            "e0002_bias",
            "e0002_weight",
        ]
        assert np.load(directory / "predictions.npz")["probs"].shape[1] == 10
        assert [c.name for c in directory.glob("checkpoint_*")] == [
            "checkpoint_000001"
        ]  # --keep-checkpoints 1: the last


def test_digests_hold_the_determinism_contract_on_cpu(study):
    experiment, _ = study
    by_seed: dict[int, list[dict]] = {}
    for params, results in trials(experiment).values():
        by_seed.setdefault(params["seed"], []).append(results[-1])
    for finals in by_seed.values():
        assert len({f["init_sha256"] for f in finals}) == 1
        assert len({f["data_sha256"] for f in finals}) == 1
        assert len({f["weights_sha256"] for f in finals}) == 1  # CPU: no CUDA noise, both modes identical
    assert by_seed[0][0]["init_sha256"] != by_seed[1][0]["init_sha256"]
    assert by_seed[0][0]["data_sha256"] != by_seed[1][0]["data_sha256"]


def test_each_trial_runs_in_its_own_process_forked_from_a_kept_slot(study):
    experiment, _ = study
    envs = [results[-1]["env"] for _, results in trials(experiment).values()]
    assert len({e["pid"] for e in envs}) == len(envs)
    slots = {e["parent_pid"] for e in envs}
    assert len(slots) <= 2 < len(envs)  # --max-concurrent 2: two slot processes ran all eight trials
    assert not slots & {e["pid"] for e in envs}


def test_summary_reports_each_configuration_and_mode(study):
    _, proc = study
    lines = proc.stdout.splitlines()
    assert any("sgd" in line and "deterministic" in line and "2/2" in line and "yes" in line for line in lines)
    assert sum("nondeterministic" in line and "2/2" in line and "all 2 equal" in line for line in lines) == 2
    assert "Traceback" not in proc.stdout + proc.stderr


def test_running_the_same_command_again_trains_nothing_again(study):
    experiment, _ = study
    before = {name: len(results) for name, (_, results) in trials(experiment).items()}
    proc = run(experiment.parent)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("This study has already finished: all 8 trials are in")
    assert "Resuming" not in proc.stdout  # Ray was not even started
    assert {name: len(results) for name, (_, results) in trials(experiment).items()} == before


def test_tensorboard_shows_loss_and_metric_curves_per_trial(study):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    experiment, _ = study
    for name, (_params, results) in trials(experiment).items():
        events = EventAccumulator(str(next((experiment / name).glob("events.out.tfevents.*"))))
        events.Reload()
        tags = set(events.Tags()["scalars"])
        assert {"ray/tune/train_loss", "ray/tune/metric", "ray/tune/test_accuracy"} <= tags
        curve = [(e.step, round(e.value, 5)) for e in events.Scalars("ray/tune/metric")]
        assert curve == [
            (r["epoch"], round(r["metric"], 5)) for r in results
        ]  # one point per epoch, the reported value
