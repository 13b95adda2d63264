"""Where the noise comes from: the paper's non-deterministic mode against the two modes that each
keep one of its sources (autotuner-only, kernels-only; see trainables.determinism), and what each
mode costs. A study without those modes gives empty tables and no source lines.

share = var(source mode) / var(paper mode), each pooled within seeds: 1 means that source alone
reproduces all the paper's noise, 0 that it adds none. Its interval is the grouped jackknife's
(inference.variance_ratio). Shares need not add up to 1: in chaotic training one perturbation
alone can produce the full spread. A source mode whose runs never differed reads "0 of N runs
differed", with the largest chance of a difference the data leave open, never a [0%, 0%] interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import inference
from analysis.cells import DET, PAPER_NOISY, noisy_modes
from analysis.stats import distinct_per_config, groups_by_seed

AUTOTUNER, KERNELS = "autotuner-only", "kernels-only"
SOURCES = (AUTOTUNER, KERNELS)


def _row(by_mode: dict[str, pd.DataFrame], confidence: float) -> dict[str, object]:
    paper = groups_by_seed(by_mode[PAPER_NOISY]) if PAPER_NOISY in by_mode else []
    paper_var, paper_df = inference.pooled_variance(paper) if paper else (np.nan, 0)
    row: dict[str, object] = {"paper_var": paper_var, "paper_df": paper_df}
    for mode in SOURCES:
        key = mode.split("-")[0]
        source = groups_by_seed(by_mode[mode]) if mode in by_mode else []
        var, dof = inference.pooled_variance(source) if source else (np.nan, 0)
        share = lo = hi = np.nan
        if var == 0 and paper_var > 0:
            share = 0.0  # why: no run differed; its bound is in the `differ_at_most` column, not a [0, 0] interval
        elif var > 0 and paper_var > 0:
            share, lo, hi = inference.variance_ratio(source, paper, confidence)
        row.update(
            {
                f"{key}_n_distinct": distinct_per_config(by_mode[mode]) if mode in by_mode else 0,
                f"{key}_var": var,
                f"{key}_share": share,
                f"{key}_share_lo": lo,
                f"{key}_share_hi": hi,
                f"{key}_differ_at_most": inference.none_differ_bound(dof, 1 - confidence) if var == 0 else np.nan,
            }
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
    *[
        f"{m.split('-')[0]}_{c}"
        for m in SOURCES
        for c in ("n_distinct", "var", "share", "share_lo", "share_hi", "differ_at_most")
    ],
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
                    "note": ""
                    if np.isfinite(epoch_s)
                    else "no per-epoch results (read from a trials table)"
                    if epochs.empty
                    else "one epoch per trial: no epoch after the first to time",
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


def _source_text(r, key: str, mode: str) -> str:  # noqa: ANN001 (a sources_pooled row)
    """One source mode in words: its share with the interval, or that no run differed."""
    if pd.notna(getattr(r, f"{key}_differ_at_most")):
        return f"{mode} runs never differed (a run differs with probability at most {getattr(r, f'{key}_differ_at_most'):.2g})"
    share = getattr(r, f"{key}_share")
    if pd.isna(share):
        return f"{mode} not measured"
    lo, hi = getattr(r, f"{key}_share_lo"), getattr(r, f"{key}_share_hi")
    return f"{mode} gives {_pct(share)}" + (
        f" ({_pct(lo)}-{_pct(hi)})" if pd.notna(lo) else " (no interval with so few runs)"
    )


def _where(r) -> str:  # noqa: ANN001 (a sources_pooled row)
    """Which source the paper mode's noise comes from, in words."""
    if r.paper_var == 0:
        return "the paper's mode was bit-reproducible here: no noise to attribute"
    if not r.paper_df:
        return "sources not separable here (" + r.note + ")"
    auto, kern = _source_text(r, "autotuner", AUTOTUNER), _source_text(r, "kernels", KERNELS)
    auto_zero, kern_zero = pd.notna(r.autotuner_differ_at_most), pd.notna(r.kernels_differ_at_most)
    if kern_zero and not auto_zero:
        return f"all the noise comes from the autotuner: {kern}; {auto} of the paper mode's variance"
    if auto_zero and not kern_zero:
        return f"all the noise comes from the kernels: {auto}; {kern} of the paper mode's variance"
    if auto_zero and kern_zero:
        return f"neither source alone varied, though the paper's mode did ({auto}; {kern}): the two act only together"
    return f"of the paper mode's variance, {auto}; {kern} (shares need not add up: one source alone can give the full spread)"


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
