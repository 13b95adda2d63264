"""`python -m analysis compare A B`: the question a reviewer re-running a study on another machine
asks. For each configuration the two studies share: are the deterministic digests equal; where
not, does each side's deterministic score lie within the other side's non-deterministic spread
(the prediction test, with the shift it could detect); do the noisy runs' distributions differ
(on distinct outcomes); and which facts of the environment and the settings differ. One verdict
line ends it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sp

from analysis import inference
from analysis.cells import CONFIG, Cell, cells
from analysis.display import markdown, p_value
from analysis.load import FINAL_KEYS, load_experiment
from analysis.report import ReportError, scored

ENVIRONMENT = ("gpu", "driver", "cuda", "cudnn", "torch", "ray", "python", "numpy", "timm", "git_commit")
NOT_SETTINGS = {"seed", "optimizer", "mode", "repeat", "data_dir", "trial", "status", "error"}  # grid axes and paths


@dataclass(frozen=True)
class Side:
    name: str
    trials: pd.DataFrame
    done: pd.DataFrame
    cells: dict[tuple[str, int, str], Cell]


def _side(path: Path) -> Side:
    experiment = load_experiment(path)
    done = scored(experiment).done
    return Side(path.name, experiment.trials, done, {(c.optimizer, c.seed, c.mode): c for c in cells(done)})


def environment_diff(a: Side, b: Side) -> pd.DataFrame:
    """Environment facts and settings whose values differ between the two studies."""
    rows = []
    for key in ENVIRONMENT:
        values = [
            sorted(map(str, s.trials[f"env_{key}"].dropna().unique())) if f"env_{key}" in s.trials else []
            for s in (a, b)
        ]
        if values[0] != values[1]:
            rows.append(
                {"kind": "environment", "key": key, "a": ", ".join(values[0]) or "–", "b": ", ".join(values[1]) or "–"}
            )
    settings = _settings(a) - NOT_SETTINGS
    params = [c for c in a.trials.columns.intersection(b.trials.columns) if c in settings]
    for key in sorted(params):
        values = [sorted(map(str, s.trials[key].dropna().unique())) for s in (a, b)]
        if values[0] != values[1]:
            rows.append({"kind": "setting", "key": key, "a": ", ".join(values[0]), "b": ", ".join(values[1])})
    return pd.DataFrame(rows, columns=["kind", "key", "a", "b"])


def _settings(side: Side) -> set[str]:
    """The columns that came from params.json (everything the loader adds is named apart)."""
    added = {"status", "error", "epochs_done", "last_metric", "final_metric_reported", "best_metric", *FINAL_KEYS}
    return {c for c in side.trials.columns if c not in added and not c.startswith(("env_", "startup_"))}


def deterministic(a: Side, b: Side, alpha: float) -> pd.DataFrame:
    """Per shared configuration: the two deterministic scores and digests; where they differ, the
    prediction test of each side's det against the other side's noisy runs (p, Bonferroni over the
    two sides, then Holm over configurations) and the shift each test detects with 80% power."""
    rows = []
    shared = sorted({k[:2] for k in a.cells} & {k[:2] for k in b.cells})
    for optimizer, seed in shared:
        ca, cb = _paper_cell(a, optimizer, seed), _paper_cell(b, optimizer, seed)
        same = ca.det_digest is not None and ca.det_digest == cb.det_digest
        p_a = inference.prediction_test(cb.det, ca.scores)[1]  # B's det among A's runs
        p_b = inference.prediction_test(ca.det, cb.scores)[1]
        valid = [p for p in (p_a, p_b) if not np.isnan(p)]
        note = (
            "identical"
            if same
            else "a side has no deterministic run"
            if np.isnan(ca.det) or np.isnan(cb.det)
            else ""
            if valid
            else "neither side's noisy runs vary: no test"
        )
        rows.append(
            {
                "optimizer": optimizer,
                "seed": seed,
                "mode": ca.mode,
                "det_a": ca.det,
                "det_b": cb.det,
                "diff_pts": cb.det - ca.det,
                "same_digest": same,
                "p_in_a": np.nan if same else p_a,
                "p_in_b": np.nan if same else p_b,
                "p": np.nan if same or not valid else min(1.0, len(valid) * min(valid)),
                "detectable_a_pts": inference.detectable_shift(ca.n, _sd(ca.scores), alpha),
                "detectable_b_pts": inference.detectable_shift(cb.n, _sd(cb.scores), alpha),
                "note": note,
            }
        )
    table = pd.DataFrame(
        rows,
        columns=[
            *CONFIG,
            "mode",
            "det_a",
            "det_b",
            "diff_pts",
            "same_digest",
            "p_in_a",
            "p_in_b",
            "p",
            "detectable_a_pts",
            "detectable_b_pts",
            "note",
        ],
    )
    table.insert(table.columns.get_loc("p") + 1, "p_holm", inference.holm(table["p"]))
    table.insert(table.columns.get_loc("p_holm") + 1, "outside_noise", table["p_holm"] < alpha)
    return table


def _paper_cell(side: Side, optimizer: str, seed: int) -> Cell:
    """The configuration's cell of the first noisy mode (the paper's when present)."""
    return next(c for k, c in side.cells.items() if k[:2] == (optimizer, seed))


def _sd(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1)) if len(x) > 1 else np.nan


def noisy(a: Side, b: Side, alpha: float) -> pd.DataFrame:
    """Per shared cell: the noisy runs on each side and whether their distributions differ, on
    distinct outcomes (copies are not independent evidence here): Welch's t-test of the means and
    the Mann-Whitney U test, Holm over cells on the Welch p."""
    rows = []
    for key in sorted(set(a.cells) & set(b.cells)):
        ca, cb = a.cells[key], b.cells[key]
        da, db = ca.distinct, cb.distinct
        p_welch = p_mw = np.nan
        if len(da) >= 2 and len(db) >= 2 and (np.ptp(da) > 0 or np.ptp(db) > 0):
            p_welch = float(sp.ttest_ind(da, db, equal_var=False).pvalue)
        if len(da) and len(db) and len(da) + len(db) >= 3:
            p_mw = float(sp.mannwhitneyu(da, db, alternative="two-sided").pvalue)
        note = "" if not np.isnan(p_welch) else "fewer than 2 distinct outcomes on a side, or none varies"
        rows.append(
            {
                "optimizer": key[0],
                "seed": key[1],
                "mode": key[2],
                "n_a": ca.n,
                "n_distinct_a": ca.n_distinct,
                "mean_a": float(ca.scores.mean()) if ca.n else np.nan,
                "sd_a": _sd(ca.scores),
                "n_b": cb.n,
                "n_distinct_b": cb.n_distinct,
                "mean_b": float(cb.scores.mean()) if cb.n else np.nan,
                "sd_b": _sd(cb.scores),
                "diff_mean_pts": (cb.scores.mean() - ca.scores.mean()) if ca.n and cb.n else np.nan,
                "p_welch": p_welch,
                "p_mannwhitney": p_mw,
                "note": note,
            }
        )
    table = pd.DataFrame(
        rows,
        columns=[
            "optimizer",
            "seed",
            "mode",
            "n_a",
            "n_distinct_a",
            "mean_a",
            "sd_a",
            "n_b",
            "n_distinct_b",
            "mean_b",
            "sd_b",
            "diff_mean_pts",
            "p_welch",
            "p_mannwhitney",
            "note",
        ],
    )
    table["p_holm"] = inference.holm(table["p_welch"])
    table["differ"] = table["p_holm"] < alpha
    return table


def missing(a: Side, b: Side) -> list[str]:
    """What one side has and the other lacks, one line per side."""
    lines = []
    for this, other, label in ((a, b, "A"), (b, a, "B")):
        only = sorted(set(this.cells) - set(other.cells))
        if only:
            shown = ", ".join(f"{o}/seed {s}/{m}" for o, s, m in only[:12]) + (
                f" and {len(only) - 12} more" if len(only) > 12 else ""
            )
            lines.append(f"only in {label} ({this.name}): {shown}")
    return lines


def verdict(det: pd.DataFrame, dist: pd.DataFrame, env: pd.DataFrame, alpha: float) -> str:
    settings = env[env["kind"] == "setting"]["key"].tolist()
    caveat = f"; settings differ ({', '.join(settings)}), so this is not a re-run of one study" if settings else ""
    differ = int(dist["differ"].sum())
    spread = f"; noisy distributions differ in {differ} of {len(dist)} (Welch on distinct outcomes, Holm)"
    k = len(det)
    unequal = int((~det["same_digest"]).sum())
    outside = int(det["outside_noise"].sum())
    if unequal == 0:
        return f"VERDICT: identical: all {k} shared configurations have equal deterministic digests{spread}{caveat}"
    if outside:
        return (
            f"VERDICT: different: {outside} of {k} configurations' deterministic scores lie outside the other side's "
            f"non-deterministic spread (prediction test, Holm p < {alpha:g}){spread}{caveat}"
        )
    untested = int(det["p"].isna().sum()) - (k - unequal)
    return (
        f"VERDICT: within noise: {unequal} of {k} deterministic digests differ, none beyond either side's "
        f"non-deterministic spread (prediction test, Holm, alpha {alpha:g}"
        + (f"; {untested} could not be tested" if untested else "")
        + f"){spread}{caveat}"
    )


def run(path_a: Path, path_b: Path, out: Path | None, alpha: float = 0.05) -> str:
    """Write OUT/compare.md and the CSVs; return the terminal text, the verdict last."""
    for path in (path_a, path_b):
        if not path.is_dir():
            raise ReportError(f"{path}: no such experiment directory")
    a, b = _side(path_a), _side(path_b)
    if not {k[:2] for k in a.cells} & {k[:2] for k in b.cells}:
        raise ReportError(f"{path_a} and {path_b} share no configuration (optimizer, seed)")
    out = out or path_a / f"compare-{path_b.name}"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", RuntimeWarning
        )  # why: scipy warns on nearly equal samples; p says what it means
        env, det, dist = environment_diff(a, b), deterministic(a, b, alpha), noisy(a, b, alpha)
    gaps = missing(a, b)
    line = verdict(det, dist, env, alpha)
    env.to_csv(out / "compare_environment.csv", index=False)
    det.to_csv(out / "compare.csv", index=False)
    dist.to_csv(out / "compare_noisy.csv", index=False)
    (out / "compare.md").write_text(
        "\n".join(
            [
                f"# {a.name} (A) against {b.name} (B)",
                "",
                f"**{line}**",
                "",
                "## What differs besides the runs",
                "",
                markdown(env) if len(env) else "Nothing: same environment facts and settings.",
                "",
                "## Grids",
                "",
                *(f"- {g}" for g in gaps or ["both studies hold the same configurations"]),
                "",
                "## Deterministic runs",
                "",
                "diff_pts = det_b - det_a. p_in_a tests whether B's deterministic score is an ordinary draw from A's noisy runs "
                "(prediction test), p_in_b the reverse; p combines the two (Bonferroni), p_holm adjusts over configurations. "
                "detectable_*_pts is the shift that side's test finds with 80% power.",
                "",
                markdown(det),
                "",
                "## Noisy runs",
                "",
                "diff_mean_pts = mean_b - mean_a. Tests on distinct outcomes (one per weight digest).",
                "",
                markdown(dist),
                "",
            ]
        )
    )
    lines = [f"{e.kind} {e.key}: A {e.a} | B {e.b}" for e in env.itertuples()] + gaps
    worst = det["p_holm"].min()
    if not np.isnan(worst):
        lines.append(f"smallest Holm p over differing deterministic scores: {p_value(worst)}")
    return "\n".join([*lines, f"Comparison: {out / 'compare.md'}", line])
