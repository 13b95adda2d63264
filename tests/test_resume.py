"""A trial stopped after epoch k and continued from its checkpoint ends exactly as one that never stopped."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from layout import LAST_LAYER_FILE
from tests.conftest import digits_trial, through_disk
from trainables.config import TrialConfig
from trainables.loop import fail_once_at, run_trial

pytestmark = pytest.mark.slow


def train(directory, restore=None, on_epoch_start=None, **overrides) -> tuple[list[dict], list[dict]]:
    directory.mkdir(exist_ok=True)
    metrics, states = [], []
    cfg = TrialConfig.from_dict(digits_trial(**{"epochs": 4, **overrides}))
    run_trial(
        cfg,
        lambda m, s: (metrics.append(m), states.append(through_disk(s))),
        directory,
        torch.device("cpu"),
        restore=restore,
        on_epoch_start=on_epoch_start,
    )
    return metrics, states


@pytest.mark.parametrize("select", ["last", "best_val_loss"])
def test_resumed_deterministic_trial_ends_with_the_uninterrupted_digest(tmp_path, select):
    full, states = train(tmp_path / "full", select=select)
    resumed, _ = train(tmp_path / "resumed", restore=states[1], select=select)  # continue after epoch 2
    assert [m["epoch"] for m in resumed] == [3, 4]
    a, b = full[-1], resumed[-1]
    for key in ("weights_sha256", "init_sha256", "data_sha256", "final_metric", "final_epoch", "metric", "train_loss"):
        assert a[key] == b[key], key
    assert (a["restarts"], b["restarts"], b["restart_epochs"]) == (0, 1, [2])
    assert b["runtime_s"] > full[1]["epoch_time_s"]  # earlier attempts' time is counted
    with np.load(tmp_path / "full" / LAST_LAYER_FILE) as x, np.load(tmp_path / "resumed" / LAST_LAYER_FILE) as y:
        assert sorted(x.files) == sorted(y.files) and len(x.files) == 8
        assert all(np.array_equal(x[k], y[k]) for k in x.files)
    assert np.array_equal(
        np.load(tmp_path / "full" / "predictions.npz")["probs"],
        np.load(tmp_path / "resumed" / "predictions.npz")["probs"],
    )


def test_a_resume_over_a_folder_with_later_epochs_keeps_one_copy_of_each(tmp_path):
    _, states = train(tmp_path / "t")  # the folder now holds epochs 1..4
    train(tmp_path / "t", restore=states[0])  # a crash after epoch 1's checkpoint, say
    with np.load(tmp_path / "t" / LAST_LAYER_FILE) as layers:
        assert sorted(layers.files) == sorted(f"e{e:04d}_{p}" for e in range(1, 5) for p in ("weight", "bias"))


def test_injected_failure_fails_the_first_attempt_only(tmp_path):
    with pytest.raises(RuntimeError, match="failure injected at epoch 3"):
        train(tmp_path / "a", on_epoch_start=fail_once_at(3))
    _, states = train(tmp_path / "b", restore=None, epochs=2, on_epoch_start=fail_once_at(3))  # never reaches epoch 3
    finished, _ = train(tmp_path / "c", restore=states[-1], on_epoch_start=fail_once_at(3))  # a restart passes epoch 3
    assert finished[-1]["epoch"] == 4 and finished[-1]["restarts"] == 1


def test_a_trial_started_again_from_scratch_keeps_no_epochs_of_the_failed_attempt(tmp_path):
    train(tmp_path / "t", epochs=4)
    train(tmp_path / "t", epochs=2)  # Tune restarts a failed trial from scratch in the same folder
    with np.load(tmp_path / "t" / LAST_LAYER_FILE) as layers:
        assert sorted(layers.files) == ["e0001_bias", "e0001_weight", "e0002_bias", "e0002_weight"]
