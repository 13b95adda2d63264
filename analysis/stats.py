"""The reference study's tables and the statistics that answer its questions validly, as small
pure functions over the scored trials (analysis.cells.finished). Scores are in percent, as the
paper shows them; differences are det - noisy, in percentage points (`_pts`); a relative
difference is named `_rel_pct`. Every table is flat, its rows keyed by optimizer, seed and mode in
that order, and a `note` column says why a cell is empty.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import inference
from analysis.cells import CELL, CONFIG, DET, Cell, cell_key, cells, noisy_modes


def _frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns)


def _notes(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _spread_note(cell: Cell, needs_det: bool = True) -> str:
    """Why a spread (or, needs_det, a test against det) of this cell is empty, or ""."""
    if needs_det and np.isnan(cell.det) and cell.n:
        return "no deterministic run finished"
    if cell.n == 0:
        return "no run of this mode finished"
    if cell.n == 1:
        return "one run: no spread"
    if cell.n_distinct == 1:
        return f"no variation among {cell.n} runs"
    return ""


def table1_extremes(done: pd.DataFrame) -> pd.DataFrame:
    """Table I: best and worst run per optimizer over every run, seeds and CUDA noise together."""
    rows = []
    for optimizer, group in done.groupby("optimizer", sort=True):
        det = group[group["mode"] == DET]
        rows.append(
            {
                "optimizer": optimizer,
                "max_pct": group["score"].max(),
                "min_pct": group["score"].min(),
                "configs": group["seed"].nunique(),
                "det_outcomes": det.groupby("seed")["weights_sha256"].nunique().sum(),
                "noisy_runs": int((group["mode"] != DET).sum()),
                "det_runs": len(det),
            }
        )
    return _frame(rows, ["optimizer", "max_pct", "min_pct", "configs", "det_outcomes", "noisy_runs", "det_runs"])


def configurations(done: pd.DataFrame) -> pd.DataFrame:
    """Table II: per configuration and noisy mode, the deterministic score, the noisy runs' mean,
    det - mean and the largest |run - det| (points): how far one unlucky run lands from the
    reproducible one. n_distinct counts distinct weight digests; n_equal_det the runs that ended
    bit-identical to the deterministic run."""
    rows = []
    for c in cells(done):
        rows.append(
            {
                **cell_key(c),
                "det_pct": c.det,
                "n": c.n,
                "n_distinct": c.n_distinct,
                "n_equal_det": c.n_equal_det,
                "mean_pct": c.mean,
                "diff_pts": c.diff,
                "max_dev_pts": float(np.abs(c.scores - c.det).max()) if c.n else np.nan,
                "note": _notes(
                    "" if c.n else "no run of this mode finished",
                    "no deterministic run finished" if np.isnan(c.det) else "",
                ),
            }
        )
    return _frame(
        rows, [*CELL, "det_pct", "n", "n_distinct", "n_equal_det", "mean_pct", "diff_pts", "max_dev_pts", "note"]
    )


def spread(done: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Table III: the noise one reported number carries: the noisy runs' mean with its t interval,
    std with its chi-square interval, and range, in points."""
    rows = []
    for c in cells(done):
        mean_lo, mean_hi = inference.mean_interval(c.scores, confidence)
        std_lo, std_hi = inference.sd_interval(c.scores, confidence)
        rows.append(
            {
                **cell_key(c),
                "n": c.n,
                "n_distinct": c.n_distinct,
                "mean_pct": c.mean,
                "mean_lo": mean_lo,
                "mean_hi": mean_hi,
                "std_pts": float(c.scores.std(ddof=1)) if c.n > 1 else np.nan,
                "std_lo": std_lo,
                "std_hi": std_hi,
                "range_pts": float(np.ptp(c.scores)) if c.n else np.nan,
                "note": _notes(_spread_note(c, needs_det=False), c.copies_note),
            }
        )
    return _frame(
        rows,
        [
            *CELL,
            "n",
            "n_distinct",
            "mean_pct",
            "mean_lo",
            "mean_hi",
            "std_pts",
            "std_lo",
            "std_hi",
            "range_pts",
            "note",
        ],
    )


