"""Where the noise comes from: the paper's non-deterministic mode against the two modes that each
keep one of its sources (autotuner-only, kernels-only; see trainables.determinism), and what each
mode costs. A study without those modes gives empty tables and no source lines.

share = var(source mode) / var(paper mode): 1 means that source alone reproduces all the paper's
noise, 0 that it adds none. Its interval is the F interval of a ratio of two normal variances. If
the two sources were independent and added, their shares would sum to about 1 ("adds up").
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sp

from analysis.cells import DET, PAPER_NOISY, noisy_modes
from analysis.stats import distinct_per_config, pooled_variance

AUTOTUNER, KERNELS = "autotuner-only", "kernels-only"
SOURCES = (AUTOTUNER, KERNELS)


def ratio_interval(
    v_num: float, df_num: float, v_den: float, df_den: float, confidence: float = 0.95
) -> tuple[float, float]:
    """Interval for sigma_num^2 / sigma_den^2 from two sample variances of normal data."""
    if not (df_num > 0 and df_den > 0 and v_den > 0) or np.isnan(v_num):
        return np.nan, np.nan
    ratio, tail = v_num / v_den, (1 - confidence) / 2
    return float(ratio / sp.f.ppf(1 - tail, df_num, df_den)), float(ratio / sp.f.ppf(tail, df_num, df_den))


def _row(by_mode: dict[str, pd.DataFrame], confidence: float) -> dict[str, object]:
    paper_var, paper_df = pooled_variance(by_mode[PAPER_NOISY]) if PAPER_NOISY in by_mode else (np.nan, 0)
    row: dict[str, object] = {"paper_var": paper_var, "paper_df": paper_df}
    shares, parts = {}, []
    for mode in SOURCES:
        key = mode.split("-")[0]
        var, df = pooled_variance(by_mode[mode]) if mode in by_mode else (np.nan, 0)
        share = var / paper_var if paper_var > 0 else np.nan
        lo, hi = ratio_interval(var, df, paper_var, paper_df, confidence)
        row.update(
            {
                f"{key}_n_distinct": distinct_per_config(by_mode[mode]) if mode in by_mode else 0,
                f"{key}_var": var,
                f"{key}_share": share,
                f"{key}_share_lo": lo,
                f"{key}_share_hi": hi,
            }
        )
        shares[mode] = share
        parts.append((var, df))
    total = sum(v for v, _ in parts)
    # why: Satterthwaite's df for a sum of two variance estimates
    denom = sum(v**2 / d for v, d in parts if d > 0)
    df_sum = total**2 / denom if denom > 0 else np.nan
    lo, hi = ratio_interval(total, df_sum, paper_var, paper_df, confidence) if np.isfinite(df_sum) else (np.nan, np.nan)
    row.update(
        sum_share=total / paper_var if paper_var > 0 else np.nan,
        sum_share_lo=lo,
        sum_share_hi=hi,
        adds_up=(lo <= 1 <= hi) if np.isfinite(lo) else pd.NA,
    )
    row["note"] = (
        "the paper's mode showed no variation: no share"
        if paper_var == 0
        else "needs 2 runs of the paper's mode"
        if not paper_df
        else ""
    )
    return row


COLUMNS = [
    "paper_var",
    "paper_df",
    *[f"{m.split('-')[0]}_{c}" for m in SOURCES for c in ("n_distinct", "var", "share", "share_lo", "share_hi")],
    "sum_share",
    "sum_share_lo",
    "sum_share_hi",
    "adds_up",
    "note",
]


def sources(done: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per configuration: how much of the paper mode's variance each source alone reproduces."""
    if not set(SOURCES) & set(done["mode"]):
        return pd.DataFrame(columns=["optimizer", "seed", *COLUMNS])
    rows = []
    for (optimizer, seed), group in done.groupby(["optimizer", "seed"], sort=True):
        by_mode = {m: g for m, g in group.groupby("mode") if m != DET}
        rows.append({"optimizer": optimizer, "seed": seed, **_row(by_mode, confidence)})
    return pd.DataFrame(rows, columns=["optimizer", "seed", *COLUMNS])


