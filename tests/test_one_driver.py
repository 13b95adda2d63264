"""One driver per study, any signal, any directory (issue #32): real drivers started, doubled,
killed at several moments of their start, sent SIGTERM, and run from elsewhere."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analysis import load_experiment, stats
from sweeps.lock import LOCK_FILE
from sweeps.run import KILL_AT_ENV
from tests.conftest import REPO, write_images
from tests.experiment_factory import write_study

pytestmark = pytest.mark.slow

GRID = "--dataset digits --seeds 0 --optimizers sgd --repeats 1 --det-repeats 1 --epochs 2 --gpus-per-trial 0 --cpus-per-trial 1"


def command(storage: Path, *extra: str) -> list[str]:
    return [sys.executable, str(REPO / "sweeps" / "run.py"), *GRID.split(), "--storage-path", str(storage), *extra]


def run(storage: Path, *extra: str, cwd: Path = REPO, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        command(storage, *extra),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


def trial_folders(experiment: Path) -> list[str]:
    return sorted(p.parent.name for p in experiment.glob("*/params.json"))


def wait_for(condition, timeout: float = 300) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_second_driver_on_a_running_study_says_who_holds_it_and_touches_nothing(tmp_path):
    first = subprocess.Popen(command(tmp_path, "--name", "twice"), cwd=REPO, stdout=subprocess.PIPE, text=True)
    experiment = tmp_path / "twice"
    wait_for(lambda: (experiment / "study.json").is_file())
    before = sorted(p.name for p in experiment.iterdir())
    second = run(tmp_path, "--name", "twice")
    lines = second.stderr.strip().splitlines()
    assert second.returncode == 2 and len(lines) == 1, second.stdout + second.stderr
    assert lines[0].startswith(f"error: {experiment} is being run by process {first.pid} on ")
    assert sorted(p.name for p in experiment.iterdir()) == before or first.poll() is not None
    out, _ = first.communicate(timeout=600)
    assert first.returncode == 0, out
    assert len(trial_folders(experiment)) == 2  # the grid: one deterministic and one non-deterministic trial


def test_the_analysis_refuses_integrity_ok_for_a_trial_run_twice(tmp_path):
    write_study(tmp_path)
    original = sorted(tmp_path.glob("sgd_seed0_nondet_r1_*"))[0]
    (tmp_path / f"{original.name}-again").mkdir()
    for f in original.iterdir():
        (tmp_path / f"{original.name}-again" / f.name).write_bytes(f.read_bytes())
    problems = stats.integrity(load_experiment(tmp_path).trials)
    assert problems["check"].tolist() == ["each trial of the grid ran once"]
    assert "sgd_seed0_nondet_r1: 2 finished trials" in problems["detail"].iloc[0]


def test_a_driver_killed_at_any_moment_of_its_start_leaves_a_study_the_same_command_resumes(tmp_path):
    for moment in ("locked", "study-written", "ray-started"):  # each run killed later than the last
        killed = run(tmp_path, "--name", "start", env={KILL_AT_ENV: moment})
        assert killed.returncode == -signal.SIGKILL, moment + killed.stdout + killed.stderr
        assert not (tmp_path / "start").exists() or (tmp_path / "start" / LOCK_FILE).is_file()
    again = run(tmp_path, "--name", "start")
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(trial_folders(tmp_path / "start")) == 2
    assert (tmp_path / "start" / LOCK_FILE).is_file()  # released, not deleted: a lock file is harmless


def test_a_driver_killed_during_the_first_epoch_resumes(tmp_path):
    driver = subprocess.Popen(
        command(tmp_path, "--name", "early"), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_for(lambda: any((tmp_path / "early").glob("*/params.json")))
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    again = run(tmp_path, "--name", "early")
    assert again.returncode == 0, again.stdout + again.stderr
    trials = load_experiment(tmp_path / "early").trials
    assert len(trials) == 2 and (trials["status"] == "finished").all()


@pytest.mark.parametrize("to", ["driver", "group"])
def test_sigterm_stops_like_ctrl_c_and_says_how_to_resume(tmp_path, to):
    """docker stop signals the driver alone; systemd, Slurm and `timeout` signal every process of the job,
    Ray's control store among them, under the driver's graceful stop."""
    from sweeps.run import Stopping

    storage = tmp_path / "with space"
    driver = subprocess.Popen(
        command(storage, "--name", "term"),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    wait_for(lambda: any((storage / "term").glob("*/result.json")))
    sent = time.monotonic()
    if to == "group":
        os.killpg(driver.pid, signal.SIGTERM)
    else:
        driver.send_signal(signal.SIGTERM)
    out, err = driver.communicate(timeout=300)
    assert driver.returncode == 143, out + err
    assert time.monotonic() - sent < Stopping.GRACE_S + 20
    assert "Traceback" not in out + err and "logging.cc" not in err  # no Ray stack dump
    assert "SIGTERM: stopping; to continue" in out
    assert ("Stopped by SIGTERM" if to == "driver" else f"Still stopping {Stopping.GRACE_S:g} s after SIGTERM") in out
    resume = out.strip().splitlines()[-1].strip()
    assert shlex.split(resume)[1:] == command(storage, "--name", "term")[1:]  # quoted: the space survives
    if to == "driver":
        return  # the harder stop's resume is run below: Ray's processes died under it
    again = subprocess.run(
        [sys.executable, *shlex.split(resume)[1:]], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"python -m analysis report {shlex.quote(str(storage / 'term'))}" in again.stdout
    trials = load_experiment(storage / "term").trials
    assert len(trials) == 2 and (trials["status"] == "finished").all()


def test_the_same_command_from_another_directory_is_the_same_study(tmp_path, monkeypatch):
    from sweeps import launch
    from sweeps.cli import parse

    args = [*GRID.split(), "--storage-path", str(tmp_path)]
    here = parse(args)
    monkeypatch.chdir(tmp_path)  # --data-dir's default, "data", now resolves elsewhere
    there = parse(args)
    assert here.trials[0]["data_dir"] != there.trials[0]["data_dir"]
    assert launch.experiment_name(here) == launch.experiment_name(there)
    experiment = tmp_path / launch.experiment_name(here)
    experiment.mkdir()
    launch.write_study(experiment, list(here.trials))
    assert launch.check_existing(experiment, list(there.trials))  # digits reads no data directory: resumed


def test_a_study_named_before_the_data_directory_left_its_identity_keeps_its_name(tmp_path):
    from sweeps import launch
    from sweeps.cli import parse

    study = parse([*GRID.split(), "--storage-path", str(tmp_path)])
    legacy = launch._name(study, list(study.trials))  # the hash over every setting, data_dir included
    assert launch.experiment_name(study) != legacy
    (tmp_path / legacy).mkdir()
    assert launch.experiment_name(study) == legacy


def test_a_changed_data_directory_is_named_as_such(tmp_path):
    from sweeps import launch
    from sweeps.cli import UsageError, parse

    for name in ("a", "b"):
        for k, label in enumerate(("cats", "dogs")):
            write_images(tmp_path / name / label, 20, seed=k)
    base = ["--seeds", "0", "--optimizers", "sgd", "--repeats", "1", "--det-repeats", "1"]
    first, moved = (parse([*base, "--dataset", f"folder:{tmp_path / n}"]) for n in ("a", "b"))
    assert launch.experiment_name(first) == launch.experiment_name(moved)
    experiment = tmp_path / "study"
    experiment.mkdir()
    launch.write_study(experiment, list(first.trials))
    with pytest.raises(UsageError) as refused:
        launch.check_existing(experiment, list(moved.trials), "--dataset")
    message = str(refused.value)
    assert message.startswith(f"--dataset: {experiment} ran on the data in {tmp_path / 'a'}")
    assert str(tmp_path / "b") in message and "\n" not in message


def test_an_unwritable_tmpdir_is_one_line_and_leaves_no_folder(tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")  # unwritable as a folder for root too, as a read-only TMPDIR is for a user
    proc = run(tmp_path / "runs", "--name", "tmp", env={"TMPDIR": str(not_a_folder)})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: TMPDIR: cannot write"), proc.stderr
    assert not (tmp_path / "runs").exists()
    long = tmp_path / ("x" * 60)  # Ray's socket paths would not fit: its traceback, before
    long.mkdir()
    proc = run(tmp_path / "runs", "--name", "tmp", env={"TMPDIR": str(long)})
    assert proc.returncode == 2 and "is too long for Ray's sockets" in proc.stderr.strip().splitlines()[0]
    assert not (tmp_path / "runs").exists()


def test_a_report_stopped_part_way_leaves_no_partial_output(tmp_path, monkeypatch, capsys):
    from analysis import __main__ as cli
    from analysis import figures

    write_study(tmp_path / "exp")

    def interrupted(*args, **kwargs):  # noqa: ANN002, ANN003
        raise KeyboardInterrupt

    monkeypatch.setattr(figures, "runtime_by_mode", interrupted)  # Ctrl-C after the tables were written
    assert cli.main(["report", str(tmp_path / "exp"), "--out", str(tmp_path / "out")]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: interrupted; the output folder was left as it was"]
    assert not (tmp_path / "out").exists() and [p.name for p in tmp_path.iterdir()] == ["exp"]


def test_a_corrupt_latest_checkpoint_falls_back_to_the_newest_that_loads(tmp_path, capsys):
    import torch
    from ray import tune

    from trainables.tune_entry import STATE_FILE, load_state

    for epoch in (1, 2, 3):
        (tmp_path / f"checkpoint_00000{epoch}").mkdir()
        torch.save({"epoch": epoch}, tmp_path / f"checkpoint_00000{epoch}" / STATE_FILE)
    latest = tmp_path / "checkpoint_000003" / STATE_FILE
    latest.write_bytes(latest.read_bytes()[:40])  # cut off, as a full disk or a kill leaves it
    state = load_state(tune.Checkpoint.from_directory(str(tmp_path / "checkpoint_000003")))
    out = capsys.readouterr().out
    assert state == {"epoch": 2}
    assert "checkpoint_000003 does not load" in out and "continuing from checkpoint_000002 (after epoch 2)" in out
    assert "weights_only" not in out
    for older in ("checkpoint_000001", "checkpoint_000002"):
        (tmp_path / older / STATE_FILE).write_bytes(b"garbage")
    assert load_state(tune.Checkpoint.from_directory(str(tmp_path / "checkpoint_000003"))) is None
    assert "it starts again from scratch" in capsys.readouterr().out
