"""The questions a reader of a CUDA-randomness study means, each answered by a table that holds for
lumpy outcomes (analysis.inference):

1. Is the deterministic run one of the noisy outcomes? Pooled over configurations first (per
   configuration a rank test of 20 runs cannot reach p < 0.05), then per configuration.
2. Does the mode shift the score? With the seed as the unit, and what the data exclude: the
   interval, an equivalence test against a margin, the smallest shift the study could detect.
3. What would a study need: repeats for question 1, seeds for question 2, per shift size.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import inference
from analysis.cells import CELL, cell_key, cells, noisy_modes
from analysis.stats import groups_by_seed, spread_note

ALL = "all"  # the optimizer column of a row pooled over every optimizer


def _notes(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def det_outcome(done: pd.DataFrame, nan_configs: frozenset = frozenset()) -> pd.DataFrame:
    """Is det an ordinary draw among the noisy runs? Per noisy mode, per optimizer and over all: how
    many configurations place det strictly outside the range of all their runs, against what
    exchangeability allows (each configuration at most 2 / (n + 1), exactly, given its values: a
    Poisson-binomial p), and whether det leans one way (mean centred mid-rank, permutation p within
    configurations). The deterministic mode runs other kernels than the noisy ones, so nothing
    presumes its outcome to be one of theirs; this table says whether the data say it is."""
    rows = []
    for mode in noisy_modes(done):
        mode_cells = [c for c in cells(done, nan_configs) if c.mode == mode]
        by_optimizer = sorted({c.optimizer for c in mode_cells})
        for optimizer in [*by_optimizer, *([ALL] if len(by_optimizer) > 1 else [])]:
            chosen = [c for c in mode_cells if optimizer in (ALL, c.optimizer)]
            positions = [inference.position(c.det, c.scores) for c in chosen]
            pooled = inference.pooled_position(positions)
            missing = sum(1 for c in chosen if c.det_missing or not c.n)
            rows.append(
                {
                    "optimizer": optimizer,
                    "mode": mode,
                    "configs": pooled.configs,
                    "outside": pooled.outside,
                    "below_all": pooled.below,
                    "above_all": pooled.above,
                    "expected_outside": pooled.expected,
                    "p_outside": pooled.p_outside,
                    "lean": pooled.lean,
                    "p_lean": pooled.p_lean,
                    "equal_det_runs": sum(c.n_equal_det for c in chosen),
                    "runs": sum(c.n for c in chosen),
                    "note": _notes(
                        f"{missing} configuration(s) without a deterministic score or runs left out" if missing else "",
                        "" if pooled.configs else "no configuration has both",
                    ),
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "optimizer",
            "mode",
            "configs",
            "outside",
            "below_all",
            "above_all",
            "expected_outside",
            "p_outside",
            "lean",
            "p_lean",
            "equal_det_runs",
            "runs",
            "note",
        ],
    )


def typicality(done: pd.DataFrame, alpha: float = 0.05, nan_configs: frozenset = frozenset()) -> pd.DataFrame:
    """Per configuration: where det falls among all its runs (copies counted: each is a draw), the
    exact permutation p of that position (mid-ranks for ties) with Holm over the mode's
    configurations, and the smallest p these runs allow. p_normal is the prediction test's, normal
    theory, kept for comparison only: it extrapolates a normal tail beyond lumpy runs."""
    rows = []
    for c in cells(done, nan_configs):
        where = inference.position(c.det, c.scores)
        _, p_normal = inference.prediction_test(c.det, c.scores)
        reach = (
            f"{c.n} runs: the rank test cannot reach p < {alpha:g} (it needs {int(np.ceil(2 / alpha - 1))})"
            if where.p_min > alpha
            else ""
        )
        rows.append(
            {
                **cell_key(c),
                "det_pct": c.det,
                "n": c.n,
                "n_distinct": c.n_distinct,
                "below": where.below,
                "ties": where.ties,
                "above": where.above,
                "outside": bool(where.u.size) and (where.below == c.n or where.above == c.n),
                "p_rank": where.p,
                "p_rank_min": where.p_min,
                "p_normal": p_normal,
                "note": _notes(
                    c.det_missing if c.n else "no run of this mode finished",
                    reach if where.u.size else "",
                    "" if inference.varies(c.scores) or not c.n else spread_note(c, needs_det=False),
                ),
            }
        )
    table = pd.DataFrame(
        rows,
        columns=[
            *CELL,
            "det_pct",
            "n",
            "n_distinct",
            "below",
            "ties",
            "above",
            "outside",
            "p_rank",
            "p_rank_min",
            "p_normal",
            "note",
        ],
    )
    table.insert(
        table.columns.get_loc("p_rank_min") + 1, "p_holm", table.groupby("mode")["p_rank"].transform(inference.holm)
    )
    return table


def _diffs(done: pd.DataFrame) -> dict[tuple[str, str], np.ndarray]:
    """(optimizer, mode) -> each seed's det - mean(noisy runs), seeds in order."""
    by_group: dict[tuple[str, str], list[float]] = {}
    for c in cells(done):
        diffs = by_group.setdefault((c.optimizer, c.mode), [])
        if c.n and not np.isnan(c.det):
            diffs.append(c.diff)
    order = noisy_modes(done)
    return {k: np.array(v) for k, v in sorted(by_group.items(), key=lambda kv: (order.index(kv[0][1]), kv[0][0]))}


