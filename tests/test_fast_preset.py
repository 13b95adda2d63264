"""The cifar10-fast preset: its model, recipe and schedule keep the determinism contract and resume
bit-identically; its pieces (whitening, alternating flips, test-time views) do what they claim."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from sweeps.cli import parse
from sweeps.grid import GridSpec, build_trials
from sweeps.launch import experiment_name
from sweeps.presets import PRESETS
from tests.conftest import through_disk, write_cifar10
from trainables.airbench_net import AirbenchNet, AirbenchSpec
from trainables.batches import StreamSeeds, epoch_plan
from trainables.config import TrialConfig
from trainables.loop import predict, run_trial

pytestmark = pytest.mark.slow

# 100 training images: 4 steps per epoch. fp32: bf16 autocast on a CPU without bf16 instructions takes 3 s
# a backward step (the GPU runs the preset's bf16; bench/RESULTS.md has its digests)
SMALL = {"epochs": 3, "batch_size": 32, "eval_batch_size": 16, "precision": "fp32"}


def fast_trials(data_dir, **overrides) -> list[dict]:
    p = PRESETS["cifar10-fast"]
    spec = GridSpec(
        (0,),
        ("sgd",),
        2,
        2,
        p["trial"],
        p["optimizers"],
        {"data_dir": str(data_dir), "gpu_share": 0.0, **SMALL, **overrides},
    )
    return build_trials(spec)


def train(trial: dict, directory, restore=None) -> tuple[list[dict], list[dict]]:
    directory.mkdir(exist_ok=True)
    metrics, states = [], []
    run_trial(
        TrialConfig.from_dict(trial),
        lambda m, s: (metrics.append(m), states.append(through_disk(s))),
        directory,
        torch.device("cpu"),
        restore=restore,
    )
    return metrics, states


@pytest.fixture(scope="module")
def fast_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("fast")
    data = write_cifar10(root / "data", n_train_per_batch=20, n_test=20)
    return {(t["mode"], t["repeat"]): train(t, root / f"{t['mode']}{t['repeat']}") for t in fast_trials(data)}, data


def test_fast_preset_keeps_the_contract_on_cpu(fast_runs):
    runs, _ = fast_runs
    finals = {key: metrics[-1] for key, (metrics, _) in runs.items()}
    assert len({f["weights_sha256"] for f in finals.values()}) == 1  # no CUDA randomness on the CPU
    assert len({(f["init_sha256"], f["data_sha256"]) for f in finals.values()}) == 1
    assert all(0 <= f["final_metric"] <= 1 and f["epoch"] == 3 for f in finals.values())
    assert all(f["started_at"] <= time.time() - f["runtime_s"] for f in finals.values())  # when the trial began
    parts = finals[("deterministic", 0)]["startup_parts"]
    assert set(parts) == {"imports_s", "setup_s", "data_s", "model_s", "first_step_s"} and all(
        v >= 0 for v in parts.values()
    )


def test_onecycle_rises_then_falls_per_step(fast_runs):
    runs, _ = fast_runs
    metrics, _ = runs[("deterministic", 0)]
    lrs = [m["lr"] for m in metrics]  # after steps 4, 8 and 12 of 12; the peak is at step 2.76
    peak = PRESETS["cifar10-fast"]["optimizers"]["sgd"]["lr"]
    assert peak > lrs[0] > lrs[1] > lrs[2] and lrs[2] == pytest.approx(peak / 5 / 1e3)


def test_fast_trial_resumed_mid_schedule_ends_with_the_uninterrupted_digest(fast_runs, tmp_path):
    runs, data = fast_runs
    full, states = runs[("deterministic", 0)]
    trial = fast_trials(data)[0]
    resumed, _ = train(trial, tmp_path / "resumed", restore=states[0])
    assert [m["epoch"] for m in resumed] == [2, 3]
    for key in ("weights_sha256", "final_metric", "train_loss", "lr"):
        assert resumed[-1][key] == full[-1][key], key


def test_whitening_layer_decorrelates_the_patches_it_was_fitted_on():
    torch.manual_seed(0)
    mixing = torch.randn(3, 3, dtype=torch.float64)  # correlated channels
    images = torch.einsum("ij,njhw->nihw", mixing, torch.randn(64, 3, 16, 16, dtype=torch.float64)).float()
    net = AirbenchNet(AirbenchSpec(whiten_eps=1e-9))
    net.init_from_data(images)
    out = torch.nn.functional.conv2d(images, net.whiten.weight)[:, :12].permute(0, 2, 3, 1).reshape(-1, 12).double()
    covariance = torch.cov(out.T)
    assert torch.allclose(covariance, torch.eye(12, dtype=torch.float64), atol=2e-2)
    assert torch.equal(net.whiten.weight[12:], -net.whiten.weight[:12]) and not net.whiten.weight.requires_grad


def test_alternate_flip_mirrors_every_image_in_turn_and_keeps_the_order_random():
    plans = [epoch_plan(1000, StreamSeeds(7, 7), e, 2, True, alternate_flip=True) for e in (1, 2, 3)]
    assert 400 < plans[0].flips.sum() < 600
    assert np.array_equal(plans[1].flips, ~plans[0].flips) and np.array_equal(plans[2].flips, plans[0].flips)
    assert not np.array_equal(plans[0].order, plans[1].order)
    assert np.array_equal(epoch_plan(1000, StreamSeeds(7, 7), 2, 2, True, alternate_flip=True).flips, plans[1].flips)


def test_test_time_views_are_weighted_to_one_and_include_the_mirror():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    top_left = lambda v: v[:, :, 0, :1].reshape(len(v), 1)  # noqa: E731
    assert torch.equal(predict(top_left, x, 0), x[:, :, 0, :1].reshape(2, 1))
    assert torch.equal(predict(top_left, x, 1), (x[:, :, 0, :1] + x[:, :, 0, -1:]).reshape(2, 1) / 2)
    constant = lambda v: torch.ones(len(v), 3)  # noqa: E731
    assert torch.allclose(predict(constant, x, 2), torch.ones(2, 3))


def test_fast_preset_from_the_command_line(tmp_path):
    study = parse(["--dataset", "cifar10-fast", "--data-dir", str(tmp_path), "--seeds", "0", "--repeats", "2"])
    assert study.dataset == "cifar10" and study.preset == "cifar10-fast"
    assert experiment_name(study).startswith("cifar10-fast-")
    assert {t["model"] for t in study.trials} == {"airbench_net"} and len(study.trials) == 6
