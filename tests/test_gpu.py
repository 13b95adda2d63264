"""The central claim on a real GPU (opt-in: `python -m pytest -m gpu tests/test_gpu.py`): through the
real command, deterministic repeats end bit-identical, non-deterministic ones differ, and every
repeat starts from the same weights and sees the same data."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from analysis import load_experiment
from tests.conftest import REPO, write_cifar10

pytestmark = pytest.mark.gpu


def test_deterministic_repeats_are_bit_identical_and_non_deterministic_ones_differ_on_the_gpu(tmp_path):
    assert torch.cuda.is_available(), "the gpu marker runs only where CUDA is"
    data = write_cifar10(tmp_path / "data", n_train_per_batch=400, n_test=500)
    args = [
        *"--dataset cifar10 --data-dir".split(),
        str(data),
        *"--model preactresnet18 --seeds 0 --optimizers sgd --repeats 4 --det-repeats 3 --epochs 1 --gpus-per-trial 0.25 --name gpu --storage-path".split(),
        str(tmp_path / "exp"),
    ]
    proc = subprocess.run(
        [sys.executable, "sweeps/run.py", *args], cwd=REPO, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trials = load_experiment(tmp_path / "exp" / "gpu").trials
    assert (trials["status"] == "finished").all() and (trials["env_device"].str.startswith("cuda")).all()
    visible = subprocess.run(
        ["nvidia-smi", "--query-gpu=uuid", "--format=csv,noheader"], capture_output=True, text=True
    )
    assert set(trials["env_gpu_uuid"]) <= set(visible.stdout.split())  # which of the host's GPUs ran each trial
    det = trials[trials["mode"] == "deterministic"]
    nondet = trials[trials["mode"] == "nondeterministic"]
    assert det["weights_sha256"].nunique() == 1
    assert nondet["weights_sha256"].nunique() > 1  # PreActResNet-18 in fp32: every run differed on an H200
    assert trials["init_sha256"].nunique() == 1 and trials["data_sha256"].nunique() == 1
