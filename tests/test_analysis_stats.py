"""Each table against numbers computed here independently (or by scipy.stats directly)."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sp

from analysis import load_experiment
from analysis import stats
from tests.experiment_factory import RUNTIME, STUDY, write_study, write_trial


@pytest.fixture
def done(tmp_path):
    return stats.finished(load_experiment(write_study(tmp_path)).trials)


def pct(xs):
    return np.array(xs) * 100


def test_table1_best_and_worst_run_per_optimizer(done):
    t = stats.table1_extremes(done)
    assert t.loc["adam", "max_pct"] == pytest.approx(94.0) and t.loc["adam", "min_pct"] == pytest.approx(79.0)
    assert t.loc["sgd", "max_pct"] == pytest.approx(96.0) and t.loc["sgd", "min_pct"] == pytest.approx(94.9)
    assert t.loc["adam", "runs"] == 12


def test_table2_relative_difference_and_largest_deviation(done):
    t = stats.table2_configurations(done)
    for (optimizer, seed), modes in STUDY.items():
        det, nondet = pct(modes["det"]).mean(), pct(modes["nondet"])
        row = t.loc[(optimizer, seed)]
        assert row["det_pct"] == pytest.approx(det)
        assert row["nondet_mean_pct"] == pytest.approx(nondet.mean())
        assert row["diff_pct"] == pytest.approx((det - nondet.mean()) / nondet.mean() * 100)
        assert row["max_dev_pct"] == pytest.approx(np.abs(nondet - det).max() / det * 100)
    assert t.loc[("adam", 0), "diff_pct"] == pytest.approx((90 - 92.5) / 92.5 * 100)
    assert t.loc[("adam", 0), "max_dev_pct"] == pytest.approx(4 / 90 * 100)


def test_table3_std_and_range_in_points(done):
    t = stats.table3_seed_optimizer(done)
    nondet = pct(STUDY[("sgd", 0)]["nondet"])
    assert t.loc[(0, "sgd"), "std_pts"] == pytest.approx(np.std(nondet, ddof=1))
    assert t.loc[(0, "sgd"), "range_pts"] == pytest.approx(0.3)


def test_table4_runtime_in_minutes(done):
    t = stats.table4_runtime(done)
    det = np.mean([RUNTIME["det"] + r for r in range(2)]) / 60
    nondet = np.mean([RUNTIME["nondet"] + r for r in range(4)]) / 60
    assert t.loc[("adam", 0), "det_min"] == pytest.approx(det)
    assert t.loc[("adam", 0), "nondet_min"] == pytest.approx(nondet)
    assert t.loc[("adam", 0), "diff_pct"] == pytest.approx((nondet - det) / det * 100)


def test_table5_one_sample_t_tests_match_scipy(done):
    tests = stats.ttests(done)
    for (optimizer, seed), modes in STUDY.items():
        ref = sp.ttest_1samp(pct(modes["nondet"]), popmean=pct(modes["det"]).mean())
        assert tests.loc[(optimizer, seed), "t"] == pytest.approx(ref.statistic)
        assert tests.loc[(optimizer, seed), "p"] == pytest.approx(ref.pvalue)
    significant = {k for k, v in tests["significant"].items() if v}
    expected = {k for k, modes in STUDY.items()
                if sp.ttest_1samp(pct(modes["nondet"]), pct(modes["det"]).mean()).pvalue < 0.05}
    assert significant == expected and ("adam", 0) in expected and ("sgd", 1) in expected and ("adam", 1) not in expected
    summary = stats.table5_ttest_summary(tests)
    dev = tests["dev_pct"]
    assert summary.loc["adam", "sig_configs"] == f"{sum(1 for o, _ in expected if o == 'adam')}/2"
    assert summary.loc["adam", "avg_dev_all_pct"] == pytest.approx(dev.loc["adam"].mean())
    sig_adam = [dev.loc[k] for k in expected if k[0] == "adam"]
    assert summary.loc["adam", "avg_dev_sig_pct"] == pytest.approx(np.mean(sig_adam))
    assert dev.loc[("adam", 0)] == pytest.approx(abs(92.5 - 90) / 90 * 100)


def test_holm_correction_by_hand():
    p = pd.Series([0.01, 0.04, 0.03, np.nan, 0.005], index=list("abcde"))
    adjusted = stats.holm(p)
    # sorted: e .005*4=.02, a .01*3=.03, c .03*2=.06, b .04*1=.04 -> monotone: .02 .03 .06 .06
    assert adjusted.round(10).to_dict() == pytest.approx({"a": 0.03, "b": 0.06, "c": 0.06, "d": np.nan, "e": 0.02}, nan_ok=True)


def test_table6_energy_measured_and_estimated(done):
    t = stats.table6_energy(done, board_power_w=250.0, carbon_kg_per_kwh=0.5)
    adam_joules = 2 * sum(1000.0 * (r + 1) for r in range(2)) + 2 * sum(1000.0 * (r + 1) for r in range(4))
    sgd_joules = 2 * sum((RUNTIME["det"] + r) * 250.0 for r in range(2)) + 2 * sum((RUNTIME["nondet"] + r) * 250.0 for r in range(4))
    assert t.loc["adam", "kwh"] == pytest.approx(adam_joules / 3.6e6) and t.loc["adam", "measured"] == 12
    assert t.loc["sgd", "kwh"] == pytest.approx(sgd_joules / 3.6e6) and t.loc["sgd", "measured"] == 0
    assert t.loc["all", "co2_kg"] == pytest.approx((adam_joules + sgd_joules) / 3.6e6 * 0.5)


def test_welch_and_brown_forsythe_match_scipy(done):
    t = stats.mode_tests(done)
    det, nondet = pct(STUDY[("adam", 0)]["det"]), pct(STUDY[("adam", 0)]["nondet"])
    assert t.loc[("adam", 0), "welch_p"] == pytest.approx(sp.ttest_ind(det, nondet, equal_var=False).pvalue)
    assert t.loc[("adam", 0), "bf_p"] == pytest.approx(sp.levene(det, nondet, center="median").pvalue)


def test_bootstrap_interval_brackets_the_estimate(done):
    t = stats.bootstrap_intervals(done)
    row = t.loc[("adam", 0)]
    assert row["mean_lo"] <= row["mean_pct"] <= row["mean_hi"] and row["mean_lo"] >= 91 - 1e-9 and row["mean_hi"] <= 94 + 1e-9
    assert row["std_lo"] <= row["std_pts"] + 1e-9
    assert stats.bootstrap_intervals(done).equals(t)  # seeded: the same report twice


def test_variance_share_by_anova():
    rows = []
    for seed, scores in ((0, [1.0, 3.0]), (1, [5.0, 7.0]), (2, [9.0, 11.0])):
        rows += [{"optimizer": "adam", "seed": seed, "mode": "nondeterministic", "score": s} for s in scores]
    t = stats.variance_share(pd.DataFrame(rows))
    # within-seed variance 2; between: MS_between = 2 * var(3, 7, 11) = 32, sigma_seed^2 = (32 - 2) / 2 = 15
    assert t.loc["adam", "var_cuda"] == pytest.approx(2.0) and t.loc["adam", "var_seed"] == pytest.approx(15.0)
    assert t.loc["adam", "share_cuda"] == pytest.approx(2 / 17)


def test_integrity_flags_each_broken_promise(tmp_path):
    write_study(tmp_path)
    assert stats.integrity(load_experiment(tmp_path).trials).empty
    write_trial(tmp_path, optimizer="sgd", seed=0, mode="deterministic", repeat=9, scores=[0.95], weights="other", init="init0", data="data0")
    write_trial(tmp_path, optimizer="adam", seed=1, mode="nondeterministic", repeat=9, scores=[0.8], weights="x", init="init1", data="changed")
    problems = stats.integrity(load_experiment(tmp_path).trials)
    assert set(zip(problems["optimizer"], problems["seed"], problems["check"])) == {
        ("sgd", 0, "deterministic repeats share weights_sha256"), ("adam", 1, "all repeats share data_sha256")}


def test_repeats_needed_matches_the_textbook_value():
    # two-sided one-sample t-test, d = 1, alpha 0.05, power 0.8: n = 10 (e.g. G*Power)
    assert stats.repeats_needed(delta=0.5, sd=0.5) == 10
    assert stats.repeats_needed(delta=0.25, sd=0.5) > stats.repeats_needed(delta=0.5, sd=0.5)
    assert np.isnan(stats.repeats_needed(delta=1.0, sd=0.0))
