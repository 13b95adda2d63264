"""Every source of randomness, one at a time (issue #29): one seed per stream, arms in the grid,
digests that prove which stream an arm moved, the bit flip, the ResNet-14 preset and the analysis."""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from analysis import arms as arm_tables
from analysis import load_experiment, stats
from analysis.cells import finished
from sweeps.cli import UsageError, parse
from sweeps.grid import recorded, stream_seed, trial_label
from tests.conftest import REPO, run_report
from tests.experiment_factory import write_trial
from trainables.bitflip import flip_one_bit
from trainables.config import FieldError, TrialConfig
from trainables.loop import run_trial
from trainables.models import create_model
from trainables.optim import _warmup_cosine

STREAM_DIGESTS = ("init_sha256", "order_sha256", "augment_sha256", "dropout_sha256")


def final_row(trial: dict, epochs: int = 1) -> dict:
    rows = []
    run_trial(TrialConfig.from_dict({**trial, "epochs": epochs}), lambda m, s: rows.append(m), Path(tempfile.mkdtemp()))
    return rows[-1]


@pytest.fixture(scope="module")
def control() -> dict:
    return parse(["--seeds", "42", "--optimizers", "adam", "--det-repeats", "1", "--set", "drop_rate=0.2"]).trials[0]


def test_a_default_trial_derives_every_stream_as_before_the_streams_were_split(control):
    # digests of the digits preset's seed-42 trial from the code before this change (commit 7e35d53)
    default = parse(["--seeds", "42", "--optimizers", "adam", "--det-repeats", "1"]).trials[0]
    row = final_row(default)
    assert row["init_sha256"].startswith("47d58d4cc2c0deb0") and row["data_sha256"].startswith("2516b6527a1de4db")
    explicit = final_row({**default, **{f"{s}_seed": 42 for s in ("init", "order", "augment", "dropout")}})
    assert {k: explicit[k] for k in (*STREAM_DIGESTS, "weights_sha256")} == {
        k: row[k] for k in (*STREAM_DIGESTS, "weights_sha256")
    }


@pytest.mark.parametrize("stream", ["init", "order", "augment", "dropout"])
def test_varying_one_seed_changes_exactly_its_own_digest(control, stream):
    base, varied = final_row(control), final_row({**control, f"{stream}_seed": 7})
    changed = {k for k in STREAM_DIGESTS if base[k] != varied[k]}
    assert changed == {f"{stream}_sha256"}
    assert (base["data_sha256"] != varied["data_sha256"]) == (stream in ("order", "augment"))
    assert base["weights_sha256"] != varied["weights_sha256"]  # every stream reaches the trained weights