def mode_shift(done: pd.DataFrame, margin: float = 0.1, confidence: float = 0.95, target: float = 0.8) -> pd.DataFrame:
    """Does the mode shift the score? Per optimizer, each seed gives d = det - mean(noisy runs). The
    sign-flip test over seeds asks whether the mean d is 0 without assuming normality; the t interval
    (normal theory over seeds) says which shifts the data exclude; p_equivalent is TOST against
    +-margin points (small: |shift| < margin is shown); detectable_pts the |shift| the t-test had
    `target` power to detect. "No shift detected" is only ever read beside the last two."""
    rows = []
    for (optimizer, mode), diffs in _diffs(done).items():
        s = inference.seed_shift(diffs, margin, confidence, target)
        note = _notes(
            "needs >= 2 seeds" if s.seeds < 2 else "",
            f"every seed moved by exactly {s.mean:+.3f} pts: no spread over seeds, no t-test"
            if s.seeds >= 2 and s.sd == 0
            else "",
            f"the sign-flip test cannot reach p < {1 - confidence:g} with {s.seeds} seeds "
            f"(it needs {int(np.ceil(np.log2(2 / (1 - confidence))))})"
            if s.seeds >= 2 and s.p_signflip_min > 1 - confidence
            else "",
            "" if s.exact or s.seeds < 2 else f"sign-flip p from {inference.MONTE_CARLO:,} random sign patterns",
        )
        rows.append(
            {
                "optimizer": optimizer,
                "mode": mode,
                "seeds": s.seeds,
                "shift_pts": s.mean,
                "shift_lo_t": s.lo,
                "shift_hi_t": s.hi,
                "p_t_normal": s.p,
                "p_signflip": s.p_signflip,
                "p_signflip_min": s.p_signflip_min,
                "margin_pts": margin,
                "p_equivalent": s.p_equivalent,
                "detectable_pts": s.detectable,
                "note": note,
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "optimizer",
            "mode",
            "seeds",
            "shift_pts",
            "shift_lo_t",
            "shift_hi_t",
            "p_t_normal",
            "p_signflip",
            "p_signflip_min",
            "margin_pts",
            "p_equivalent",
            "detectable_pts",
            "note",
        ],
    )


def design(done: pd.DataFrame, deltas_pts: tuple[float, ...], alpha: float = 0.05, target: float = 0.8) -> pd.DataFrame:
    """What a study of this model needs, per optimizer, mode and shift size: runs per configuration
    for the rank test to find a det that far from its runs (from the runs' own pooled scatter), and
    seeds for the shift test over seeds (from the sd of det - mean over seeds; never fewer than the
    sign-flip test needs to reach alpha, 6 at 0.05). paper_test_repeats is
    what the reference study's one-sample t-test would need, labelled as the paper's."""
    rows = []
    diffs = _diffs(done)
    fewest_seeds = int(np.ceil(np.log2(2 / alpha)))  # why: the sign-flip test's smallest p is 2 / 2^seeds
    for mode in noisy_modes(done):
        for optimizer, group in done[done["mode"] == mode].groupby("optimizer", sort=True):
            groups = groups_by_seed(group)
            residuals = np.concatenate([g - g.mean() for g in groups]) if groups else np.array([])
            within = inference.pooled_sd(groups)
            d = diffs.get((optimizer, mode), np.array([]))
            between = inference.sd(d)
            for delta in deltas_pts:
                seeds = inference.repeats_needed(delta, between, alpha, target)
                rows.append(
                    {
                        "optimizer": optimizer,
                        "mode": mode,
                        "delta_pts": delta,
                        "repeats_rank_test": inference.rank_repeats_needed(delta, residuals, alpha, target),
                        "seeds_shift_test": max(seeds, fewest_seeds) if seeds is not None else None,
                        "paper_test_repeats": inference.repeats_needed(delta, within, alpha, target),
                        "sd_within_pts": within,
                        "sd_over_seeds_pts": between,
                        "note": _notes(
                            "" if len(d) >= 2 else "seeds: needs det - mean for >= 2 seeds",
                            "" if between != 0 else "seeds: every seed moved alike, any number detects a shift",
                            "" if within > 0 else "runs never varied: the paper's test does not apply",
                        ),
                    }
                )
    table = pd.DataFrame(
        rows,
        columns=[
            "optimizer",
            "mode",
            "delta_pts",
            "repeats_rank_test",
            "seeds_shift_test",
            "paper_test_repeats",
            "sd_within_pts",
            "sd_over_seeds_pts",
            "note",
        ],
    )
    for column in ("repeats_rank_test", "seeds_shift_test", "paper_test_repeats"):
        table[column] = table[column].astype("Int64")
    return table
