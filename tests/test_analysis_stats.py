"""Each table against numbers computed here independently, scipy or statsmodels; every defect of
an independent review of the statistics reproduced as a test the old code failed."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sp
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower
from statsmodels.stats.weightstats import DescrStatsW

from analysis import inference, load_experiment, questions, stats
from analysis.cells import finished
from tests.experiment_factory import RUNTIME, STUDY, write_config, write_study, write_trial


def scored(root):
    return finished(load_experiment(root).trials).done


@pytest.fixture
def done(tmp_path):
    return scored(write_study(tmp_path))


def pct(xs):
    return np.array(xs) * 100


def row(table, **key):
    mask = np.logical_and.reduce([table[k] == v for k, v in key.items()])
    assert mask.sum() == 1, key
    return table[mask].iloc[0]


# the review's case: 6 runs, 4 of them bit-identical copies, against det 93.30
COPIES = dict(det=93.30, noisy=[93.10, 93.10, 93.10, 93.10, 93.16, 93.22], digests=["a", "a", "a", "a", "b", "c"])


@pytest.fixture
def copies(tmp_path):
    write_config(tmp_path, optimizer="sgd", seed=0, **COPIES)
    return scored(tmp_path)


def test_table1_counts_runs_and_deterministic_outcomes_apart(done):
    t = stats.table1_extremes(done)
    adam = row(t, optimizer="adam")
    assert adam["max_pct"] == pytest.approx(94.0) and adam["min_pct"] == pytest.approx(79.0)
    assert adam["noisy_runs"] == 8 and adam["det_runs"] == 4 and adam["configs"] == 2 and adam["det_outcomes"] == 2


def test_table2_differences_are_det_minus_mean_in_points(done):
    t = stats.configurations(done)
    for (optimizer, seed), modes in STUDY.items():
        det, nondet = pct(modes["det"]).mean(), pct(modes["nondet"])
        r = row(t, optimizer=optimizer, seed=seed)
        assert r["det_pct"] == pytest.approx(det) and r["mean_pct"] == pytest.approx(nondet.mean())
        assert r["diff_pts"] == pytest.approx(det - nondet.mean())
        assert r["max_dev_pts"] == pytest.approx(np.abs(nondet - det).max())
        assert r["n"] == 4 and r["n_distinct"] == 4 and r["n_equal_det"] == 0
    # one sign and one unit in every table: the same configuration shows the same difference
    tests = stats.paper_ttests(done)
    assert np.allclose(t["diff_pts"], tests["diff_pts"])


def test_every_table_is_keyed_optimizer_seed_mode_in_that_order(done):
    for table in (
        stats.configurations(done),
        stats.spread(done),
        stats.runtime(done),
        questions.typicality(done),
        stats.paper_ttests(done),
    ):
        assert list(table.columns[:3]) == ["optimizer", "seed", "mode"]
        assert list(table.index) == list(range(len(table)))  # flat: no tuple labels in the report
    for table in (
        questions.mode_shift(done),
        stats.seed_vs_cuda(done),
        stats.noise(done),
        questions.design(done, (0.1,)),
        questions.det_outcome(done),
    ):
        assert list(table.columns[:2]) == ["optimizer", "mode"]


def test_scores_carry_no_float_noise_from_the_percent_conversion(tmp_path):
    write_config(tmp_path, optimizer="sgd", seed=0, det=93.3, noisy=[93.3, 93.4])
    assert set(scored(tmp_path)["score"]) == {93.3, 93.4}


def test_table3_describes_each_configuration_and_the_noise_table_pools_its_sd(done):
    nondet = pct(STUDY[("sgd", 0)]["nondet"])
    r = row(stats.spread(done), optimizer="sgd", seed=0)
    assert r["std_pts"] == pytest.approx(np.std(nondet, ddof=1)) and r["range_pts"] == pytest.approx(0.3)
    assert "std_lo" not in r.index  # one configuration's interval does not hold on a few outcomes
    pooled = row(stats.noise(done), optimizer="sgd")
    groups = [pct(STUDY[("sgd", s)]["nondet"]) for s in (0, 1)]
    within = sum(((g - g.mean()) ** 2).sum() for g in groups) / (len(groups[0]) * 2 - 2)
    assert pooled["sd_pts"] == pytest.approx(np.sqrt(within)) and pooled["sd_lo"] < pooled["sd_pts"] < pooled["sd_hi"]
    assert pooled["dof"] == 6  # distinct outcomes beyond one per seed: 3 + 3


def test_the_jackknife_interval_matches_its_formula():
    groups = [np.array([1.0, 2.0, 4.0]), np.array([3.0, 3.0, 5.0, 9.0])]
    estimate = inference.pooled_sd(groups)
    leave = []
    for i, g in enumerate(groups):
        for j in range(len(g)):
            left = [np.delete(g, j) if k == i else h for k, h in enumerate(groups)]
            leave.append(np.log(inference.pooled_sd(left)))
    leave = np.array(leave)
    se = np.sqrt((len(leave) - 1) / len(leave) * ((leave - leave.mean()) ** 2).sum())
    q = sp.t.ppf(0.975, 2 + 2)  # distinct values beyond one per group
    lo, hi = inference.jackknife_interval(groups, inference.pooled_sd, inference.LOG)
    assert (lo, hi) == pytest.approx((estimate * np.exp(-q * se), estimate * np.exp(q * se)))


def test_table4_runtime_difference_is_det_minus_noisy(done):
    r = row(stats.runtime(done), optimizer="adam", seed=0)
    det = np.mean([RUNTIME["det"] + i for i in range(2)]) / 60
    nondet = np.mean([RUNTIME["nondet"] + i for i in range(4)]) / 60
    assert r["det_min"] == pytest.approx(det) and r["mode_min"] == pytest.approx(nondet)
    assert r["diff_min"] == pytest.approx(det - nondet) and r["diff_rel_pct"] == pytest.approx(
        (det - nondet) / nondet * 100
    )


def test_paper_ttest_matches_scipy_and_holm_matches_statsmodels(done):
    tests = stats.paper_ttests(done)
    for (optimizer, seed), modes in STUDY.items():
        ref = sp.ttest_1samp(pct(modes["nondet"]), popmean=pct(modes["det"]).mean())
        r = row(tests, optimizer=optimizer, seed=seed)
        assert r["t"] == pytest.approx(ref.statistic) and r["p"] == pytest.approx(ref.pvalue)
    # one family: every tested configuration of the mode, all optimizers together
    assert np.allclose(tests["p_holm"], multipletests(tests["p"], method="holm")[1])


def test_copies_are_draws_every_test_uses_every_run_and_n_distinct_only_describes(copies):
    r = row(stats.paper_ttests(copies), optimizer="sgd", seed=0)
    assert r["p"] == pytest.approx(4.16e-4, rel=1e-2)  # the paper's way, on all 6 draws
    assert "p_distinct" not in r.index and r["n"] == 6 and r["n_distinct"] == 3
    assert "3 of 6 runs repeat an earlier run's outcome (3 distinct outcomes)" in r["note"]  # not "4 of 6 are copies"
    typical = row(questions.typicality(copies), optimizer="sgd", seed=0)
    assert (typical["below"], typical["ties"], typical["above"]) == (6, 0, 0) and typical["outside"]
    assert typical["p_rank"] == pytest.approx(1 / 7)  # det alone at the top; the bottom is a tie of four
    assert "6 runs: the rank test cannot reach p < 0.05 (it needs 39)" in typical["note"]


def test_zero_variance_is_no_variation_never_p_zero(tmp_path):
    write_config(tmp_path, optimizer="sgd", seed=0, det=93.3, noisy=[93.1] * 4, digests=["a"] * 4)
    done = scored(tmp_path)
    r = row(stats.paper_ttests(done), optimizer="sgd", seed=0)
    assert np.isnan(r["p"]) and "no variation among 4 runs" in r["note"]
    assert np.isnan(row(questions.typicality(done), optimizer="sgd", seed=0)["p_normal"])
    tests = stats.paper_ttests(done)
    assert not tests["significant_holm"].any()
    summary = row(stats.table5_summary(tests), optimizer="sgd")
    assert (summary["tested"], summary["configs"], summary["sig_holm"]) == (0, 1, 0)


def test_the_prediction_test_keeps_its_false_alarm_rate_as_repeats_grow():
    # det drawn from the very distribution of the runs: the paper's test rejects more often with
    # more repeats (the review measured 38% at n = 6, 65% at n = 20); the prediction test stays at alpha
    rng = np.random.default_rng(7)
    for n, paper_rate in ((6, 0.30), (20, 0.55)):
        draws = rng.normal(93.0, 0.1, size=(3000, n + 1))
        prediction = np.mean([inference.prediction_test(d[0], d[1:])[1] < 0.05 for d in draws])
        paper = np.mean([inference.one_sample_t(d[0], d[1:])[1] < 0.05 for d in draws])
        assert 0.035 <= prediction <= 0.065 and paper > paper_rate


def test_the_prediction_test_matches_its_formula():
    x, det = np.array([93.1, 93.16, 93.22, 93.0]), 93.3
    s, n = np.std(x, ddof=1), len(x)
    t = (det - x.mean()) / (s * np.sqrt(1 + 1 / n))
    assert inference.prediction_test(det, x) == pytest.approx((t, 2 * sp.t.sf(abs(t), n - 1)))


def test_the_rank_test_is_the_exact_permutation_test_of_det_s_mid_rank():
    # det one more draw: each of the n + 1 values equally likely to be det; its |centred mid-rank| the statistic
    for det, runs in ((5.5, np.arange(10.0)), (100.0, np.arange(19.0)), (0.0, np.array([0.0, 0.0, 1.0, 2.0]))):
        values = np.append(runs, det)
        u = np.abs(sp.rankdata(values) - (len(values) + 1) / 2)
        assert inference.position(det, runs).p == pytest.approx(np.mean(u >= u[-1]))
    assert inference.position(100.0, np.arange(19.0)).p == pytest.approx(2 / 20)  # the smallest: 2 / (n + 1)
    tied = inference.position(0.0, np.array([0.0, 0.0, 1.0, 2.0]))
    assert (tied.below, tied.ties, tied.above) == (0, 2, 2) and tied.p == pytest.approx(1.0)


def test_deterministic_copies_are_one_observation(tmp_path):
    # the same information with 2, 5 or 20 deterministic copies: every statistic is unchanged
    results = []
    for copies in (2, 5, 20):
        root = tmp_path / str(copies)
        write_config(root, optimizer="sgd", seed=0, det=93.3, noisy=[93.1, 93.16, 93.22, 93.4], det_copies=copies)
        write_config(root, optimizer="sgd", seed=1, det=92.0, noisy=[92.5, 92.1, 91.9], det_copies=copies)
        done = scored(root)
        results.append(
            [
                stats.configurations(done),
                questions.typicality(done),
                stats.paper_ttests(done),
                questions.mode_shift(done),
                stats.seed_vs_cuda(done),
                stats.spread(done),
                stats.noise(done),
                questions.det_outcome(done),
            ]
        )
    for other in results[1:]:
        for a, b in zip(results[0], other):
            pd.testing.assert_frame_equal(a, b)


def test_welch_and_brown_forsythe_are_gone():
    assert not hasattr(stats, "mode_tests") and not hasattr(stats, "bootstrap_intervals")


def test_mode_shift_pairs_over_seeds_and_says_what_it_could_have_missed(tmp_path):
    diffs = []
    for seed, (det, noisy) in enumerate(
        [(93.3, [93.1, 93.2]), (92.0, [92.4, 92.2]), (91.0, [90.5, 90.9]), (94.0, [93.9, 93.7])]
    ):
        write_config(tmp_path, optimizer="adam", seed=seed, det=det, noisy=noisy)
        diffs.append(det - np.mean(noisy))
    r = row(questions.mode_shift(scored(tmp_path)), optimizer="adam")
    ref = sp.ttest_1samp(diffs, 0.0)
    assert r["seeds"] == 4 and r["shift_pts"] == pytest.approx(np.mean(diffs))
    assert r["p_t_normal"] == pytest.approx(ref.pvalue)
    assert (r["shift_lo_t"], r["shift_hi_t"]) == pytest.approx(sp.t.interval(0.95, 3, np.mean(diffs), sp.sem(diffs)))
    signs = np.array(np.meshgrid(*[[1, -1]] * 4)).reshape(4, -1).T
    flipped = signs @ np.array(diffs)
    one_sided = min(np.mean(flipped >= np.sum(diffs) - 1e-12), np.mean(flipped <= np.sum(diffs) + 1e-12))
    assert r["p_signflip"] == pytest.approx(min(1.0, 2 * one_sided)) and r["p_signflip_min"] == pytest.approx(2 / 16)
    ref_tost = DescrStatsW(np.array(diffs)).ttost_mean(-0.1, 0.1)[0]
    assert r["p_equivalent"] == pytest.approx(ref_tost) and r["margin_pts"] == 0.1
    effect = r["detectable_pts"] / np.std(diffs, ddof=1)
    assert TTestPower().power(effect, 4, 0.05) == pytest.approx(0.8, abs=1e-3)  # 80% power at that shift
    assert "cannot reach p < 0.05 with 4 seeds (it needs 6)" in r["note"]


def test_a_shift_every_seed_shares_is_that_shift_not_no_test(tmp_path):
    # the review: reproducible noisy runs and det - mean = -0.5 in both seeds printed "no test applies"
    for seed in (0, 1):
        write_config(tmp_path, optimizer="adam", seed=seed, det=90.0, noisy=[90.5] * 3, digests=[f"n{seed}"] * 3)
    r = row(questions.mode_shift(scored(tmp_path)), optimizer="adam")
    assert r["shift_pts"] == pytest.approx(-0.5) and (r["shift_lo_t"], r["shift_hi_t"]) == (-0.5, -0.5)
    assert "every seed moved by exactly -0.500 pts" in r["note"]


def test_more_than_16_seeds_get_a_sign_flip_p_and_say_how(tmp_path):
    rng = np.random.default_rng(1)
    for seed in range(18):
        noisy = list(90 + rng.normal(0, 0.1, 3).round(2))
        write_config(tmp_path, optimizer="sgd", seed=seed, det=90.05, noisy=noisy)
    r = row(questions.mode_shift(scored(tmp_path)), optimizer="sgd")
    assert 0 < r["p_signflip"] <= 1 and "random sign patterns" in r["note"]


def test_mode_shift_with_one_seed_says_it_needs_two(tmp_path):
    write_config(tmp_path, optimizer="adam", seed=0, det=93.3, noisy=[93.1, 93.2])
    r = row(questions.mode_shift(scored(tmp_path)), optimizer="adam")
    assert r["seeds"] == 1 and np.isnan(r["p_t_normal"]) and r["note"] == "needs >= 2 seeds"


def test_seed_vs_cuda_by_anova():
    groups = [np.array([1.0, 3.0]), np.array([5.0, 7.0]), np.array([9.0, 11.0])]
    r = inference.random_effects(groups)
    # within-seed variance 2; MS_between = 2 * var(3, 7, 11) = 32, sigma_seed^2 = (32 - 2) / 2 = 15
    assert (
        r.var_cuda == pytest.approx(2.0) and r.var_seed == pytest.approx(15.0) and r.share_cuda == pytest.approx(2 / 17)
    )
    assert r.share_cuda_lo < 2 / 17 < r.share_cuda_hi


def test_seed_vs_cuda_flags_truncation_and_reports_one_seed(tmp_path):
    write_config(tmp_path, optimizer="sgd", seed=0, det=90.0, noisy=[90.0, 91.0, 92.0])
    one = row(stats.seed_vs_cuda(scored(tmp_path)), optimizer="sgd")
    assert one["var_cuda"] == pytest.approx(1.0) and np.isnan(one["share_cuda"]) and "needs >= 2 seeds" in one["note"]
    write_config(
        tmp_path, optimizer="sgd", seed=1, det=90.0, noisy=[90.0, 91.0, 92.01]
    )  # seeds agree better than chance
    two = row(stats.seed_vs_cuda(scored(tmp_path)), optimizer="sgd")
    assert two["var_seed"] == 0 and "< 0, set to 0" in two["note"] and two["share_cuda"] == pytest.approx(1.0)


def test_a_nan_score_is_excluded_once_and_said(tmp_path):
    write_config(tmp_path, optimizer="sgd", seed=0, det=93.3, noisy=[93.1, 93.16, 93.22, 93.0])
    write_trial(
        tmp_path,
        optimizer="sgd",
        seed=0,
        mode="nondeterministic",
        repeat=9,
        scores=[float("nan")],
        weights="nan-run",
        init="init0",
        data="data0",
    )
    result = finished(load_experiment(tmp_path).trials)
    assert len(result.done) == 6 and len(result.notes) == 1 and "score is NaN" in result.notes[0]
    assert result.nan_trials == ("sgd_seed0_nondet_r9_00000_00009",)
    r = row(stats.paper_ttests(result.done), optimizer="sgd", seed=0)
    assert r["n"] == 4 and not np.isnan(r["p"])  # the configuration is still tested, on its 4 scores
    noise = row(stats.noise(result.done), optimizer="sgd")
    assert noise["runs"] == 4 and noise["sd_pts"] == pytest.approx(np.std([93.1, 93.16, 93.22, 93.0], ddof=1))
    problems = stats.integrity(load_experiment(tmp_path).trials, result.nan_trials)
    assert problems["check"].tolist() == ["every finished trial has a score"]


def test_a_trial_without_final_metric_is_scored_by_its_last_epoch(tmp_path):
    directory = write_trial(tmp_path, optimizer="sgd", seed=0, mode="deterministic", repeat=0, scores=[0.5, 0.7])
    lines = (directory / "result.json").read_text().splitlines()
    lines[-1] = lines[-1].replace('"final_metric": 0.7, ', "")
    (directory / "result.json").write_text("\n".join(lines) + "\n")
    result = finished(load_experiment(tmp_path).trials)
    assert result.done["score"].tolist() == [70.0] and "scored by its last epoch's metric" in result.notes[0]


def test_repeats_needed_is_right_where_scipy_s_lower_tail_fails():
    assert [inference.repeats_needed(d, 0.0553) for d in (0.1, 0.25, 0.5, 1.0)] == [5, 3, 3, 2]  # the old code: 5/3/4/2
    assert inference.repeats_needed(0.1, 0.012) == 3  # the old code: 10
    assert inference.repeats_needed(0.5, 0.5) == 10  # d = 1: G*Power's 10
    assert inference.repeats_needed(1.0, 0.0) is None


@pytest.mark.filterwarnings("ignore::statsmodels.tools.sm_exceptions.ConvergenceWarning")  # its NaN is what we skip
def test_repeats_needed_agrees_with_statsmodels_is_monotone_and_finite():
    previous = None
    for d in np.linspace(0.2, 8.0, 79):
        ours = inference.repeats_needed(d, 1.0)
        assert isinstance(ours, int) and ours >= 2
        reference = TTestPower().solve_power(effect_size=d, alpha=0.05, power=0.8, alternative="two-sided")
        if np.isfinite(reference) and d < 3:
            assert ours == max(2, int(np.ceil(reference))), d
        assert previous is None or ours <= previous
        previous = ours
    for sd in np.linspace(0.01, 0.3, 100):
        needed = [inference.repeats_needed(d, sd) for d in (0.1, 0.25, 0.5, 1.0)]
        assert needed == sorted(needed, reverse=True), sd
        assert all(
            inference.power(n, d / sd) >= 0.8 > (inference.power(n - 1, d / sd) if n > 2 else 0)
            for n, d in zip(needed, (0.1, 0.25, 0.5, 1.0))
        )


def test_design_plans_repeats_for_the_rank_test_and_seeds_for_the_shift(done):
    t = questions.design(done, (0.1, 1.0))
    r = row(t, optimizer="sgd", delta_pts=1.0)
    assert r["repeats_rank_test"] == 39  # a det beyond every run: the rank test needs 2 / alpha - 1 runs
    assert str(t["repeats_rank_test"].dtype) == "Int64" and str(t["seeds_shift_test"].dtype) == "Int64"
    diffs = [pct(STUDY[("sgd", s)]["det"]).mean() - pct(STUDY[("sgd", s)]["nondet"]).mean() for s in (0, 1)]
    assert r["sd_over_seeds_pts"] == pytest.approx(np.std(diffs, ddof=1))
    small = row(t, optimizer="sgd", delta_pts=0.1)
    assert small["seeds_shift_test"] == max(6, inference.repeats_needed(0.1, np.std(diffs, ddof=1)))
    assert small["paper_test_repeats"] == inference.repeats_needed(0.1, r["sd_within_pts"])


def test_the_rank_test_s_repeats_come_from_the_runs_own_scatter():
    residuals = np.r_[np.zeros(98), -0.3, 0.3]
    # a det 0.15 from the centre: one run in 100 reaches as far its way (mirrored: 2 of 200)
    n = inference.rank_repeats_needed(0.15, residuals)
    m = lambda k: int(np.floor(0.05 * (k + 1) / 2)) - 1  # noqa: E731
    assert sp.binom.cdf(m(n), n, 0.01) >= 0.8 > (sp.binom.cdf(m(n - 1), n - 1, 0.01) if m(n - 1) >= 0 else 0)
    assert n > 39  # more than a det beyond every run needs
    # a det as far out as a sixth of the runs reach is never found: at most alpha / 2 of them may reach it
    assert inference.rank_repeats_needed(0.15, np.array([-0.2, -0.1, 0.0, 0.0, 0.1, 0.2])) is None


def test_integrity_flags_each_broken_promise(tmp_path):
    write_study(tmp_path)
    assert stats.integrity(load_experiment(tmp_path).trials).empty
    write_trial(
        tmp_path,
        optimizer="sgd",
        seed=0,
        mode="deterministic",
        repeat=9,
        scores=[0.95],
        weights="other",
        init="init0",
        data="data0",
    )
    write_trial(
        tmp_path,
        optimizer="adam",
        seed=1,
        mode="nondeterministic",
        repeat=9,
        scores=[0.8],
        weights="x",
        init="init1",
        data="changed",
    )
    problems = stats.integrity(load_experiment(tmp_path).trials)
    assert set(zip(problems["optimizer"], problems["seed"], problems["check"])) == {
        ("sgd", 0, "deterministic repeats share weights_sha256"),
        ("adam", 1, "all repeats share data_sha256"),
    }


def test_outcomes_count_distinct_runs_and_runs_equal_to_deterministic(tmp_path):
    write_config(
        tmp_path,
        optimizer="sgd",
        seed=0,
        det=93.3,
        noisy=[93.3, 93.3, 93.1, 93.2],
        digests=["d", "d", "b", "c"],
        det_digest="d",
    )
    r = stats.outcomes(scored(tmp_path)).iloc[0]
    assert (r["mode"], r["runs"], r["distinct"], r["equal_det"]) == ("nondeterministic", 4, 3, 2)


def test_table6_energy_measured_and_estimated(done):
    t = stats.table6_energy(done, board_power_w=250.0, carbon_kg_per_kwh=0.5)
    adam_joules = 2 * sum(1000.0 * (r + 1) for r in range(2)) + 2 * sum(1000.0 * (r + 1) for r in range(4))
    sgd_joules = 2 * sum((RUNTIME["det"] + r) * 250.0 for r in range(2)) + 2 * sum(
        (RUNTIME["nondet"] + r) * 250.0 for r in range(4)
    )
    assert (
        row(t, optimizer="adam")["kwh"] == pytest.approx(adam_joules / 3.6e6)
        and row(t, optimizer="adam")["measured"] == 12
    )
    assert (
        row(t, optimizer="sgd")["kwh"] == pytest.approx(sgd_joules / 3.6e6) and row(t, optimizer="sgd")["measured"] == 0
    )
    assert row(t, optimizer="all")["co2_kg"] == pytest.approx((adam_joules + sgd_joules) / 3.6e6 * 0.5)


def test_distinct_outcomes_are_counted_within_each_configuration(tmp_path):
    # the same digest names in two configurations are two outcomes (different seeds never share weights)
    write_config(tmp_path, optimizer="sgd", seed=0, det=93.3, noisy=[93.1, 93.1, 93.2], digests=["a", "a", "b"])
    write_config(tmp_path, optimizer="sgd", seed=1, det=92.0, noisy=[92.1, 91.9, 92.0], digests=["a", "b", "c"])
    done = scored(tmp_path)
    assert row(stats.seed_vs_cuda(done), optimizer="sgd")["n_distinct"] == 5
    assert stats.outcomes(done).iloc[0]["distinct"] == 5