def sources_pooled(done: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """The same per optimizer, each mode's variance pooled within seeds over every seed."""
    if not set(SOURCES) & set(done["mode"]):
        return pd.DataFrame(columns=["optimizer", *COLUMNS])
    rows = []
    for optimizer, group in done.groupby("optimizer", sort=True):
        by_mode = {m: g for m, g in group.groupby("mode") if m != DET}
        rows.append({"optimizer": optimizer, **_row(by_mode, confidence)})
    return pd.DataFrame(rows, columns=["optimizer", *COLUMNS])


def mode_cost(done: pd.DataFrame, epochs: pd.DataFrame) -> pd.DataFrame:
    """Per optimizer and mode: minutes per trial, seconds per epoch after the first (the first
    holds cuDNN's autotuning where benchmark is on), both against deterministic, and whether every
    configuration's repeats of the mode ended bit-identical."""
    rows = []
    steady = epochs[epochs["epoch"] > 1] if "epoch_time_s" in epochs else epochs.iloc[:0]
    per_trial = steady.groupby("trial")["epoch_time_s"].median() if len(steady) else pd.Series(dtype=float)
    for optimizer, group in done.groupby("optimizer", sort=True):
        base = {}
        for mode in (DET, *noisy_modes(done)):
            runs = group[group["mode"] == mode]
            if runs.empty:
                continue
            repeated = runs.groupby("seed").filter(lambda g: len(g) > 1)
            reproducible = (
                bool((repeated.groupby("seed")["weights_sha256"].nunique() == 1).all())
                if len(repeated)
                else True
                if mode == DET
                else pd.NA
            )  # why: det by contract; integrity checks D >= 2
            trial_min = float(pd.to_numeric(runs["runtime_s"], errors="coerce").mean() / 60)
            epoch_s = float(per_trial.reindex(runs["trial"]).median()) if len(per_trial) else np.nan
            if mode == DET:
                base = {"trial_min": trial_min, "epoch_s": epoch_s}
            rows.append(
                {
                    "optimizer": optimizer,
                    "mode": mode,
                    "trials": len(runs),
                    "reproducible": reproducible,
                    "trial_min": trial_min,
                    "trial_vs_det_pct": (trial_min / base.get("trial_min", np.nan) - 1) * 100,
                    "epoch_s": epoch_s,
                    "epoch_vs_det_pct": (epoch_s / base.get("epoch_s", np.nan) - 1) * 100,
                    "note": "" if np.isfinite(epoch_s) else "one epoch per trial: no epoch after the first to time",
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "optimizer",
            "mode",
            "trials",
            "reproducible",
            "trial_min",
            "trial_vs_det_pct",
            "epoch_s",
            "epoch_vs_det_pct",
            "note",
        ],
    )


def _where(r) -> str:  # noqa: ANN001 (a sources_pooled row)
    """Which source the paper mode's noise comes from, in words."""
    if r.paper_var == 0:
        return "the paper's mode was bit-reproducible here: no noise to attribute"
    if pd.isna(r.autotuner_share) or pd.isna(r.kernels_share):
        return "sources not separable here (" + (r.note or "a source mode is missing or has < 2 runs per seed") + ")"
    auto = f"autotuner-only gives {_pct(r.autotuner_share)} ({_pct(r.autotuner_share_lo)}-{_pct(r.autotuner_share_hi)})"
    kern = f"kernels-only {_pct(r.kernels_share)} ({_pct(r.kernels_share_lo)}-{_pct(r.kernels_share_hi)})"
    if r.kernels_share == 0 and r.autotuner_share > 0:
        return f"all the noise comes from the autotuner: kernels-only runs were bit-identical, {auto} of the paper mode's variance"
    if r.autotuner_share == 0 and r.kernels_share > 0:
        return f"all the noise comes from the kernels: autotuner-only runs were bit-identical, {kern} of the paper mode's variance"
    if r.autotuner_share == 0 and r.kernels_share == 0:
        return "neither source alone varied, though the paper's mode did: the two act only together"
    total = f"together {_pct(r.sum_share)} ({_pct(r.sum_share_lo)}-{_pct(r.sum_share_hi)})"
    if r.sum_share_lo > 1:
        total += ": more than the paper's own noise, so each source alone already produces the full spread"
    return f"each source alone makes runs differ: {auto} of the paper mode's variance, {kern}; {total}"


def source_lines(pooled: pd.DataFrame, cost: pd.DataFrame) -> list[str]:
    """Per optimizer: where the noise comes from, and the cheapest mode whose repeats were identical.
    Cost is minutes per trial (what a study pays, cuDNN's autotuning included); in a packed study
    each mode shared the GPU with others, so small differences are not the mode's."""
    lines = []
    for r in pooled.itertuples():
        rows = cost[(cost["optimizer"] == r.optimizer) & (cost["reproducible"] == True)]  # noqa: E712 (pd.NA)
        others = rows[rows["mode"] != DET].sort_values("trial_min")
        if others.empty:
            cheapest = "cheapest reproducible mode: none but deterministic"
        else:
            best = others.iloc[0]
            delta = best["trial_vs_det_pct"]
            cheapest = f"reproducible besides deterministic: {best['mode']}, " + (
                f"{abs(delta):.0f}% {'faster' if delta < 0 else 'slower'} per trial"
                if abs(delta) >= 2
                else "within 2% of its time per trial"
            )
        lines.append(f"{r.optimizer}: {_where(r)}; {cheapest}")
    return lines


def _pct(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:.0%}"
