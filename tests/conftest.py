"""Shared fixtures: small data sets written in the real on-disk formats."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


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
