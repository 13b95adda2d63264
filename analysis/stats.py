"""The reference study's tables and how large the noise is, as small pure functions over the
scored trials (analysis.cells.finished); analysis.questions holds the tables that answer the
questions a reader means. Scores are in percent, as the paper shows them; differences are det -
noisy, in percentage points (`_pts`); a relative difference is named `_rel_pct`. Every table is
flat, its rows keyed by optimizer, seed and mode in that order, and a `note` column says why a cell
is empty. Runs that all agree have no spread, exactly (inference.sd): never round-off.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import inference
from analysis.cells import CELL, CONFIG, DET, Cell, broken_inputs, cell_key, cells, noisy_modes


def _frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns)


def _notes(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def spread_note(cell: Cell, needs_det: bool = True) -> str:
    """Why a spread (or, needs_det, a test against det) of this cell is empty, or ""."""
    if needs_det and cell.det_missing and cell.n:
        return cell.det_missing
    if cell.n == 0:
        return "no run of this mode finished"
    if cell.n == 1:
        return "one run: no spread"
    if not inference.varies(cell.scores):
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


def configurations(done: pd.DataFrame, nan_configs: frozenset = frozenset()) -> pd.DataFrame:
    """Table II: per configuration and noisy mode, the deterministic score, the noisy runs' mean,
    det - mean and the largest |run - det| (points): how far one unlucky run lands from the
    reproducible one. n_distinct counts distinct weight digests, modal_share the share of runs on
    the most frequent one, n_equal_det the runs that ended bit-identical to the deterministic run."""
    rows = []
    for c in cells(done, nan_configs):
        rows.append(
            {
                **cell_key(c),
                "det_pct": c.det,
                "n": c.n,
                "n_distinct": c.n_distinct,
                "modal_share": c.modal_share,
                "n_equal_det": c.n_equal_det,
                "mean_pct": c.mean,
                "diff_pts": c.diff,
                "max_dev_pts": float(np.abs(c.scores - c.det).max()) if c.n else np.nan,
                "note": _notes("" if c.n else "no run of this mode finished", c.det_missing),
            }
        )
    return _frame(
        rows,
        [
            *CELL,
            "det_pct",
            "n",
            "n_distinct",
            "modal_share",
            "n_equal_det",
            "mean_pct",
            "diff_pts",
            "max_dev_pts",
            "note",
        ],
    )


def spread(done: pd.DataFrame) -> pd.DataFrame:
    """Table III, as the paper has it: each cell's mean, std and range, in points, described and not
    given intervals: on a few atoms no interval for one configuration's spread holds at 20 runs
    (the best of four covered 89%, bench/RESULTS.md). How large the noise is, with an interval that
    holds, is `noise`, pooled over seeds."""
    rows = []
    for c in cells(done):
        rows.append(
            {
                **cell_key(c),
                "n": c.n,
                "n_distinct": c.n_distinct,
                "modal_share": c.modal_share,
                "mean_pct": c.mean,
                "std_pts": c.sd,
                "range_pts": float(np.ptp(c.scores)) if c.n else np.nan,
                "note": _notes(spread_note(c, needs_det=False), c.copies_note),
            }
        )
    return _frame(rows, [*CELL, "n", "n_distinct", "modal_share", "mean_pct", "std_pts", "range_pts", "note"])


def groups_by_seed(runs: pd.DataFrame) -> list[np.ndarray]:
    """A mode's scores, one array per seed."""
    return [g["score"].to_numpy(dtype=float) for _, g in runs.groupby("seed", sort=True)]


def no_difference(groups: list[np.ndarray], alpha: float) -> str:
    """'0 of N runs scored differently from their configuration's first (...)': what runs that all agree say."""
    others = sum(len(g) - 1 for g in groups)
    bound = inference.none_differ_bound(others, alpha)
    return (
        f"0 of {others} runs scored differently from their configuration's first: a run does with probability "
        f"at most {bound:.2g} ({1 - alpha:.0%})"
    )


