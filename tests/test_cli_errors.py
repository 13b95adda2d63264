"""Bad input: one clear line on stderr, a non-zero exit, and nothing started or written."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from sweeps.cli import UsageError, parse
from tests.conftest import REPO

CASES = [
    (["--dataset", "imagenet"], "--dataset"),
    (["--model", "resnet_does_not_exist"], "--model"),
    (["--optimizers", "sgd,lion"], "--optimizers"),
    (["--seeds", "0,forty-two"], "--seeds"),
    (["--repeats", "0"], "--repeats"),
    (["--gpus-per-trial", "64"], "--gpus-per-trial"),
    (["--cpus-per-trial", "4096"], "--cpus-per-trial"),
    (["--dataset", "cifar10", "--data-dir", "{empty}"], "cifar10:"),
    (["--dataset", "sdnet", "--model", "airbench_net"], "--model: airbench_net"),
    (["--dataset", "sdnet", "--set", "alternate_flip=true"], "--set alternate_flip: applies to in-memory"),
    (["--gpus-per-trial", "nan"], "--gpus-per-trial"),  # hung forever before
    (["--cpus-per-trial", "nan"], "--cpus-per-trial"),
    (["--name", "../../x"], "--name"),  # wrote outside the storage path before
]

REFUSED = [  # (argv, the start of the one-line message): each reached the trials, or hung, before
    (["--set", "model=resnet_does_not_exist"], "--set model: unknown model"),
    (["--set", "lr=-1"], "--set lr: must be positive, got -1"),
    (["--lr", "-1"], "--lr: must be positive, got -1"),
    (["--epochs", "0"], "--epochs: must be at least 1, got 0"),
    (["--num-workers", "-1"], "--num-workers: must be >= 0, got -1"),
    (["--set", "lr=NaN"], "--set lr: must be a finite number"),
    (["--set", "dataset=cifar10"], "--set: dataset is set by its own flag"),
    (["--set", "image_size=[-5,-5]"], "--set image_size: must be two positive sizes"),
    (["--set", "augment=typo"], "--set augment: must be one of none, flip, sdnet, cbis, got 'typo'"),
    (["--set", "beta2=1.5"], "--set beta2: must be in [0, 1)"),
    (["--set", "epochs=ten"], "--set epochs: must be int, got str 'ten'"),
    (["--seeds", "18000000000000"], "--seeds: 18000000000000 is outside 0..4294967295"),
    (["--gpus-per-trial", "inf"], "--gpus-per-trial"),
    (["--optimizers", "sgd,sgd"], "--optimizers: 'sgd,sgd' lists an optimizer twice"),
    (["--optimizers", ""], "--optimizers: unknown ''"),
    (["--repeats", "100000000"], "--repeats: must be between 1 and 1000"),
    (
        ["--repeats", "1000", "--seeds", ",".join(map(str, range(60))), "--modes", "all"],
        "--repeats: the grid would hold",
    ),
    (["--name", ".."], "--name"),
    (["--name", "a/b"], "--name"),
]


@pytest.mark.parametrize("argv,starts", REFUSED, ids=[" ".join(c[0])[:40] for c in REFUSED])
def test_values_are_refused_before_ray_by_the_flag_s_name(argv, starts):
    with pytest.raises(UsageError) as info:
        parse(argv)
    assert str(info.value).startswith(starts) and "\n" not in str(info.value)


@pytest.mark.parametrize("argv,starts", CASES, ids=[c[1] for c in CASES])
def test_bad_input_gets_one_line_and_a_nonzero_exit_before_ray_starts(tmp_path, argv, starts):
    empty = tmp_path / "empty"
    argv = [a.replace("{empty}", str(empty)) for a in argv]
    # why: an unreachable proxy makes the CIFAR-10 download fail at once, online or not
    env = {**os.environ, "https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
    proc = subprocess.run(
        [sys.executable, "sweeps/run.py", *argv, "--storage-path", str(tmp_path / "exp")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {starts}"), lines[0]
    assert proc.stdout == ""  # Ray never started: nothing announced
    assert not (tmp_path / "exp").exists()  # nothing half-written


def test_help_lists_every_flag_with_its_default():
    proc = subprocess.run([sys.executable, "sweeps/run.py", "--help"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0
    for flag in (
        "--seeds",
        "--optimizers",
        "--repeats",
        "--det-repeats",
        "--epochs",
        "--batch-size",
        "--lr",
        "--model",
        "--num-workers",
        "--gpus-per-trial",
        "--cpus-per-trial",
        "--max-concurrent",
        "--storage-path",
        "--name",
        "--address",
        "--dry-run",
    ):
        assert flag in proc.stdout
    for group in ("study:", "training:", "data:", "resources:", "storage:"):  # grouped as docs/running.md
        assert f"\n{group}" in proc.stdout, group
    rows = {line.split()[0]: line.split() for line in proc.stdout.split("preset defaults")[1].splitlines()[1:]}
    assert rows["cifar10"][1:3] == ["0,42,314,3407,180698", "adam,sgd"]  # preset defaults are shown
    assert rows["cifar10-resnet14"][-1] == "every"


def test_dry_run_prints_the_grid_and_starts_nothing(tmp_path):
    proc = subprocess.run(
        [sys.executable, "sweeps/run.py", "--dry-run", "--storage-path", str(tmp_path / "exp")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0
    assert "20 trials" in proc.stdout and "adam_seed42_nondet_r2" in proc.stdout
    assert not (tmp_path / "exp").exists()


def test_a_preset_s_cpus_per_trial_fit_the_machine_and_an_explicit_flag_does_not(capsys):
    from sweeps import launch

    study = parse(["--dataset", "sdnet"])
    assert study.cpus_per_trial == 4 and study.cpus_from_preset
    fitted = launch.fit_cpus(study, 2.0, where="this machine (where Ray starts) has")
    assert fitted.cpus_per_trial == 2
    assert capsys.readouterr().out.strip() == (
        "CPUs per trial: 2, all that this machine (where Ray starts) has (the preset asks "
        "for 4; --cpus-per-trial sets it)"
    )
    with pytest.raises(UsageError, match="--cpus-per-trial: 4 CPUs per trial, but this machine"):
        launch.fit_cpus(
            parse(["--dataset", "sdnet", "--cpus-per-trial", "4"]), 2.0, where="this machine (where Ray starts) has"
        )


def test_an_offline_cifar10_run_leaves_no_empty_directory(tmp_path):
    env = {**os.environ, "https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
    target = tmp_path / "new" / "cifar"
    proc = subprocess.run(
        [
            sys.executable,
            "sweeps/run.py",
            "--dataset",
            "cifar10",
            "--data-dir",
            str(target),
            "--storage-path",
            str(tmp_path / "exp"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 2 and proc.stderr.startswith("error: cifar10:")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("address", ["auto", "not a host", "127.0.0.1:1"])
def test_a_wrong_cluster_address_is_one_line_within_seconds(tmp_path, address):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["TMPDIR"] = str(tmp_path / "tmp")  # why: no ray_current_cluster file of a real local cluster is found
    (tmp_path / "tmp").mkdir()
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "sweeps/run.py", "--address", address, "--storage-path", str(tmp_path / "exp")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert time.monotonic() - started < 30
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: --address {address}"), proc.stderr
    assert not (tmp_path / "exp").exists()
