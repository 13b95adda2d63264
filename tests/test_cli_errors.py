"""Bad input: one clear line on stderr, a non-zero exit, and nothing started or written."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

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
    (["--dataset", "sdnet", "--set", "alternate_flip=true"], "--set: alternate_flip"),
]


@pytest.mark.parametrize("argv,starts", CASES, ids=[c[1] for c in CASES])
def test_bad_input_gets_one_line_and_a_nonzero_exit_before_ray_starts(tmp_path, argv, starts):
    empty = tmp_path / "empty"
    argv = [a.replace("{empty}", str(empty)) for a in argv]
    # why: an unreachable proxy makes the CIFAR-10 download fail at once, online or not
    env = {**os.environ, "https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
    proc = subprocess.run([sys.executable, "sweeps/run.py", *argv, "--storage-path", str(tmp_path / "exp")],
                          cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {starts}"), lines[0]
    assert proc.stdout == ""  # Ray never started: nothing announced
    assert not (tmp_path / "exp").exists()  # nothing half-written


def test_help_lists_every_flag_with_its_default():
    proc = subprocess.run([sys.executable, "sweeps/run.py", "--help"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0
    for flag in ("--seeds", "--optimizers", "--repeats", "--det-repeats", "--epochs", "--batch-size", "--lr", "--model",
                 "--num-workers", "--gpus-per-trial", "--cpus-per-trial", "--max-concurrent", "--storage-path", "--name",
                 "--address", "--dry-run"):
        assert flag in proc.stdout
    assert "cifar10: 0,42,314,3407,180698" in proc.stdout  # preset defaults are shown


def test_dry_run_prints_the_grid_and_starts_nothing(tmp_path):
    proc = subprocess.run([sys.executable, "sweeps/run.py", "--dry-run", "--storage-path", str(tmp_path / "exp")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert "20 trials" in proc.stdout and "adam_seed42_nondet_r2" in proc.stdout
    assert not (tmp_path / "exp").exists()