def runtime(done: pd.DataFrame) -> pd.DataFrame:
    """Table IV: minutes per trial, deterministic vs each noisy mode's mean; diff_min = det - noisy,
    positive when determinism costs time."""
    minutes = done.assign(minutes=pd.to_numeric(done["runtime_s"], errors="coerce") / 60)
    mean = minutes.groupby(["optimizer", "seed", "mode"])["minutes"].mean()
    rows = []
    for mode in noisy_modes(done):
        for optimizer, seed in sorted({(o, s) for o, s, _ in mean.index}):
            det, noisy = mean.get((optimizer, seed, DET), np.nan), mean.get((optimizer, seed, mode), np.nan)
            note = _notes(
                "no deterministic run finished" if np.isnan(det) else "",
                "no run of this mode finished" if np.isnan(noisy) else "",
            )
            rows.append(
                {
                    "optimizer": optimizer,
                    "seed": seed,
                    "mode": mode,
                    "det_min": det,
                    "mode_min": noisy,
                    "diff_min": det - noisy,
                    "diff_rel_pct": (det - noisy) / noisy * 100,
                    "note": note,
                }
            )
    return _frame(rows, [*CELL, "det_min", "mode_min", "diff_min", "diff_rel_pct", "note"])


def typicality(done: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Is the deterministic run an ordinary draw from the noisy runs' distribution? The prediction
    test on every run and on the distinct outcomes, det's rank among the distinct outcomes with its
    exact p, and Holm over the family of every tested cell of the mode."""
    rows = []
    for c in cells(done):
        t, p = inference.prediction_test(c.det, c.scores)
        _, p_distinct = inference.prediction_test(c.det, c.distinct)
        rank = inference.rank_test(c.det, c.distinct)
        rows.append(
            {
                **cell_key(c),
                "det_pct": c.det,
                "n": c.n,
                "n_distinct": c.n_distinct,
                "t": t,
                "p": p,
                "p_distinct": p_distinct,
                "below": rank.below,
                "ties": rank.ties,
                "above": rank.above,
                "p_rank": rank.p,
                "p_rank_min": rank.p_min,
                "note": _notes(_spread_note(c), c.copies_note),
            }
        )
    table = _frame(
        rows,
        [
            *CELL,
            "det_pct",
            "n",
            "n_distinct",
            "t",
            "p",
            "p_distinct",
            "below",
            "ties",
            "above",
            "p_rank",
            "p_rank_min",
            "note",
        ],
    )
    table.insert(
        table.columns.get_loc("p_distinct") + 1, "p_holm", table.groupby("mode")["p"].transform(inference.holm)
    )
    table.insert(table.columns.get_loc("p_holm") + 1, "atypical", table["p_holm"] < alpha)
    return table


def paper_ttests(done: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """The reference study's Table V test per cell: one-sample t-test of the noisy runs against the
    deterministic score. It asks whether their mean equals det exactly, which more repeats will
    always find false; typicality and mode_shift ask the questions a reader means. Beside it: the
    same test on the distinct outcomes and an exact sign test on them. Holm's family: every tested
    cell of the mode, all optimizers."""
    rows = []
    for c in cells(done):
        t, p = inference.one_sample_t(c.det, c.scores)
        _, p_distinct = inference.one_sample_t(c.det, c.distinct)
        rows.append(
            {
                **cell_key(c),
                "det_pct": c.det,
                "mean_pct": c.mean,
                "diff_pts": c.diff,
                "diff_rel_pct": c.diff / c.det * 100,
                "n": c.n,
                "n_distinct": c.n_distinct,
                "t": t,
                "p": p,
                "p_distinct": p_distinct,
                "p_sign": inference.sign_test(c.det, c.distinct),
                "note": _notes(_spread_note(c), c.copies_note),
            }
        )
    table = _frame(
        rows,
        [
            *CELL,
            "det_pct",
            "mean_pct",
            "diff_pts",
            "diff_rel_pct",
            "n",
            "n_distinct",
            "t",
            "p",
            "p_distinct",
            "p_sign",
            "note",
        ],
    )
    table["p_holm"] = table.groupby("mode")["p"].transform(inference.holm)
    table["p_holm_distinct"] = table.groupby("mode")["p_distinct"].transform(inference.holm)
    table["significant_holm"] = table["p_holm"] < alpha
    return table


def table5_summary(tests: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Table V: per mode and optimizer, the configurations the paper's test could be run on and how
    many it finds significant after Holm (on every run, and on distinct outcomes), then unadjusted;
    the mean |det - mean| over the tested configurations, in points and in the paper's relative %."""
    rows = []
    for (mode, optimizer), g in tests.groupby(["mode", "optimizer"], sort=False):
        tested = g[g["p"].notna()]
        significant = tested[tested["p"] < alpha]
        rows.append(
            {
                "optimizer": optimizer,
                "mode": mode,
                "configs": len(g),
                "tested": len(tested),
                "sig_holm": int((tested["p_holm"] < alpha).sum()),
                "sig_holm_distinct": int((tested["p_holm_distinct"] < alpha).sum()),
                "sig_unadjusted": len(significant),
                "mean_abs_diff_pts": tested["diff_pts"].abs().mean(),
                "mean_abs_diff_rel_pct": tested["diff_rel_pct"].abs().mean(),
                "mean_abs_diff_rel_pct_sig": significant["diff_rel_pct"].abs().mean(),
                "note": _notes(
                    "" if len(tested) else "no configuration could be tested (see the per-configuration notes)",
                    "" if len(significant) or not len(tested) else "none significant unadjusted: no _sig mean",
                ),
            }
        )
    return _frame(
        rows,
        [
            "optimizer",
            "mode",
            "configs",
            "tested",
            "sig_holm",
            "sig_holm_distinct",
            "sig_unadjusted",
            "mean_abs_diff_pts",
            "mean_abs_diff_rel_pct",
            "mean_abs_diff_rel_pct_sig",
            "note",
        ],
    )


def mode_shift(done: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Does the mode shift the score? Per optimizer, each seed gives d = det - mean(noisy runs); the
    paired t-test over seeds and an exact sign-flip test ask whether the mean d is zero."""
    rows = []
    by_group: dict[tuple[str, str], list[float]] = {}
    for c in cells(done):
        if c.n and not np.isnan(c.det):
            by_group.setdefault((c.optimizer, c.mode), []).append(c.diff)
        else:
            by_group.setdefault((c.optimizer, c.mode), [])
    for (optimizer, mode), diffs in sorted(
        by_group.items(), key=lambda kv: (noisy_modes(done).index(kv[0][1]), kv[0][0])
    ):
        s = inference.seed_shift(np.array(diffs), confidence)
        note = (
            "needs >= 2 seeds"
            if s.seeds < 2
            else "every seed's difference is equal: no t-test"
            if np.isnan(s.p)
            else ""
        )
        rows.append(
            {
                "optimizer": optimizer,
                "mode": mode,
                "seeds": s.seeds,
                "shift_pts": s.mean,
                "shift_lo": s.lo,
                "shift_hi": s.hi,
                "t": s.t,
                "p": s.p,
                "p_exact": s.p_exact,
                "p_exact_min": s.p_min,
                "note": note,
            }
        )
    return _frame(
        rows,
        ["optimizer", "mode", "seeds", "shift_pts", "shift_lo", "shift_hi", "t", "p", "p_exact", "p_exact_min", "note"],
    )


def seed_vs_cuda(done: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """How much of the noisy runs' variance is CUDA noise (within a seed) and how much the seed
    adds, per optimizer and mode, with intervals."""
    rows = []
    for mode in noisy_modes(done):
        for optimizer, group in done[done["mode"] == mode].groupby("optimizer", sort=True):
            parts = [g["score"].to_numpy(dtype=float) for _, g in group.groupby("seed", sort=True)]
            r = inference.random_effects(parts, confidence)
            notes = [
                "needs >= 2 seeds" if r.seeds < 2 else "",
                "no seed has 2 runs" if r.runs - r.seeds < 1 else "",
                f"var_seed estimate {r.var_seed_raw:.3g} < 0, set to 0" if r.var_seed_raw < 0 else "",
                "no variation within any seed" if r.ms_within == 0 else "",
            ]
            rows.append(
                {
                    "optimizer": optimizer,
                    "mode": mode,
                    "seeds": r.seeds,
                    "runs": r.runs,
                    "n_distinct": distinct_per_config(group),
                    "var_seed": r.var_seed,
                    "var_cuda": r.var_cuda,
                    "var_cuda_lo": r.var_cuda_lo,
                    "var_cuda_hi": r.var_cuda_hi,
                    "share_cuda": r.share_cuda,
                    "share_cuda_lo": r.share_cuda_lo,
                    "share_cuda_hi": r.share_cuda_hi,
                    "note": _notes(*notes),
                }
            )
    return _frame(
        rows,
        [
            "optimizer",
            "mode",
            "seeds",
            "runs",
            "n_distinct",
            "var_seed",
            "var_cuda",
            "var_cuda_lo",
            "var_cuda_hi",
            "share_cuda",
            "share_cuda_lo",
            "share_cuda_hi",
            "note",
        ],
    )


def distinct_per_config(runs: pd.DataFrame) -> int:
    """Distinct outcomes summed over configurations: a digest counts once within its configuration."""
    return int(runs.groupby("seed")["weights_sha256"].nunique().sum())


def pooled_variance(group: pd.DataFrame) -> tuple[float, int]:
    """The within-seed variance of a mode's runs, pooled over seeds, and its degrees of freedom (runs - seeds)."""
    dev = group["score"] - group.groupby("seed")["score"].transform("mean")
    dof = len(group) - group["seed"].nunique()
    return (float((dev**2).sum() / dof) if dof > 0 else np.nan), dof


def pooled_sd(group: pd.DataFrame) -> tuple[float, int]:
    """The within-configuration std pooled over seeds, and its degrees of freedom."""
    variance, dof = pooled_variance(group)
    return float(np.sqrt(variance)), dof


def power_table(
    done: pd.DataFrame, deltas_pts: tuple[float, ...], alpha: float = 0.05, target: float = 0.8
) -> pd.DataFrame:
    """Repeats the paper's one-sample t-test needs to detect each shift (points) with probability
    `target`, from the pooled within-configuration std. 2 is the floor: a t-test needs two runs."""
    rows = []
    for mode in noisy_modes(done):
        for optimizer, group in done[done["mode"] == mode].groupby("optimizer", sort=True):
            sd, dof = pooled_sd(group)
            needed = {f"n_for_{d:g}pt": inference.repeats_needed(d, sd, alpha, target) for d in deltas_pts}
            note = "needs 2 runs of one seed" if dof < 1 else "no variation observed" if not sd > 0 else ""
            rows.append({"optimizer": optimizer, "mode": mode, "pooled_std_pts": sd, "df": dof, **needed, "note": note})
    table = _frame(rows, ["optimizer", "mode", "pooled_std_pts", "df", *(f"n_for_{d:g}pt" for d in deltas_pts), "note"])
    for d in deltas_pts:
        table[f"n_for_{d:g}pt"] = table[f"n_for_{d:g}pt"].astype("Int64")
    return table


def table6_energy(trials: pd.DataFrame, board_power_w: float, carbon_kg_per_kwh: float) -> pd.DataFrame:
    """Table VI: energy in kWh and CO2 in kg, per optimizer and in total.

    Trials that recorded the GPU's energy counter (energy_j, already apportioned by GPU share) use
    it; the others are estimated as board power x runtime x GPU share.
    """
    t = trials[pd.to_numeric(trials["runtime_s"], errors="coerce").notna()].copy()
    share = t["gpu_share"].astype(float).clip(upper=1.0) if "gpu_share" in t else 1.0
    recorded = pd.to_numeric(t["energy_j"], errors="coerce") if "energy_j" in t else pd.Series(np.nan, index=t.index)
    estimate = t["runtime_s"].astype(float) * board_power_w * share
    t["measured"] = recorded.notna()
    t["joules"] = recorded.where(t["measured"], estimate)
    rows = []
    for name, group in list(t.groupby("optimizer")) + [("all", t)]:
        kwh = group["joules"].astype(float).sum() / 3.6e6
        rows.append(
            {
                "optimizer": name,
                "trials": len(group),
                "measured": int(group["measured"].sum()),
                "kwh": kwh,
                "co2_kg": kwh * carbon_kg_per_kwh,
            }
        )
    return _frame(rows, ["optimizer", "trials", "measured", "kwh", "co2_kg"])


def integrity(trials: pd.DataFrame, nan_scored: tuple[str, ...] = ()) -> pd.DataFrame:
    """Everything that breaks the determinism contract or voids a score; empty when all holds.

    Deterministic repeats of a configuration must share one weights_sha256; every repeat of a
    configuration, every mode, must share init_sha256 and data_sha256; a finished trial's score
    must be a number.
    """
    problems = []
    done = trials[trials["status"] == "finished"]
    for (optimizer, seed), group in done.groupby(CONFIG, sort=True):
        det = group[group["mode"] == DET]
        if det["weights_sha256"].nunique() > 1:
            problems.append(
                {
                    "optimizer": optimizer,
                    "seed": seed,
                    "check": "deterministic repeats share weights_sha256",
                    "detail": f"{det['weights_sha256'].nunique()} different digests over {len(det)} repeats",
                }
            )
        for key in ("init_sha256", "data_sha256"):
            if group[key].nunique() > 1:
                problems.append(
                    {
                        "optimizer": optimizer,
                        "seed": seed,
                        "check": f"all repeats share {key}",
                        "detail": f"{group[key].nunique()} different digests over {len(group)} repeats",
                    }
                )
        if "nondeterministic_ops" in det and det["nondeterministic_ops"].fillna("[]").ne("[]").any():
            problems.append(
                {
                    "optimizer": optimizer,
                    "seed": seed,
                    "check": "deterministic trials ran only deterministic ops",
                    "detail": "--det-warn-only let non-deterministic ops run: "
                    + str(det["nondeterministic_ops"].dropna().iloc[0])[:200],
                }
            )
    for name in nan_scored:
        row = done[done["trial"] == name].iloc[0]
        problems.append(
            {
                "optimizer": row["optimizer"],
                "seed": row["seed"],
                "check": "every finished trial has a score",
                "detail": f"{name}: NaN, excluded",
            }
        )
    return _frame(problems, ["optimizer", "seed", "check", "detail"])


def outcomes(done: pd.DataFrame) -> pd.DataFrame:
    """Per noisy mode: how many runs, how many distinct outcomes, how many equal their
    configuration's deterministic digest; the facts that decide what the tests can mean."""
    rows, every_cell = [], list(cells(done))
    for mode in noisy_modes(done):
        mode_cells = [c for c in every_cell if c.mode == mode]
        rows.append(
            {
                "mode": mode,
                "configs": sum(1 for c in mode_cells if c.n),
                "runs": sum(c.n for c in mode_cells),
                "distinct": sum(c.n_distinct for c in mode_cells),
                "equal_det": sum(c.n_equal_det for c in mode_cells),
            }
        )
    return _frame(rows, ["mode", "configs", "runs", "distinct", "equal_det"])