def test_the_bit_flip_changes_one_bit_of_one_weight_chosen_by_its_seed():
    torch.manual_seed(0)
    model = create_model("small_cnn", 10, 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    info = flip_one_bit(model, 123)
    bits = sum(
        int(np.unpackbits((before[k].reshape(-1).view(torch.uint8) ^ v.reshape(-1).view(torch.uint8)).numpy()).sum())
        for k, v in model.state_dict().items()
    )
    assert bits == 1 and info["changed_bits"] == 1
    value = dict(model.named_parameters())[info["parameter"]].detach().reshape(-1)[info["index"]]
    assert float(value) == info["after"] != info["before"]
    again = create_model("small_cnn", 10, 1)
    again.load_state_dict(before)
    assert flip_one_bit(again, 123)["index"] == info["index"]  # a function of the seed alone
    chosen = {flip_one_bit(create_model("small_cnn", 10, 1), s)["parameter"] for s in range(40)}
    assert len(chosen) >= 3  # spread over the layers in proportion to their size


def test_the_bit_flip_never_lands_on_a_zero_weight_which_a_gpu_would_flush():
    torch.manual_seed(0)
    model = create_model("airbench_net", 10, 3)  # 94% of its initial weights are zeros
    assert sum(int((p == 0).sum()) for p in model.parameters()) > 0.9 * sum(p.numel() for p in model.parameters())
    for seed in range(20):
        info = flip_one_bit(model, seed)
        assert info["before"] != 0 and abs(info["after"] - info["before"]) <= abs(info["before"]) * 2**-23
        flat = dict(model.named_parameters())[info["parameter"]].data.view(-1)
        flat.view(torch.int32)[info["index"]] ^= 1  # back to the initial weights for the next seed


def test_a_model_with_only_zero_weights_is_refused_in_words():
    model = torch.nn.Linear(3, 2)
    torch.nn.init.zeros_(model.weight)
    torch.nn.init.zeros_(model.bias)
    with pytest.raises(ValueError, match="needs a nonzero float32 parameter"):
        flip_one_bit(model, 0)


def test_arms_enter_the_grid_with_their_mode_and_varied_seeds():
    study = parse(["--seeds", "3", "--optimizers", "sgd", "--repeats", "2", "--vary", "init,bitflip,all"])
    by_label = {trial_label(t): t for t in study.trials}
    assert list(by_label) == [
        "sgd_seed3_det_r0",
        "sgd_seed3_det_r1",
        "sgd_seed3_nondet_r0",
        "sgd_seed3_nondet_r1",
        *(f"sgd_seed3_{a}_r{r}" for a in ("init", "bitflip", "all") for r in (0, 1)),
    ]
    init = by_label["sgd_seed3_init_r1"]
    assert (init["mode"], init["init_seed"]) == (
        "deterministic",
        stream_seed(3, "init", 1),
    ) and "order_seed" not in init
    assert by_label["sgd_seed3_bitflip_r0"]["bitflip_seed"] == stream_seed(3, "bitflip", 0)
    every = by_label["sgd_seed3_all_r1"]
    assert every["mode"] == "nondeterministic" and every["init_seed"] == init["init_seed"]  # arms pair by repeat
    assert all(every[f"{s}_seed"] == stream_seed(3, s, 1) for s in ("order", "augment", "dropout"))
    assert "arm" not in by_label["sgd_seed3_det_r0"]  # the study's identity keeps its name
    params = recorded(by_label["sgd_seed3_det_r0"])  # params.json records the arm and every seed
    assert params["arm"] == "deterministic" and params["init_seed"] == params["order_seed"] == 3


def test_the_default_grid_and_its_name_do_not_change_with_arms():
    plain = parse(["--seeds", "0,42"])
    assert plain.trials == parse(["--seeds", "0,42", "--vary", "none"]).trials
    assert all(not ({"arm", "init_seed", "bitflip_seed"} & set(t)) for t in plain.trials)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--vary", "weights"], "--vary: unknown 'weights'"),
        (["--vary", "init,init"], "lists an arm twice"),
        (["--vary", "dropout"], "makes no random draws while it trains"),
        (["--set", "arm=init"], "--set: arm is set by its own flag or by the grid"),
        (["--set", "drop_rate=0.1", "--model", "preactresnet18"], "--set drop_rate: preactresnet18 has no dropout"),
        (["--dataset", "cifar10-resnet14", "--optimizers", "adam"], "a recipe for sgd only"),
        (["--set", 'model_args={"img_size": 8}'], "--set model_args: small_cnn is a project model"),
        (["--model", "vit_tiny_patch16_224", "--set", 'model_args={"img_sz": 8}'], "--set model_args: .*img_sz"),
        (["--model", "vit_tiny_patch16_224", "--set", "model_args=8"], "model_args.*must be a mapping"),
    ],
)
def test_bad_arms_are_one_line_before_anything_starts(argv, message):
    with pytest.raises(UsageError, match=message):
        parse(argv)


def test_a_vit_for_small_images_takes_timm_s_arguments_and_its_drop_path_is_a_dropout_arm():
    vit = ["--model", "vit_tiny_patch16_224", "--set", 'model_args={"img_size": 8, "patch_size": 2, "depth": 2}']
    study = parse([*vit, "--set", "drop_path_rate=0.1", "--seeds", "0", "--optimizers", "adam", "--vary", "dropout"])
    trial = study.trials[-1]
    assert trial["arm"] == "dropout" and trial["model_args"] == {"img_size": 8, "patch_size": 2, "depth": 2}
    cfg = TrialConfig.from_dict(trial)
    model = create_model(cfg.model, 10, 1, drop_path_rate=cfg.drop_path_rate, model_args=cfg.model_args)
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)  # 16 patches of 2 x 2, as asked
    assert "model_args" not in TrialConfig.from_dict(parse(["--seeds", "0"]).trials[0]).to_dict()  # names kept


