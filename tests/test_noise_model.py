"""The statistics of GPU noise (issue #28, reviews/statistics-2.md): zero is zero in every table,
tests and intervals that hold on a few outcomes, and the deterministic run as an outcome of its own.
Each test fails on the code the review read."""

import itertools
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis import inference, load_experiment, questions, stats
from analysis.cells import finished
from analysis.report import ReportOptions, build
from tests.conftest import REPO
from tests.experiment_factory import write_config

sys.path.append(str(REPO / "bench"))  # bench/ holds scripts, not a package
import noise_model  # noqa: E402

RESULTS = REPO / "results"


def scored(root):
    return finished(load_experiment(root).trials).done


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.sampled_from([6, 20, 100]))
def test_copies_of_any_score_on_a_0_01_grid_have_no_spread(hundredths, n):
    # the review: on a 0.01 grid 72% of scores give sd > 0 with 20 copies, and p = 2e-243
    score = round(hundredths / 10_000 * 100, 10)  # as cells.finished reads a stored fraction
    runs = np.full(n, score)
    assert inference.sd(runs) == 0.0 and not inference.varies(runs)
    assert np.isnan(inference.prediction_test(score - 0.35, runs)[1])
    assert np.isnan(inference.one_sample_t(score - 0.35, runs)[1])


@pytest.fixture
def frozen(tmp_path):
    """Twenty bit-identical runs scored 90.35 in each of two seeds, det 90.00 and 90.10."""
    for seed, det in ((0, 90.0), (1, 90.1)):
        write_config(tmp_path, optimizer="sgd", seed=seed, det=det, noisy=[90.35] * 20, digests=[f"s{seed}"] * 20)
    return scored(tmp_path)


def test_copies_are_exact_in_table_ii_and_iii(frozen):
    two = stats.configurations(frozen)
    assert (two["mean_pct"] == 90.35).all() and two["diff_pts"].tolist() == pytest.approx([-0.35, -0.25])
    three = stats.spread(frozen)
    assert (three["std_pts"] == 0).all() and three["note"].str.contains("no variation among 20 runs").all()


def test_copies_have_no_noise_and_say_how_often_a_run_could_differ(frozen):
    r = stats.noise(frozen).iloc[0]
    assert r["sd_pts"] == 0 and np.isnan(r["sd_lo"])
    assert "0 of 38 runs scored differently from their configuration's first" in r["note"]
    assert f"at most {inference.none_differ_bound(38):.2g}" in r["note"]


def test_copies_are_not_atypical_nor_significant(frozen):
    typical = questions.typicality(frozen)
    assert typical["p_normal"].isna().all()  # the review: p = 2.4e-243, "atypical"
    # det alone against 20 equal runs: 1 in 21 if it were one of them, an honest p, not 2e-243
    assert typical["p_rank"].tolist() == pytest.approx([1 / 21, 1 / 21]) and typical["outside"].all()
    pooled = questions.det_outcome(frozen).iloc[0]
    assert pooled["outside"] == 2 and pooled["p_outside"] == pytest.approx((1 / 21) ** 2)
    tests = stats.paper_ttests(frozen)
    assert tests["p"].isna().all() and not tests["significant_holm"].any()
    assert stats.table5_summary(tests).iloc[0]["tested"] == 0


def test_copies_give_cuda_no_share_and_plan_no_paper_test(frozen):
    r = stats.seed_vs_cuda(frozen).iloc[0]
    assert r["var_cuda"] == 0 and np.isnan(r["share_cuda_lo"]) and "0 of 38 runs scored differently" in r["note"]
    design = questions.design(frozen, (0.1, 1.0))
    assert design["paper_test_repeats"].isna().all()
    assert design["note"].str.contains("runs never varied").all()


def test_copies_still_show_the_shift_every_seed_shares(frozen):
    r = questions.mode_shift(frozen).iloc[0]
    assert r["shift_pts"] == pytest.approx(-0.3) and r["p_signflip"] == pytest.approx(0.5)  # two seeds: its least


def test_a_bit_reproducible_mode_neither_crashes_nor_empties_the_report(tmp_path):
    # the review: kernels-only bit-reproducible raised ArithmeticError in power_table, and the sources
    # sentence read "kernels-only 0% (0%-0%)"
    for seed in (0, 1):
        write_config(tmp_path, optimizer="sgd", seed=seed, det=90.0, noisy=[89.9, 90.1, 90.0, 90.2])
        for mode, noisy in (("autotuner-only", [89.8, 90.2, 90.0, 90.1]), ("kernels-only", [90.0] * 4)):
            write_config(
                tmp_path,
                optimizer="sgd",
                seed=seed,
                det=90.0,
                noisy=noisy,
                digests=[f"{mode}{seed}-{r if mode == 'autotuner-only' else 0}" for r in range(4)],
                mode=mode,
                det_copies=0,
            )
    summary = build(load_experiment(tmp_path), tmp_path / "out", ReportOptions())
    pooled = pd.read_csv(tmp_path / "out" / "sources_pooled.csv").iloc[0]
    assert pooled["kernels_share"] == 0 and np.isnan(pooled["kernels_share_lo"])
    assert pooled["kernels_differ_at_most"] == pytest.approx(inference.none_differ_bound(6))
    assert "adds_up" not in pooled.index and "sum_share" not in pooled.index
    assert "kernels-only runs never differed (a run differs with probability at most 0.39)" in summary
    assert "0%-0%" not in summary and "(0%-0%)" not in (tmp_path / "out" / "report.md").read_text()
    noise = pd.read_csv(tmp_path / "out" / "noise.csv")
    assert noise.loc[noise["mode"] == "kernels-only", "sd_pts"].tolist() == [0.0]


