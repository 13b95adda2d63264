"""The four CUDA modes: each changes exactly its three switches, inside the trial process, and a
four-mode study runs through Ray, the report and its sources table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import inference, load_experiment, sources
from analysis.cells import finished
from layout import MODES
from sweeps.cli import UsageError, parse
from tests.conftest import REPO, run_report
from tests.experiment_factory import write_config
from trainables.determinism import SWITCHES
from trainables.placement import LOCKS_ENV

EXPECTED = {  # (use_deterministic_algorithms, cudnn.deterministic, cudnn.benchmark), as the modes are specified
    "deterministic": (True, True, False),
    "nondeterministic": (False, False, True),
    "autotuner-only": (True, True, True),
    "kernels-only": (False, False, False),
}


def test_the_switch_table_is_the_specification():
    assert set(SWITCHES) == set(MODES) == set(EXPECTED)
    assert {m: tuple(s) for m, s in SWITCHES.items()} == EXPECTED


@pytest.mark.parametrize(
    ("flag", "modes"),
    [
        ("deterministic,nondeterministic", ("deterministic", "nondeterministic")),
        ("all", MODES),
        ("kernels-only, deterministic", ("deterministic", "kernels-only")),
    ],
)
def test_modes_flag_builds_the_grid(flag, modes):
    study = parse(["--modes", flag, "--seeds", "0", "--optimizers", "sgd", "--repeats", "2", "--det-repeats", "1"])
    assert tuple(dict.fromkeys(t["mode"] for t in study.trials)) == modes
    assert sum(t["mode"] == "deterministic" for t in study.trials) == 1
    assert all(sum(t["mode"] == m for t in study.trials) == 2 for m in modes[1:])


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("nondeterministic,kernels-only", "needs deterministic"),
        ("deterministic", "needs deterministic"),
        ("deterministic,turbo", "unknown 'turbo'"),
        ("deterministic,kernels-only,kernels-only", "twice"),
    ],
)
def test_modes_flag_refuses_bad_lists(flag, message):
    with pytest.raises(UsageError, match=message):
        parse(["--modes", flag])


def test_the_default_grid_and_its_name_are_those_of_a_study_made_before_the_modes():
    default = parse(["--seeds", "0", "--optimizers", "sgd"])
    explicit = parse(["--seeds", "0", "--optimizers", "sgd", "--modes", "deterministic,nondeterministic"])
    assert default.trials == explicit.trials and {t["mode"] for t in default.trials} == {
        "deterministic",
        "nondeterministic",
    }


def test_source_shares_of_a_fixture_with_known_variances(tmp_path):
    # within-seed variances: paper 1.0, autotuner-only 0.81, kernels-only 0.04 (runs at mean +- sd, several seeds)
    def runs(sd: float) -> list[float]:
        return [90 - sd, 90 + sd] * 3  # sample variance sd^2 * 6 / 5

    for seed in (0, 1):
        for mode, sd in (("nondeterministic", 1.0), ("autotuner-only", 0.9), ("kernels-only", 0.2)):
            write_config(
                tmp_path,
                optimizer="sgd",
                seed=seed,
                det=90.0,
                noisy=runs(sd),
                mode=mode,
                det_copies=1 if mode == "nondeterministic" else 0,
            )
    done = finished(load_experiment(tmp_path).trials).done
    per_config = sources.sources(done)
    assert per_config["autotuner_share"].to_numpy() == pytest.approx([0.81, 0.81])
    assert per_config["kernels_share"].to_numpy() == pytest.approx([0.04, 0.04])
    pooled = sources.sources_pooled(done).iloc[0]
    assert pooled["paper_df"] == 10 and "sum_share" not in pooled.index  # shares need not add up
    assert pooled["autotuner_share_lo"] <= pooled["autotuner_share"] <= pooled["autotuner_share_hi"]
    line = sources.source_lines(
        sources.sources_pooled(done), sources.mode_cost(done, load_experiment(tmp_path).epochs)
    )[0]
    assert line.startswith("sgd: of the paper mode's variance, autotuner-only gives 81% (")
    assert "kernels-only gives 4% (" in line and "shares need not add up" in line


def test_a_study_of_the_paper_s_two_modes_has_no_sources_table(tmp_path):
    write_config(tmp_path, optimizer="sgd", seed=0, det=90.0, noisy=[90.1, 90.3])
    done = finished(load_experiment(tmp_path).trials).done
    assert sources.sources(done).empty and sources.sources_pooled(done).empty


@pytest.fixture(scope="module")
def four_modes(tmp_path_factory):
    storage = tmp_path_factory.mktemp("experiments")
    args = [
        *"--dataset digits --modes all --seeds 0 --optimizers sgd --repeats 2 --det-repeats 1 --epochs 2 --cpus-per-trial 1 --gpus-per-trial 0 --pin-cpus --name modes --storage-path".split(),
        str(storage),
    ]
    # why: its own core locks, so that another test run on the machine cannot take its cores
    env = {**os.environ, LOCKS_ENV: str(tmp_path_factory.mktemp("core_locks"))}
    proc = subprocess.run(
        [sys.executable, "sweeps/run.py", *args], cwd=REPO, capture_output=True, text=True, timeout=600, env=env
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert any(Path(env[LOCKS_ENV]).glob("cpu*")), "the trials claimed their cores elsewhere"
    return storage / "modes"


def test_each_trial_process_ran_with_its_mode_s_switches(four_modes):
    trials = load_experiment(four_modes).trials
    assert sorted(trials["mode"].value_counts().items()) == [
        ("autotuner-only", 2),
        ("deterministic", 1),
        ("kernels-only", 2),
        ("nondeterministic", 2),
    ]
    for row in trials.itertuples():
        seen = (row.env_deterministic_algorithms, row.env_cudnn_deterministic, row.env_cudnn_benchmark)
        assert seen == EXPECTED[row.mode], row.trial
    assert (
        trials["trial"].str.contains("_autotuner_r").sum() == 2
        and trials["trial"].str.contains("_kernels_r").sum() == 2
    )
    assert trials["init_sha256"].nunique() == 1 and trials["data_sha256"].nunique() == 1  # one contract for every mode


def test_each_trial_process_ran_on_a_core_of_its_own(four_modes):
    """--pin-cpus --cpus-per-trial 1: each trial's process pinned to one core, with one intra-op thread."""
    trials = load_experiment(four_modes).trials
    assert (trials["env_cpu_pinning"] == "pinned").all(), trials["env_cpu_pinning"].tolist()
    assert trials["env_cpu_cores"].astype(str).str.fullmatch(r"\d+").all()
    assert (trials["env_torch_threads"] == 1).all()


