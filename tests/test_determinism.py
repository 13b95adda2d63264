"""The determinism contract on the CPU, where no CUDA randomness exists: every repeat is identical."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from layout import LAST_LAYER_FILE, PREDICTIONS_FILE
from tests.conftest import digits_trial
from trainables.config import TrialConfig
from trainables.loop import run_trial


def train(tmp_path, name: str, **overrides) -> list[dict]:
    out: list[dict] = []
    directory = tmp_path / name
    directory.mkdir()
    run_trial(
        TrialConfig.from_dict(digits_trial(**{"epochs": 2, **overrides})),
        lambda m, s: out.append(m),
        directory,
        torch.device("cpu"),
    )
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runs")
    return {
        "det_a": train(tmp, "det_a", mode="deterministic", repeat=0),
        "det_b": train(tmp, "det_b", mode="deterministic", repeat=1),
        "nondet_a": train(tmp, "nondet_a", mode="nondeterministic", repeat=0),
        "nondet_b": train(tmp, "nondet_b", mode="nondeterministic", repeat=1),
        "seed1": train(tmp, "seed1", mode="deterministic", seed=1),
        "workers2": train(tmp, "workers2", mode="deterministic", num_workers=2),
        "dir": tmp,
    }


def final(run: list[dict]) -> dict:
    return run[-1]


def test_one_report_per_epoch_with_the_contract_keys(runs):
    reports = runs["det_a"]
    assert [r["epoch"] for r in reports] == [1, 2]
    for key in (
        "epoch",
        "train_loss",
        "val_accuracy",
        "val_f1",
        "test_accuracy",
        "test_f1",
        "metric",
        "lr",
        "epoch_time_s",
        "samples_per_s",
    ):
        assert all(key in r for r in reports), key
    last = final(reports)
    for key in ("weights_sha256", "init_sha256", "data_sha256", "runtime_s", "final_metric", "energy_j"):
        assert key in last, key
    env = last["env"]
    assert {"python", "torch", "cuda", "cudnn", "gpu", "gpu_uuid", "driver", "ray", "host", "git_commit"} <= set(env)
    assert env["gpu_uuid"] is None  # on the CPU; on a GPU, tests/test_gpu.py checks it against nvidia-smi
    assert last["metric"] == last["test_accuracy"]


def test_deterministic_repeats_end_bit_identical(runs):
    assert final(runs["det_a"])["weights_sha256"] == final(runs["det_b"])["weights_sha256"]


def test_nondeterministic_repeats_on_cpu_are_bit_identical_too(runs):
    # no CUDA, so no CUDA noise: the non-deterministic switches must change nothing else
    assert final(runs["nondet_a"])["weights_sha256"] == final(runs["nondet_b"])["weights_sha256"]
    assert final(runs["nondet_a"])["weights_sha256"] == final(runs["det_a"])["weights_sha256"]


def test_init_and_data_digests_agree_across_repeats_and_modes(runs):
    digests = {
        (final(runs[k])["init_sha256"], final(runs[k])["data_sha256"])
        for k in ("det_a", "det_b", "nondet_a", "nondet_b")
    }
    assert len(digests) == 1


def test_init_and_data_digests_differ_across_seeds(runs):
    assert final(runs["seed1"])["init_sha256"] != final(runs["det_a"])["init_sha256"]
    assert final(runs["seed1"])["data_sha256"] != final(runs["det_a"])["data_sha256"]
    assert final(runs["seed1"])["weights_sha256"] != final(runs["det_a"])["weights_sha256"]


def test_data_stream_does_not_depend_on_num_workers(runs):
    assert final(runs["workers2"])["data_sha256"] == final(runs["det_a"])["data_sha256"]
    assert final(runs["workers2"])["weights_sha256"] == final(runs["det_a"])["weights_sha256"]


def test_artifacts_hold_last_layer_per_epoch_and_final_predictions(runs):
    directory = runs["dir"] / "det_a"
    layers = np.load(directory / LAST_LAYER_FILE)
    assert sorted(layers.files) == ["e0001_bias", "e0001_weight", "e0002_bias", "e0002_weight"]
    assert layers["e0002_weight"].shape == (10, 128)
    assert not np.array_equal(layers["e0001_weight"], layers["e0002_weight"])
    preds = np.load(directory / PREDICTIONS_FILE)
    assert preds["probs"].shape == (len(preds["labels"]), 10)
    assert np.allclose(preds["probs"].sum(1), 1, atol=1e-5)
    accuracy = float((preds["probs"].argmax(1) == preds["labels"]).mean())
    assert accuracy == pytest.approx(final(runs["det_a"])["final_metric"])


def test_best_val_selection_reports_the_test_score_of_that_epoch(tmp_path):
    reports = train(tmp_path, "sel", epochs=3, select="best_val_loss", mode="deterministic")
    best = min(reports, key=lambda r: r["val_loss"])
    assert reports[-1]["final_epoch"] == best["epoch"]
    assert reports[-1]["final_metric"] == best["test_accuracy"]


def test_det_warn_only_records_ops_without_a_deterministic_kernel():
    from trainables.determinism import NondeterministicOpLog, apply

    apply("deterministic", 0, conv_tf32=True, matmul_tf32=False, warn_only=True)
    try:
        with NondeterministicOpLog() as log:
            # put_ has no deterministic kernel even on the CPU; twice, recorded once
            for _ in range(2):
                torch.zeros(3).put_(torch.tensor([0, 0]), torch.ones(2))
        assert len(log.ops) == 1 and log.ops[0].startswith("put_ does not have a deterministic implementation")
    finally:
        torch.use_deterministic_algorithms(False)


def test_deterministic_mode_fails_on_an_op_without_a_deterministic_kernel_naming_it():
    from trainables.determinism import apply

    apply("deterministic", 0, conv_tf32=True, matmul_tf32=False, warn_only=False)
    try:
        with pytest.raises(RuntimeError, match="put_"):
            torch.zeros(3).put_(torch.tensor([0, 0]), torch.ones(2))
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        apply("nondeterministic", 0, conv_tf32=True, matmul_tf32=False, warn_only=False)
        assert not torch.are_deterministic_algorithms_enabled()
        assert not torch.backends.cudnn.deterministic and torch.backends.cudnn.benchmark
    finally:
        torch.use_deterministic_algorithms(False)


def test_a_diverging_trial_fails_loudly_instead_of_finishing(tmp_path):
    with pytest.raises(
        RuntimeError, match=r"epoch 1: the training loss is (nan|inf): training diverged \(lr 1e\+30 too high\?\)"
    ):
        train(tmp_path, "diverged", mode="deterministic", lr=1e30, optimizer="sgd")


def test_a_trial_whose_final_score_is_not_a_number_fails_loudly(tmp_path, monkeypatch):
    import trainables.loop

    real = trainables.loop.scores
    monkeypatch.setattr(
        trainables.loop, "scores", lambda *a: {**real(*a), "auc": float("nan")}
    )  # as with one class in test
    with pytest.raises(
        RuntimeError, match="the selected epoch's test auc is nan: AUC needs both classes in the test split"
    ):
        train(tmp_path, "one-class", mode="deterministic", metrics=["accuracy", "auc"], metric="auc")


def test_seeding_the_host_draws_as_seeding_everything_does_on_the_host():
    """DataLoader workers seed only the host's RNGs (cheaply, per example); every host draw must
    still be the one a full seeding gives, so the augmentation stream does not change."""
    import random

    from trainables.determinism import seed_everything, seed_host

    def draws() -> tuple:
        return random.random(), np.random.rand(), torch.rand(3).tolist(), torch.randint(10**6, (2,)).tolist()

    seed_everything(2**33 + 7)
    everything = draws()
    seed_host(2**33 + 7)
    assert draws() == everything
    seed_host(2**33 + 8)
    assert draws() != everything