def test_the_deterministic_run_is_found_outside_the_real_studies_noise():
    # reviews/statistics-2.md: det strictly outside all 20 runs in 7 of 10 (1xH200) and 5 of 10 (2xH200)
    for study, outside, below in (("cifar10-fast_1xH200", 7, 5), ("cifar10-fast_2xH200", 5, 4)):
        done = finished(load_experiment(RESULTS / study / "trials.csv").trials).done
        r = questions.det_outcome(done).set_index("optimizer").loc["all"]
        assert (r["configs"], r["outside"], r["below_all"]) == (10, outside, below)
        assert r["p_outside"] < 2e-3 and r["expected_outside"] <= 10 * 2 / 21


def test_an_exchangeable_det_is_not_found_outside():
    rng = np.random.default_rng(5)
    positions = []
    for _ in range(10):  # det drawn like the runs, from a lumpy distribution of a few atoms
        values = rng.choice([90.1, 90.3, 90.35, 90.5], size=21, p=[0.1, 0.6, 0.2, 0.1])
        positions.append(inference.position(values[-1], values[:-1]))
    pooled = inference.pooled_position(positions)
    assert pooled.p_outside > 0.05 and pooled.p_lean > 0.05


def test_the_pooled_outside_count_is_exact():
    chances = [1 / 21, 2 / 21, 0.0, 1 / 7]
    for k in range(5):
        brute = sum(
            np.prod([q if hit else 1 - q for q, hit in zip(chances, hits)])
            for hits in itertools.product((0, 1), repeat=4)
            if sum(hits) >= k
        )
        assert inference.poisson_binomial_sf(k, chances) == pytest.approx(brute)


def test_the_chance_of_det_outside_counts_ties_at_the_ends():
    # the min 90.0 is det's alone; the max 90.5 is shared by three runs: only one end can hold det alone
    p = inference.position(90.0, np.array([90.2, 90.3, 90.5, 90.5, 90.5]))
    assert p.p_outside == pytest.approx(1 / 6) and (p.below, p.above) == (0, 5)


def test_on_the_real_studies_outcomes_intervals_cover_and_tests_keep_their_level():
    # a small run of bench/noise_model.py (its full figures are in bench/RESULTS.md): 20 runs per
    # configuration, drawn with the real studies' frequencies; the old normal-theory numbers beside
    table = noise_model.simulate(n=20, reps=15, seed=3).set_index("quantity")
    for name, (rate, count) in table[["rate", "count"]].iterrows():
        if name.startswith("interval:"):  # the bars less two standard errors of `count` replicates
            assert rate >= 0.93 - 2 * np.sqrt(0.93 * 0.07 / count), (name, rate)
        if name.startswith("false alarm:"):
            assert rate <= 0.06 + 2 * np.sqrt(0.06 * 0.94 / count), (name, rate)
    assert table.loc["replaced: one configuration's sd, chi-square", "rate"] < 0.88


def test_the_report_rebuilds_from_its_own_trials_table(tmp_path):
    for seed in (0, 1):
        write_config(tmp_path / "exp", optimizer="sgd", seed=seed, det=93.3, noisy=[93.1, 93.16, 93.22, 93.1])
    build(load_experiment(tmp_path / "exp"), tmp_path / "a", ReportOptions())
    again = build(load_experiment(tmp_path / "a" / "trials.csv"), tmp_path / "b", ReportOptions())
    for name in ("det_outcome", "table2_configurations", "noise", "mode_shift", "typicality", "design", "ttests"):
        pd.testing.assert_frame_equal(
            pd.read_csv(tmp_path / "a" / f"{name}.csv"), pd.read_csv(tmp_path / "b" / f"{name}.csv"), obj=name
        )
    assert "read from the trials table" in (tmp_path / "b" / "report.md").read_text()
    assert again.splitlines()[0].startswith("Integrity OK")


def test_a_deterministic_run_that_scored_nan_is_not_called_missing(tmp_path):
    from analysis import stats as tables
    from tests.experiment_factory import write_trial

    write_config(tmp_path, optimizer="sgd", seed=0, det=90.0, noisy=[90.1, 90.2, 90.0], det_copies=0)
    write_trial(tmp_path, optimizer="sgd", seed=0, mode="deterministic", repeat=0, scores=[float("nan")],
                init="init0", data="data0")  # fmt: skip
    result = finished(load_experiment(tmp_path).trials)
    note = tables.configurations(result.done, result.nan_configs).iloc[0]["note"]
    assert note == "the deterministic run scored NaN (excluded)"  # the review: "no deterministic run finished"
