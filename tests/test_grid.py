from collections import Counter

import pytest

from sweeps.cli import UsageError, parse
from sweeps.grid import trial_label


@pytest.mark.parametrize(
    "seeds,optimizers,repeats,det", [("0", "adam", 1, 1), ("0,42,314", "adam,sgd", 4, 2), ("7", "sgd", 3, 3)]
)
def test_grid_has_seeds_times_optimizers_times_all_repeats(seeds, optimizers, repeats, det):
    study = parse(["--seeds", seeds, "--optimizers", optimizers, "--repeats", str(repeats), "--det-repeats", str(det)])
    n_seeds, n_opts = len(seeds.split(",")), len(optimizers.split(","))
    assert len(study.trials) == n_seeds * n_opts * (repeats + det)
    modes = Counter(t["mode"] for t in study.trials)
    assert modes == {"nondeterministic": n_seeds * n_opts * repeats, "deterministic": n_seeds * n_opts * det}
    assert len({trial_label(t) for t in study.trials}) == len(study.trials)  # every trial has its own name


def test_preset_defaults_match_the_reference_study():
    study = parse(["--dataset", "cifar10"])
    assert len(study.trials) == 5 * 2 * (20 + 1)
    adam = next(t for t in study.trials if t["optimizer"] == "adam")
    sgd = next(t for t in study.trials if t["optimizer"] == "sgd")
    assert (adam["lr"], adam["beta1"], adam["beta2"], adam["amsgrad"]) == (0.01, 0.851436, 0.999689, True)
    assert (sgd["lr"], sgd["momentum"], sgd["weight_decay"]) == (0.01, 0.9, 5e-4)
    assert (adam["epochs"], adam["batch_size"], adam["model"]) == (300, 128, "preactresnet18")


def test_flags_override_the_preset_for_every_optimizer():
    study = parse(
        ["--lr", "0.3", "--epochs", "2", "--batch-size", "16", "--set", "weight_decay=0", "--set", "conv_tf32=false"]
    )
    assert {(t["lr"], t["epochs"], t["batch_size"], t["weight_decay"], t["conv_tf32"]) for t in study.trials} == {
        (0.3, 2, 16, 0, False)
    }


def test_det_warn_only_reaches_the_trials():
    assert all(t["det_warn_only"] for t in parse(["--det-warn-only"]).trials)


@pytest.mark.parametrize(
    "argv,flag",
    [
        (["--dataset", "mnist"], "--dataset"),
        (["--seeds", "0,abc"], "--seeds"),
        (["--seeds", "1,1"], "--seeds"),
        (["--optimizers", "adamw"], "--optimizers"),
        (["--repeats", "0"], "--repeats"),
        (["--det-repeats", "0"], "--det-repeats"),
        (["--model", "no_such_model_xyz"], "--model"),
        (["--gpus-per-trial", "1.5"], "--gpus-per-trial"),
        (["--set", "nonsense=1"], "--set"),
        (["--set", "seed=3"], "--set"),
        (["--lr", "-1"], "--lr"),
    ],
)
def test_bad_input_names_its_flag(argv, flag):
    with pytest.raises(UsageError, match=f"^{flag}"):
        parse(argv)
