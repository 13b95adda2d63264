"""Shared fixtures: small data sets written in the real on-disk formats."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sweeps.grid import GridSpec, build_trials
from sweeps.presets import PRESETS
from trainables.config import TrialConfig

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def determinism_switches_restored():
    """run_trial (through determinism.apply) sets process-wide switches: deterministic algorithms,
    cuDNN's flags and CUBLAS_WORKSPACE_CONFIG. Each test gets them back as it found them."""
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    )
    yield
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[2], before[3]
    if before[4] is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = before[4]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """GPU tests run only when asked for by name (-m gpu): every other run, CI's on a CPU machine
    among them, deselects them, whatever else -m selects."""
    if "gpu" in (config.getoption("markexpr") or ""):
        return
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if gpu:
        config.hook.pytest_deselected(items=gpu)
        items[:] = [item for item in items if not item.get_closest_marker("gpu")]


def write_cifar10(
    root: Path, n_train_per_batch: int = 20, n_test: int = 20, seed: int = 0, bytes_keys: bool = False
) -> Path:
    """A tiny copy of the official cifar-10-batches-py layout (pickled dicts, uint8 rows of 3072).

    bytes_keys: keys as Python 3 writes them (b"data"), as in copies rebuilt from images; the
    official download's Python 2 pickles read back with str keys.
    """
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def key(k: str) -> str | bytes:
        return k.encode() if bytes_keys else k

    def batch(n: int) -> dict:
        return {
            key("data"): rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            key("labels"): [int(i % 10) for i in range(n)],
            key("batch_label"): "fixture",
        }

    for i in range(1, 6):
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump(batch(n_train_per_batch), f)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(batch(n_test), f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(
            {
                key("label_names"): [
                    "airplane",
                    "automobile",
                    "bird",
                    "cat",
                    "deer",
                    "dog",
                    "frog",
                    "horse",
                    "ship",
                    "truck",
                ]
            },
            f,
        )
    return root


@pytest.fixture
def cifar_dir(tmp_path: Path) -> Path:
    return write_cifar10(tmp_path / "cifar")


def digits_trial(**overrides) -> dict:
    """The digits preset's first trial (adam, seed 0, deterministic, repeat 0), then `overrides`."""
    p = PRESETS["digits"]
    spec = GridSpec((0,), ("adam",), 1, 1, p["trial"], p["optimizers"], {"data_dir": "", "gpu_share": 0.0})
    return TrialConfig.from_dict({**build_trials(spec)[0], **overrides}).to_dict()


def through_disk(state: dict) -> dict:
    """What a checkpoint gives back: saved, then loaded as data only."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def write_images(folder: Path, n: int, seed: int, size: int = 20) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)).save(
            folder / f"{i:04d}.jpg", quality=90
        )


def sdnet_tree(root: Path, folders=("D/CD", "D/UD", "P/CP", "P/UP", "W/CW", "W/UW"), n: int = 10) -> Path:
    for i, f in enumerate(folders):
        write_images(root / f, n, seed=i)
    return root


def run_report(*args: object) -> subprocess.CompletedProcess:
    """`python -m analysis report ARGS`, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "analysis", "report", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