def noise(done: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """How much noise one run carries: per optimizer and noisy mode, the within-configuration std
    pooled over seeds, with its grouped-jackknife interval (inference.jackknife_interval: it covers on
    the real studies' lumpy outcomes at 6, 20 and 100 runs per seed), and the median configuration's."""
    rows = []
    alpha = 1 - confidence
    for mode in noisy_modes(done):
        for optimizer, group in done[done["mode"] == mode].groupby("optimizer", sort=True):
            groups = groups_by_seed(group)
            variance, dof = inference.pooled_variance(groups)
            lo = hi = np.nan
            if variance > 0:
                lo, hi = inference.jackknife_interval(groups, inference.pooled_sd, inference.LOG, confidence)
            note = "needs 2 runs of one seed" if dof < 1 else no_difference(groups, alpha) if variance == 0 else ""
            rows.append(
                {
                    "optimizer": optimizer,
                    "mode": mode,
                    "seeds": len(groups),
                    "runs": len(group),
                    "n_distinct": distinct_per_config(group),
                    "sd_pts": float(np.sqrt(variance)) if dof >= 1 else np.nan,
                    "sd_lo": lo,
                    "sd_hi": hi,
                    "dof": inference.distinct_dof(groups) if variance > 0 else np.nan,
                    "median_config_sd_pts": float(np.median([inference.sd(g) for g in groups if len(g) > 1]))
                    if dof >= 1
                    else np.nan,
                    "note": note,
                }
            )
    table = _frame(
        rows,
        [
            "optimizer",
            "mode",
            "seeds",
            "runs",
            "n_distinct",
            "sd_pts",
            "sd_lo",
            "sd_hi",
            "dof",
            "median_config_sd_pts",
            "note",
        ],
    )
    table["dof"] = table["dof"].astype("Int64")
    return table


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


def paper_ttests(done: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """The reference study's Table V test per cell (normal theory): one-sample t-test of the noisy
    runs against the deterministic score. It asks whether their mean equals det exactly, which more
    repeats will always find false; analysis.questions asks what a reader means. Runs that all agree
    are not tested: their mean is then a fact. Holm's family: every tested cell of the mode."""
    rows = []
    for c in cells(done):
        t, p = inference.one_sample_t(c.det, c.scores)
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
                "note": _notes(spread_note(c), c.copies_note),
            }
        )
    table = _frame(
        rows, [*CELL, "det_pct", "mean_pct", "diff_pts", "diff_rel_pct", "n", "n_distinct", "t", "p", "note"]
    )
    table["p_holm"] = table.groupby("mode")["p"].transform(inference.holm)
    table["significant_holm"] = table["p_holm"] < alpha
    return table


def table5_summary(tests: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Table V: per mode and optimizer, the configurations the paper's test could be run on and how
    many it finds significant, after Holm and unadjusted (the paper's count); the mean |det - mean|
    over the tested configurations, in points and in the paper's relative %."""
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
            "sig_unadjusted",
            "mean_abs_diff_pts",
            "mean_abs_diff_rel_pct",
            "mean_abs_diff_rel_pct_sig",
            "note",
        ],
    )


def seed_vs_cuda(done: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """How much of the noisy runs' variance is CUDA noise (within a seed) and how much the seed
    adds, per optimizer and mode; the share's interval holds these seeds fixed (inference.random_effects)."""
    rows = []
    for mode in noisy_modes(done):
        for optimizer, group in done[done["mode"] == mode].groupby("optimizer", sort=True):
            groups = groups_by_seed(group)
            r = inference.random_effects(groups, confidence)
            notes = [
                "needs >= 2 seeds" if r.seeds < 2 else "",
                "no seed has 2 runs" if r.runs - r.seeds < 1 else "",
                no_difference(groups, 1 - confidence) if r.var_cuda == 0 else "",
                f"var_seed estimate {r.var_seed_raw:.3g} < 0, set to 0" if r.var_seed_raw < 0 else "",
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
            "share_cuda",
            "share_cuda_lo",
            "share_cuda_hi",
            "note",
        ],
    )


def distinct_per_config(runs: pd.DataFrame) -> int:
    """Distinct outcomes summed over configurations: a digest counts once within its configuration."""
    return int(runs.groupby("seed")["weights_sha256"].nunique().sum())


def table6_energy(trials: pd.DataFrame, board_power_w: float, carbon_kg_per_kwh: float) -> pd.DataFrame:
    """Table VI: energy in kWh and CO2 in kg, per optimizer and in total.

    Trials that recorded the GPU's energy counter (energy_j, already apportioned by GPU share) use
    it; the others are estimated as board power x runtime x GPU share.
    """
    t = trials[pd.to_numeric(trials["runtime_s"], errors="coerce").notna()].copy()
    share = t["gpu_share"].astype(float).clip(upper=1.0) if "gpu_share" in t else 1.0  # not recorded: a whole GPU
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

    Deterministic repeats of a configuration must share one weights_sha256; every trial of a
    configuration must share the digests its arm keeps fixed, and an arm must move the one it
    varies (cells.broken_inputs); each trial of the grid finished once; a finished trial's score
    must be a number.
    """
    problems = []
    done = trials[trials["status"] == "finished"]
    control = done[(done["mode"] == DET) & (done["arm"] == DET)] if "arm" in done else done[done["mode"] == DET]
    for (optimizer, seed), det in control.groupby(CONFIG, sort=True):
        if det["weights_sha256"].nunique() > 1:
            problems.append(
                {
                    "optimizer": optimizer,
                    "seed": seed,
                    "check": "deterministic repeats share weights_sha256",
                    "detail": f"{det['weights_sha256'].nunique()} different digests over {len(det)} repeats",
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
    problems += broken_inputs(done)
    arm = done["arm"] if "arm" in done else done["mode"]
    for (optimizer, seed, _, _), twice in done.groupby(["optimizer", "seed", arm, "repeat"], sort=True):
        if len(twice) > 1:  # why: two drivers on one study ran its trials twice (issue #32); counted once each
            label = "_".join(sorted(twice["trial"])[0].split("_")[:4])
            problems.append(
                {
                    "optimizer": optimizer,
                    "seed": seed,
                    "check": "each trial of the grid ran once",
                    "detail": f"{label}: {len(twice)} finished trials ({', '.join(sorted(twice['trial']))})",
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
    return _frame(problems, ["optimizer", "seed", "check", "detail"]).sort_values(
        ["optimizer", "seed"], kind="stable", ignore_index=True
    )


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