def test_an_arm_runs_in_its_own_mode():
    trial = parse(["--seeds", "0", "--vary", "init", "--repeats", "1"]).trials[-1]
    with pytest.raises(FieldError, match="the init arm runs in deterministic mode"):
        TrialConfig.from_dict({**trial, "mode": "nondeterministic"})
    with pytest.raises(FieldError, match="bitflip_seed is set by the bitflip arm"):
        TrialConfig.from_dict({**trial, "bitflip_seed": 4})


def test_resnet14_is_he_et_al_s_6n_plus_2_net():
    model = create_model("resnet14", 10, 3)
    weighted = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(weighted) == 14 and model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert [m.out_channels for m in weighted if isinstance(m, torch.nn.Conv2d)][-1] == 64
    assert 170_000 < sum(p.numel() for p in model.parameters()) < 180_000  # option A shortcuts: no 1x1 convs


def test_the_warm_up_cosine_rises_linearly_then_falls_to_zero():
    factors = [_warmup_cosine(s, 30, 100) for s in range(100)]
    assert factors[0] == pytest.approx(1 / 30) and factors[29] == pytest.approx(1.0)
    assert factors[30] == pytest.approx(1.0) and factors[65] == pytest.approx(0.5, abs=0.05) and factors[-1] < 0.001
    assert all(a <= b for a, b in zip(factors[:30], factors[1:30])) and all(
        a >= b for a, b in zip(factors[30:], factors[31:])
    )


def probs(classes: list[int], sure: float = 0.8) -> np.ndarray:
    p = np.full((len(classes), 2), 1 - sure)
    p[np.arange(len(classes)), classes] = sure
    return p


def test_the_arms_table_measures_pairs_as_summers_and_dinneen(tmp_path):
    labels = [0, 1, 0, 1]
    runs = {
        "init": [[0, 1, 0, 1], [0, 1, 1, 1]],
        "all": [[0, 1, 0, 0], [1, 1, 0, 1], [0, 0, 0, 1]],
        "bitflip": [[0, 1, 0, 1], [0, 1, 0, 1]],  # the flipped bit absorbed: both end on the control's weights
    }
    for offset, (arm, preds) in enumerate(runs.items()):
        for r, p in enumerate(preds):
            d = write_trial(
                tmp_path,
                optimizer="sgd",
                seed=0,
                mode="nondeterministic" if arm == "all" else "deterministic",
                repeat=10 * offset + r,
                scores=[float(np.mean(np.array(p) == labels))],
                probs=probs(p),
                weights="c" if arm == "bitflip" else f"{arm}{r}",
            )
            params = json.loads((d / "params.json").read_text())
            (d / "params.json").write_text(json.dumps({**params, "arm": arm}))
            np.savez(d / "predictions.npz", labels=np.array(labels), probs=probs(p).astype(np.float32), epoch=1)
    write_trial(tmp_path, optimizer="sgd", seed=0, mode="deterministic", repeat=9, scores=[1.0], weights="c")
    done = finished(load_experiment(tmp_path).trials).done
    table = arm_tables.arms(done, tmp_path, []).set_index("arm")
    assert (table["seed"] == 0).all()  # one configuration: its rows are the pooled ones
    init = table.loc["init"]
    assert init["disagreement_pct"] == pytest.approx(25.0) and init["pairs"] == 1
    a, b = probs(runs["init"][0]).ravel(), probs(runs["init"][1]).ravel()
    assert init["correlation"] == pytest.approx(np.corrcoef(a, b)[0, 1])
    ensemble = ((probs(runs["init"][0]) + probs(runs["init"][1])) / 2).argmax(1)
    assert init["ensemble_gain_pts"] == pytest.approx((np.mean(ensemble == labels) - (1.0 + 0.75) / 2) * 100)
    assert init["sd_pts"] == pytest.approx(np.std([100.0, 75.0], ddof=1))
    every = table.loc["all"]  # three runs, all at 75%: no spread, so no share of it to give
    assert every["pairs"] == 3 and every["sd_pts"] == 0 and np.isnan(init["sd_vs_all"])
    assert every["on_control"] == 0 and init["on_control"] == 0 and "control's weights" not in every["note"]
    flip = table.loc["bitflip"]
    assert flip["on_control"] == 2 and "all 2 ended on the deterministic control's weights" in flip["note"]
    line = arm_tables.arm_lines(table.reset_index(), "95%")[0]
    assert "bitflip none (0 of 1 runs scored differently from their configuration's first; every run ended" in line