def test_a_four_mode_report_has_the_sources_table(four_modes, tmp_path):
    proc = run_report(four_modes, "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = (tmp_path / "report.md").read_text()
    assert "## Where the noise comes from" in report and "## What each mode costs" in report
    for mode in ("autotuner-only", "kernels-only"):
        assert f"{mode} repeats: 1 distinct outcomes of 2 runs" in proc.stdout  # on a CPU every mode is reproducible
    cost = pd.read_csv(tmp_path / "mode_cost.csv")
    assert set(cost["mode"]) == set(MODES) and cost["reproducible"].all()
    assert np.isfinite(cost["epoch_s"]).all()


def test_when_one_source_is_bit_reproducible_the_other_is_named_as_all_the_noise(tmp_path):
    for seed in (0, 1):
        write_config(tmp_path, optimizer="sgd", seed=seed, det=90.0, noisy=[89.9, 90.1, 90.0], mode="nondeterministic")
        write_config(
            tmp_path,
            optimizer="sgd",
            seed=seed,
            det=90.0,
            noisy=[89.8, 90.2, 90.0],
            mode="autotuner-only",
            det_copies=0,
        )
        write_config(
            tmp_path,
            optimizer="sgd",
            seed=seed,
            det=90.0,
            noisy=[90.0] * 3,
            digests=[f"k{seed}"] * 3,
            mode="kernels-only",
            det_copies=0,
        )
    exp = load_experiment(tmp_path)
    done = finished(exp.trials).done
    line = sources.source_lines(sources.sources_pooled(done), sources.mode_cost(done, exp.epochs))[0]
    assert line.startswith(
        "sgd: all the noise comes from the autotuner: kernels-only runs never differed (a run differs with "
        f"probability at most {inference.none_differ_bound(4):.2g}); autotuner-only gives 400%"
    )
    assert "reproducible besides deterministic: kernels-only" in line
