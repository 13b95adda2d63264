"""The storage path's space: checked before a study starts, said in one line when it runs out;
Tune state files that do not parse are set aside so the newest intact one is restored."""

from __future__ import annotations

import json
from collections import namedtuple

import pytest

from sweeps import storage
from sweeps.cli import UsageError, parse
from trainables.models import create_model

Usage = namedtuple("Usage", "total used free")


def test_a_checkpoint_s_size_is_its_weights_and_optimizer_state():
    study = parse(["--dataset", "digits", "--optimizers", "adam"])
    small = storage.checkpoint_bytes(study.trials[0])

    model = create_model("small_cnn", 10, 3)
    params = sum(p.numel() for p in model.parameters())
    assert small >= 4 * params * 3  # weights + Adam's two moments
    assert (
        storage.checkpoint_bytes(parse(["--dataset", "cifar10", "--optimizers", "sgd"]).trials[0]) > 80e6
    )  # PreActResNet-18


def test_a_study_that_would_fill_the_disk_is_refused_before_it_starts(tmp_path, monkeypatch):
    study = parse(["--dataset", "cifar10", "--storage-path", str(tmp_path)])
    monkeypatch.setattr(storage.shutil, "disk_usage", lambda path: Usage(100e9, 95e9, 5e9))
    with pytest.raises(
        UsageError,
        match=r"--storage-path: 5.0 GB free at .*, and 210 trial\(s\) keeping 1 checkpoint\(s\) of about \d+ MB",
    ):
        storage.check_free_space(study, tmp_path / "cifar10-x", 210)
    storage.check_free_space(study, tmp_path / "cifar10-x", 0)  # a finished study needs nothing


def test_a_full_disk_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(storage.shutil, "disk_usage", lambda path: Usage(100e9, 100e9, 10 << 20))
    line = storage.disk_full(tmp_path)
    assert line.startswith(f"The disk holding {tmp_path} is full (10 MB free)") and "run the same command again" in line
    monkeypatch.setattr(storage.shutil, "disk_usage", lambda path: Usage(100e9, 50e9, 50e9))
    assert storage.disk_full(tmp_path) is None


def test_a_cut_off_state_file_is_set_aside_and_the_intact_one_stays(tmp_path):
    intact = tmp_path / "experiment_state-2026-11-30_10-00-00.json"
    intact.write_text(json.dumps({"trial_data": [], "runner_data": {}}))
    broken = tmp_path / "experiment_state-2026-11-30_11-00-00.json"
    broken.write_text('{"trial_data": [["{\\"stub')
    notes = storage.set_aside_broken_states(tmp_path)
    assert notes == [f"{broken.name} is cut off (a full disk?); set aside in .broken-state/"]
    assert intact.exists() and (tmp_path / ".broken-state" / broken.name).exists()


def test_an_earlier_failed_attempt_is_set_aside_once_a_later_run_finished(tmp_path):
    from analysis import load_experiment
    from tests.experiment_factory import write_trial

    failed = write_trial(
        tmp_path,
        optimizer="sgd",
        seed=1,
        mode="nondeterministic",
        repeat=1,
        scores=[0.5],
        finished=False,
        error="OSError: [Errno 28] No space left on device",
    )
    failed.rename(tmp_path / "sgd_seed1_nondet_r1_c798c_00008")
    write_trial(tmp_path, optimizer="sgd", seed=1, mode="nondeterministic", repeat=1, scores=[0.5, 0.6])
    still_failing = write_trial(
        tmp_path,
        optimizer="sgd",
        seed=2,
        mode="nondeterministic",
        repeat=0,
        scores=[0.5],
        finished=False,
        error="OSError: disk",
    )
    notes = storage.set_aside_earlier_attempts(tmp_path, load_experiment(tmp_path).trials)
    assert notes == [
        "sgd_seed1_nondet_r1: an earlier attempt (errored) moved to .superseded/; a later run of it finished"
    ]
    assert (
        tmp_path / ".superseded" / "sgd_seed1_nondet_r1_c798c_00008" / "error.txt"
    ).exists() and still_failing.exists()