@pytest.fixture(scope="module")
def every_arm(tmp_path_factory):
    storage = tmp_path_factory.mktemp("arms")
    args = "--vary every --seeds 0 --optimizers sgd --repeats 2 --det-repeats 2 --epochs 2 --set drop_rate=0.2"
    args += " --cpus-per-trial 1 --gpus-per-trial 0 --name arms --storage-path"
    proc = subprocess.run(
        [sys.executable, "sweeps/run.py", *args.split(), str(storage)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return storage / "arms", proc.stdout


def test_a_digits_study_of_every_arm_proves_which_stream_each_arm_moved(every_arm):
    directory, stdout = every_arm
    trials = load_experiment(directory).trials
    assert sorted(trials["arm"].unique()) == sorted(
        [
            "deterministic",
            "nondeterministic",
            "autotuner-only",
            "kernels-only",
            *("init order augment dropout bitflip all".split()),
        ]
    )
    params = json.loads(next(directory.glob("sgd_seed0_det_r0_*/params.json")).read_text())
    assert params["arm"] == "deterministic" and params["init_seed"] == 0  # recorded in params.json
    assert "_init_r1_" in " ".join(trials["trial"]) and "sgd_seed0_bitflip_r0" in stdout
    assert stats.integrity(trials).empty  # every digest an arm keeps is the control's; every one it varies moved
    control = trials[trials["arm"] == "deterministic"].iloc[0]
    for arm, moved in {
        "init": {"init_sha256"},
        "order": {"order_sha256", "data_sha256"},
        "augment": {"augment_sha256", "data_sha256"},
        "dropout": {"dropout_sha256"},
        "bitflip": {"init_sha256"},
        "all": {"init_sha256", "order_sha256", "augment_sha256", "dropout_sha256", "data_sha256"},
        "kernels-only": set(),
    }.items():
        for row in trials[trials["arm"] == arm].itertuples():
            digests = ("init_sha256", "order_sha256", "augment_sha256", "dropout_sha256", "data_sha256")
            assert {d for d in digests if getattr(row, d) != control[d]} == moved, (arm, row.trial)
    flips = trials[trials["arm"] == "bitflip"]
    assert (flips["bitflip_changed_bits"] == 1).all() and (
        flips["bitflip_unflipped_init_sha256"] == control["init_sha256"]
    ).all()


def test_the_report_of_every_arm_says_which_source_matters_and_that_the_cpu_has_no_cuda_noise(every_arm, tmp_path):
    directory, _ = every_arm
    proc = run_report(directory, "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if "which source matters" in x)
    for mode in ("nondeterministic", "autotuner-only", "kernels-only"):
        assert f"{mode} none (0 of 1 runs scored differently" in line  # on a CPU: no CUDA noise, in words
    table = pd.read_csv(tmp_path / "arms.csv")
    assert set(table["arm"]) >= {"init", "order", "augment", "dropout", "bitflip", "all"}
    assert (tmp_path / "which_source.png").stat().st_size > 10_000
    assert "## Which source of randomness matters" in (tmp_path / "report.md").read_text()
    assert proc.stdout.startswith("Integrity OK")
