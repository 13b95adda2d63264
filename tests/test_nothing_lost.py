"""A real small study: its driver killed with SIGKILL mid-run and run again, trials failing and
retried from their checkpoints; each compared with an uninterrupted run of the same grid."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from trainables.tune_entry import FAIL_AT_EPOCH_ENV

pytestmark = pytest.mark.slow

EPOCHS = 6
GRID = [
    *"--dataset digits --seeds 0 --optimizers sgd --repeats 2 --det-repeats 2 --epochs".split(),
    str(EPOCHS),
    *"--gpus-per-trial 0 --cpus-per-trial 1".split(),
]


def command(storage: Path, name: str, *extra: str) -> list[str]:
    return [sys.executable, "sweeps/run.py", *GRID, "--storage-path", str(storage), "--name", name, *extra]


def run(storage: Path, name: str, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        command(storage, name, *extra),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


def finals(experiment: Path) -> dict[str, dict]:
    """Trial label -> its last result; the label leaves out Tune's trial id."""
    out = {}
    for result in sorted(experiment.glob("*/result.json")):
        lines = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        label = "_".join(result.parent.name.split("_")[:4])
        assert label not in out, f"{label} ran twice"
        out[label] = {**lines[-1], "epochs_logged": sorted({r["epoch"] for r in lines})}
    return out


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> Path:
    storage = tmp_path_factory.mktemp("reference")
    proc = run(storage, "ref")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return storage


@pytest.fixture(scope="module")
def reference(reference_run) -> dict[str, dict]:
    return finals(reference_run / "ref")


def test_a_finished_trial_whose_last_line_was_cut_off_is_finished_again(tmp_path, reference_run, reference):
    shutil.copytree(reference_run / "ref", tmp_path / "ref")
    victim = sorted((tmp_path / "ref").glob("sgd_seed0_nondet_r1_*/result.json"))[0]
    text = victim.read_text()
    victim.write_text(
        text[: len(text) - len(text.splitlines()[-1]) // 2]
    )  # half the final line, as a kill or a full disk leaves
    proc = run(tmp_path, "ref")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "its last result was cut off; written again from Tune's saved state" in proc.stdout
    assert "already finished" in proc.stdout
    assert (
        finals(tmp_path / "ref")["sgd_seed0_nondet_r1"]["weights_sha256"]
        == reference["sgd_seed0_nondet_r1"]["weights_sha256"]
    )


def test_a_driver_killed_mid_run_continues_where_it_stopped(tmp_path, reference):
    experiment = tmp_path / "killed"
    # why: Tune records which checkpoint a trial reached in its experiment state every 5 s (sweeps.pruning)
    # by default; after a kill -9 a trial continues from the last one recorded there. Recording
    # every 0.2 s here makes "killed part-way through, continued from a checkpoint" certain.
    env = {**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "0.2"}
    driver = subprocess.Popen(
        command(tmp_path, "killed"), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # wait until a trial is part-way through, and recorded so
        counts = [len(p.read_text().splitlines()) for p in experiment.glob("*/result.json")]
        if any(2 <= c <= 4 for c in counts):
            time.sleep(0.3)
            if any(2 <= len(p.read_text().splitlines()) < EPOCHS for p in experiment.glob("*/result.json")):
                break
        time.sleep(0.05)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    proc = run(tmp_path, "killed")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    resumed = finals(experiment)
    assert set(resumed) == set(reference)  # every trial once, none lost or duplicated
    for label, final in resumed.items():
        assert final["epochs_logged"] == list(range(1, EPOCHS + 1))
        assert final["weights_sha256"] == reference[label]["weights_sha256"], label
    assert any(f["restarts"] >= 1 for f in resumed.values())  # the trial caught mid-run continued from a checkpoint
    for directory in experiment.glob("sgd_*"):  # what the killed run left is pruned too, to --keep-checkpoints 1
        assert len(list(directory.glob("checkpoint_*"))) == 1, directory.name


def test_a_failing_trial_is_retried_from_its_checkpoint_and_ends_as_if_it_never_failed(tmp_path, reference):
    proc = run(tmp_path, "retried", "--max-failures", "1", env={FAIL_AT_EPOCH_ENV: "3"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "retry" in proc.stdout and "failure injected at epoch 3" in proc.stdout
    retried = finals(tmp_path / "retried")
    assert set(retried) == set(reference)
    for label, final in retried.items():
        assert (final["restarts"], final["restart_epochs"]) == (1, [2])
        assert final["weights_sha256"] == reference[label]["weights_sha256"], label


def test_a_study_whose_tune_state_was_cut_off_resumes_from_its_folders(tmp_path, reference_run, reference):
    shutil.copytree(reference_run / "ref", tmp_path / "ref")
    experiment = tmp_path / "ref"
    cut = sorted(experiment.glob("sgd_seed0_det_r1_*/result.json"))[0]
    cut.write_text("\n".join(cut.read_text().splitlines()[:4]) + "\n")  # stopped after epoch 4, as a full disk left it
    for state in [experiment / "tuner.pkl", *experiment.glob("experiment_state-*.json")]:
        state.write_bytes(state.read_bytes()[: state.stat().st_size // 3])
    proc = run(tmp_path, "ref")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "could not be read" in proc.stdout and "the 1 trial(s) not finished on disk start again" in proc.stdout
    assert [p.name.split("_")[:4] for p in (experiment / ".superseded").iterdir()] == [["sgd", "seed0", "det", "r1"]]
    again = finals(experiment)
    assert again["sgd_seed0_det_r1"]["weights_sha256"] == reference["sgd_seed0_det_r1"]["weights_sha256"]
    assert {k: v["weights_sha256"] for k, v in again.items()} == {k: v["weights_sha256"] for k, v in reference.items()}


def test_a_corrupt_study_file_is_one_line(tmp_path, reference_run):
    shutil.copytree(reference_run / "ref", tmp_path / "ref")
    (tmp_path / "ref" / "study.json").write_text('{"trials": [')
    proc = run(tmp_path, "ref")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == (
        f"error: --name: {tmp_path / 'ref' / 'study.json'} cannot be read (Expecting value: line 1 column 13 "
        f"(char 12)); move {tmp_path / 'ref'} aside or choose another --name"
    )
