"""The reference study's tables and the statistics beyond it, as small pure functions over the
trials DataFrame (one row per trial; see analysis.load). Scores are shown in percent (the
metric x 100), as the paper shows them.

"Deterministic score" is the mean of a configuration's deterministic repeats (one number when the
contract holds, since they are bit-identical).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

CONFIG = ["optimizer", "seed"]
DET, NONDET = "deterministic", "nondeterministic"


def finished(trials: pd.DataFrame) -> pd.DataFrame:
    """Finished trials with `score` = primary test metric of the selected epoch, in percent."""
    done = trials[trials["status"] == "finished"].copy()
    done["score"] = done["final_metric"].astype(float) * 100
    return done


def _mean(scores: np.ndarray) -> float:
    """The mean, NaN for no scores (a configuration missing one mode)."""
    return float(scores.mean()) if len(scores) else np.nan


def _configs(done: pd.DataFrame):
    """(optimizer, seed, deterministic scores, non-deterministic scores) per configuration."""
    for (optimizer, seed), group in done.groupby(CONFIG, sort=True):
        yield optimizer, seed, group.loc[group["mode"] == DET, "score"].to_numpy(), group.loc[group["mode"] == NONDET, "score"].to_numpy()


def table1_extremes(done: pd.DataFrame) -> pd.DataFrame:
    """Table I: best and worst score per optimizer over all runs, both modes."""
    return done.groupby("optimizer")["score"].agg(max_pct="max", min_pct="min", runs="count")


def table2_configurations(done: pd.DataFrame) -> pd.DataFrame:
    """Table II: per configuration, deterministic score, non-deterministic mean, relative
    difference (det - mean) / mean in %, and the largest |run - det| / det in %."""
    rows = []
    for optimizer, seed, det, nondet in _configs(done):
        d, m = _mean(det), _mean(nondet)
        rows.append({"optimizer": optimizer, "seed": seed, "det_pct": d, "nondet_mean_pct": m,
                     "diff_pct": (d - m) / m * 100, "max_dev_pct": (np.abs(nondet - d).max() / d * 100) if len(nondet) else np.nan,
                     "n_det": len(det), "n_nondet": len(nondet)})
    return pd.DataFrame(rows).set_index(CONFIG)


def table3_seed_optimizer(done: pd.DataFrame) -> pd.DataFrame:
    """Table III: per seed and optimizer, det, non-det mean, difference %, std and range (points)."""
    rows = []
    for optimizer, seed, det, nondet in _configs(done):
        d, m = _mean(det), _mean(nondet)
        rows.append({"seed": seed, "optimizer": optimizer, "det_pct": d, "nondet_mean_pct": m, "diff_pct": (d - m) / m * 100,
                     "std_pts": nondet.std(ddof=1) if len(nondet) > 1 else np.nan,
                     "range_pts": nondet.max() - nondet.min() if len(nondet) else np.nan})
    return pd.DataFrame(rows).set_index(["seed", "optimizer"])


def table4_runtime(done: pd.DataFrame) -> pd.DataFrame:
    """Table IV: runtime per configuration, deterministic vs mean non-deterministic, in minutes;
    diff_pct = (nondet - det) / det, so negative means the deterministic runs were slower."""
    minutes = done.assign(minutes=done["runtime_s"].astype(float) / 60)
    table = minutes.pivot_table(index=CONFIG, columns="mode", values="minutes", aggfunc="mean")
    table = table.reindex(columns=[DET, NONDET]).rename(columns={DET: "det_min", NONDET: "nondet_min"})
    table["diff_pct"] = (table["nondet_min"] - table["det_min"]) / table["det_min"] * 100
    table.columns.name = None
    return table


def holm(pvalues: pd.Series) -> pd.Series:
    """Holm-Bonferroni adjusted p-values (NaN stays NaN and does not count as a test)."""
    p = pvalues.dropna().sort_values()
    m = len(p)
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p.to_numpy()))
    return pd.Series(adjusted, index=p.index).reindex(pvalues.index)


def ttests(done: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """One-sample t-test of each configuration's non-deterministic scores against its
    deterministic score (the paper's Table V test), with Holm's correction across configurations."""
    rows = []
    for optimizer, seed, det, nondet in _configs(done):
        d, m = _mean(det), _mean(nondet)
        if len(nondet) >= 2 and not np.isnan(d):
            res = stats.ttest_1samp(nondet, popmean=d)
            t, p = float(res.statistic), float(res.pvalue)
        else:
            t = p = np.nan
        rows.append({"optimizer": optimizer, "seed": seed, "det_pct": d, "nondet_mean_pct": m,
                     "dev_pct": abs(m - d) / d * 100, "t": t, "p": p})
    table = pd.DataFrame(rows).set_index(CONFIG)
    table["significant"] = table["p"] < alpha
    table["p_holm"] = holm(table["p"])
    table["significant_holm"] = table["p_holm"] < alpha
    return table


def table5_ttest_summary(tests: pd.DataFrame) -> pd.DataFrame:
    """Table V: per optimizer, significant configurations, mean deviation % over them and over all."""
    rows = []
    for optimizer, group in tests.groupby(level="optimizer"):
        sig = group[group["significant"]]
        rows.append({"optimizer": optimizer, "sig_configs": f"{len(sig)}/{len(group)}",
                     "avg_dev_sig_pct": sig["dev_pct"].mean() if len(sig) else np.nan,
                     "avg_dev_all_pct": group["dev_pct"].mean(),
                     "sig_configs_holm": f"{int(group['significant_holm'].sum())}/{len(group)}"})
    return pd.DataFrame(rows).set_index("optimizer")


def table6_energy(trials: pd.DataFrame, board_power_w: float, carbon_kg_per_kwh: float) -> pd.DataFrame:
    """Table VI: energy in kWh and CO2 in kg, per optimizer and in total.

    Trials that recorded the GPU's energy counter (energy_j, already apportioned by GPU share) use
    it; the others are estimated as board power x runtime x GPU share.
    """
    t = trials[trials["runtime_s"].notna()].copy()
    share = t["gpu_share"].astype(float).clip(upper=1.0) if "gpu_share" in t else 1.0
    recorded = t["energy_j"].astype(float) if "energy_j" in t else pd.Series(np.nan, index=t.index)
    estimate = t["runtime_s"].astype(float) * board_power_w * share
    t["measured"] = recorded.notna()
    t["joules"] = recorded.where(t["measured"], estimate)
    rows = []
    for name, group in list(t.groupby("optimizer")) + [("all", t)]:
        kwh = group["joules"].astype(float).sum() / 3.6e6
        rows.append({"optimizer": name, "trials": len(group), "measured": int(group["measured"].sum()),
                     "kwh": kwh, "co2_kg": kwh * carbon_kg_per_kwh})
    return pd.DataFrame(rows).set_index("optimizer")


def mode_tests(done: pd.DataFrame) -> pd.DataFrame:
    """Welch's t-test (means) and Brown-Forsythe (Levene, median-centred: spreads) between the modes."""
    rows = []
    for optimizer, seed, det, nondet in _configs(done):
        row = {"optimizer": optimizer, "seed": seed, "welch_t": np.nan, "welch_p": np.nan, "bf_w": np.nan, "bf_p": np.nan}
        if len(det) >= 2 and len(nondet) >= 2:
            with np.errstate(all="ignore"):
                w = stats.ttest_ind(det, nondet, equal_var=False)
                row.update(welch_t=float(w.statistic), welch_p=float(w.pvalue))
                if np.ptp(np.concatenate([det, nondet])) > 0:
                    b = stats.levene(det, nondet, center="median")
                    row.update(bf_w=float(b.statistic), bf_p=float(b.pvalue))
        rows.append(row)
    return pd.DataFrame(rows).set_index(CONFIG)


def bootstrap_intervals(done: pd.DataFrame, confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Percentile bootstrap intervals for the mean and std of each configuration's non-deterministic scores."""
    rows = []
    rng = np.random.default_rng(seed)
    for optimizer, seed_, _, nondet in _configs(done):
        row = {"optimizer": optimizer, "seed": seed_, "n": len(nondet), "mean_pct": _mean(nondet),
               "std_pts": nondet.std(ddof=1) if len(nondet) > 1 else np.nan}
        if len(nondet) >= 3:
            for name, fn in (("mean", np.mean), ("std", lambda x, axis: np.std(x, ddof=1, axis=axis))):
                res = stats.bootstrap((nondet,), fn, confidence_level=confidence, n_resamples=resamples,
                                      method="percentile", random_state=rng)
                row[f"{name}_lo"], row[f"{name}_hi"] = res.confidence_interval
        rows.append(row)
    return pd.DataFrame(rows).set_index(CONFIG)


def variance_share(done: pd.DataFrame) -> pd.DataFrame:
    """How much of the non-deterministic runs' variance is the seed and how much is CUDA noise.

    One-way random-effects ANOVA over seeds: within-seed variance is CUDA noise (repeats differ in
    nothing else); between-seed variance is what changing the seed adds on top.
    """
    rows = []
    for optimizer, group in done[done["mode"] == NONDET].groupby("optimizer"):
        scores = [g["score"].to_numpy() for _, g in group.groupby("seed")]
        scores = [s for s in scores if len(s) >= 1]
        k, n = len(scores), sum(len(s) for s in scores)
        row = {"optimizer": optimizer, "seeds": k, "runs": n, "var_seed": np.nan, "var_cuda": np.nan, "share_seed": np.nan, "share_cuda": np.nan}
        if k >= 2 and n > k:
            grand = np.concatenate(scores).mean()
            ms_between = sum(len(s) * (s.mean() - grand) ** 2 for s in scores) / (k - 1)
            ms_within = sum(((s - s.mean()) ** 2).sum() for s in scores) / (n - k)
            n0 = (n - sum(len(s) ** 2 for s in scores) / n) / (k - 1)  # effective group size
            var_seed = max(0.0, (ms_between - ms_within) / n0)
            total = var_seed + ms_within
            row.update(var_seed=var_seed, var_cuda=ms_within,
                       share_seed=var_seed / total if total > 0 else np.nan, share_cuda=ms_within / total if total > 0 else np.nan)
        rows.append(row)
    return pd.DataFrame(rows).set_index("optimizer")


def integrity(trials: pd.DataFrame) -> pd.DataFrame:
    """Everything that breaks the determinism contract; empty when it holds.

    Deterministic repeats of a configuration must share one weights_sha256; every repeat of a
    configuration, both modes, must share init_sha256 and data_sha256.
    """
    problems = []
    done = trials[trials["status"] == "finished"]
    for (optimizer, seed), group in done.groupby(CONFIG, sort=True):
        det = group[group["mode"] == DET]
        if det["weights_sha256"].nunique() > 1:
            problems.append({"optimizer": optimizer, "seed": seed, "check": "deterministic repeats share weights_sha256",
                             "detail": f"{det['weights_sha256'].nunique()} different digests over {len(det)} repeats"})
        for key in ("init_sha256", "data_sha256"):
            if group[key].nunique() > 1:
                problems.append({"optimizer": optimizer, "seed": seed, "check": f"all repeats share {key}",
                                 "detail": f"{group[key].nunique()} different digests over {len(group)} repeats"})
        if "nondeterministic_ops" in det and det["nondeterministic_ops"].fillna("[]").ne("[]").any():
            problems.append({"optimizer": optimizer, "seed": seed, "check": "deterministic trials ran only deterministic ops",
                             "detail": "--det-warn-only let non-deterministic ops run: " + str(det["nondeterministic_ops"].dropna().iloc[0])[:200]})
    return pd.DataFrame(problems, columns=["optimizer", "seed", "check", "detail"])


def repeats_needed(delta: float, sd: float, alpha: float = 0.05, power: float = 0.8, max_n: int = 100_000) -> float:
    """Smallest number of non-deterministic repeats for a two-sided one-sample t-test at `alpha` to
    detect a true shift of `delta` (same unit as sd) with probability `power`."""
    if not sd > 0:
        return np.nan
    d = abs(delta) / sd
    for n in range(2, max_n + 1):
        df = n - 1
        crit = stats.t.ppf(1 - alpha / 2, df)
        nc = d * np.sqrt(n)
        achieved = stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc)
        if achieved >= power:
            return float(n)
    return np.inf


def power_table(done: pd.DataFrame, deltas_pts: tuple[float, ...], alpha: float = 0.05, power: float = 0.8) -> pd.DataFrame:
    """Repeats needed to detect each shift (in points), from the pooled within-configuration std."""
    rows = []
    for optimizer, group in done[done["mode"] == NONDET].groupby("optimizer"):
        dev = group["score"] - group.groupby("seed")["score"].transform("mean")
        dof = len(group) - group["seed"].nunique()
        sd = float(np.sqrt((dev ** 2).sum() / dof)) if dof > 0 else np.nan
        rows.append({"optimizer": optimizer, "pooled_std_pts": sd,
                     **{f"n_for_{d:g}pt": repeats_needed(d, sd, alpha, power) for d in deltas_pts}})
    return pd.DataFrame(rows).set_index("optimizer")
