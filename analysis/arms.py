"""Which source of randomness matters: every arm of a study (a source varied alone, a CUDA mode, or
all sources together) measured as Summers & Dinneen (ICML 2021) measured theirs, and against the
all-sources arm: does removing one source buy any reproducibility, or does any one perturbation
already give the whole spread?

Per arm, pooled over seeds (pairs are always two runs of one configuration): the primary metric's
sd with its interval (inference.jackknife_interval), the sd of the test cross-entropy, the share of
test examples two runs classify differently, the correlation of two runs' predicted probabilities,
the ensemble gain (the metric of two runs' averaged probabilities, less their mean), and the arm's
sd as a share of the all-sources arm's, with its interval. Runs that never differed read so, with
the largest chance of a difference the data leave open, and say whether they all ended on the
deterministic control's weights: a perturbation that training absorbed (a flipped bit below bf16's
resolution) is a finding, not a missing measurement. Everything but the sd comes from each
trial's predictions.npz (the selected epoch's test probabilities).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import inference
from analysis.artifacts import UNREADABLE
from analysis.cells import CONFIG, DET, noisy_modes
from analysis.stats import distinct_per_config, groups_by_seed, no_difference
from layout import ALL_SOURCES, ARMS, PREDICTIONS_FILE
from metrics import scores

COLUMNS = [
    "optimizer",
    "seed",
    "arm",
    "runs",
    "n_distinct",
    "on_control",
    "sd_pts",
    "sd_lo",
    "sd_hi",
    "sd_vs_all",
    "sd_vs_all_lo",
    "sd_vs_all_hi",
    "ce_sd",
    "disagreement_pct",
    "correlation",
    "ensemble_gain_pts",
    "pairs",
    "note",
]


def has_arms(done: pd.DataFrame) -> bool:
    return bool(set(ARMS) & set(done["mode"]))


def _predictions(directory: Path, trials: list[str], skipped: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for name in trials:
        path = directory / name / PREDICTIONS_FILE
        if not path.is_file():
            continue
        try:
            with np.load(path) as archive:
                out[name] = archive["labels"], archive["probs"].astype(np.float64)
        except UNREADABLE as exc:
            skipped.append(f"{path}: unreadable ({type(exc).__name__}), left out of the arms table")
    return out


def _pairs(group: pd.DataFrame, preds: dict, metric: str, f1_average: str) -> dict[str, list[float]]:
    """Per pair of runs of one configuration (both with predictions): disagreement, correlation of
    their probabilities, ensemble gain in points."""
    out: dict[str, list[float]] = {"disagreement": [], "correlation": [], "gain": []}
    names = [n for n in group["trial"] if n in preds]
    for a, b in itertools.combinations(names, 2):
        (labels, pa), (_, pb) = preds[a], preds[b]
        out["disagreement"].append(float((pa.argmax(1) != pb.argmax(1)).mean()) * 100)
        same = np.array_equal(pa, pb)
        out["correlation"].append(1.0 if same else float(np.corrcoef(pa.ravel(), pb.ravel())[0, 1]))
        single = [scores(labels, p, (metric,), f1_average)[metric] for p in (pa, pb)]
        ensemble = scores(labels, (pa + pb) / 2, (metric,), f1_average)[metric]
        out["gain"].append((ensemble - np.mean(single)) * 100)
    return out


def _cross_entropy(preds: dict, names: list[str]) -> dict[str, float]:
    return {
        n: float(-np.mean(np.log(np.clip(preds[n][1][np.arange(len(preds[n][0])), preds[n][0]], 1e-12, 1))))
        for n in names
        if n in preds
    }


def arms(done: pd.DataFrame, experiment_dir: Path, skipped: list[str], confidence: float = 0.95) -> pd.DataFrame:
    """Per optimizer and arm (every noisy mode and arm of the study): per configuration (seed), then
    pooled over seeds (seed "all")."""
    if not has_arms(done):
        return pd.DataFrame(columns=COLUMNS)
    rows = []
    controls = done[done["mode"] == DET].groupby(CONFIG)["weights_sha256"].first().to_dict()
    for optimizer, runs in done[done["mode"] != DET].groupby("optimizer", sort=True):
        preds = _predictions(experiment_dir, list(runs["trial"]), skipped)
        metric = str(runs["metric"].iloc[0]) if "metric" in runs else "accuracy"
        f1_average = str(runs["f1_average"].iloc[0]) if "f1_average" in runs else "macro"
        seeds = sorted(runs["seed"].unique())
        for seed in [*seeds, *(["all"] if len(seeds) > 1 else [])]:
            chosen = runs if seed == "all" else runs[runs["seed"] == seed]
            reference = chosen[chosen["mode"] == ALL_SOURCES]
            for arm in [m for m in noisy_modes(done) if m in set(chosen["mode"])]:
                group = chosen[chosen["mode"] == arm]
                row = _arm_row(group, reference, controls, preds, metric, f1_average, confidence)
                rows.append({"optimizer": optimizer, "seed": seed, "arm": arm, **row})
    return pd.DataFrame(rows, columns=COLUMNS)


def _arm_row(
    group: pd.DataFrame,
    reference: pd.DataFrame,
    controls: dict,
    preds: dict,
    metric: str,
    f1_average: str,
    confidence: float,
) -> dict[str, object]:
    """One arm's measures over `group` (one configuration, or many pooled within each); `controls`
    maps a configuration to its deterministic control's weights digest."""
    groups, every = groups_by_seed(group), groups_by_seed(reference)
    variance, dof = inference.pooled_variance(groups)
    sd_lo = sd_hi = ratio = ratio_lo = ratio_hi = np.nan
    if variance > 0:
        sd_lo, sd_hi = inference.jackknife_interval(groups, inference.pooled_sd, inference.LOG, confidence)
    is_all = bool(len(group)) and group["mode"].iloc[0] == ALL_SOURCES
    if not is_all and every and inference.pooled_variance(every)[0] > 0:
        if variance == 0:
            ratio = 0.0
        elif variance > 0:
            ratio, ratio_lo, ratio_hi = np.sqrt(inference.variance_ratio(groups, every, confidence))
    pairs: dict[str, list[float]] = {"disagreement": [], "correlation": [], "gain": []}
    ce_groups, on_control = [], 0
    for config_key, config in group.groupby(CONFIG, sort=True):
        on_control += int((config["weights_sha256"] == controls.get(config_key)).sum())
        for key, values in _pairs(config, preds, metric, f1_average).items():
            pairs[key] += values
        ce = _cross_entropy(preds, list(config["trial"]))
        if ce:
            ce_groups.append(np.array(list(ce.values())))
    notes = [
        no_difference(groups, 1 - confidence) if variance == 0 else "",
        f"all {on_control} ended on the deterministic control's weights" if on_control == len(group) > 0 else "",
        "no predictions saved: no pair measures" if not pairs["disagreement"] else "",
        "no all-sources arm to compare with" if not is_all and not every else "",
    ]
    return {
        "runs": len(group),
        "n_distinct": distinct_per_config(group),
        "on_control": on_control,
        "sd_pts": float(np.sqrt(variance)) if dof >= 1 else np.nan,
        "sd_lo": sd_lo,
        "sd_hi": sd_hi,
        "sd_vs_all": ratio,
        "sd_vs_all_lo": ratio_lo,
        "sd_vs_all_hi": ratio_hi,
        "ce_sd": inference.pooled_sd(ce_groups) if ce_groups else np.nan,
        "disagreement_pct": np.mean(pairs["disagreement"]) if pairs["disagreement"] else np.nan,
        "correlation": np.mean(pairs["correlation"]) if pairs["correlation"] else np.nan,
        "ensemble_gain_pts": np.mean(pairs["gain"]) if pairs["gain"] else np.nan,
        "pairs": len(pairs["disagreement"]),
        "note": "; ".join(n for n in notes if n),
    }


def pooled_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Each optimizer's rows over all its seeds: the pooled ones, or the only seed's."""
    seeds = table.groupby("optimizer")["seed"].transform("nunique")
    return table[(table["seed"].astype(str) == "all") | (seeds == 1)]


def arm_lines(table: pd.DataFrame, level: str) -> list[str]:
    """Per optimizer, a sentence a user can quote: each arm's sd against all sources together."""
    lines = []
    for optimizer, rows in pooled_rows(table).groupby("optimizer", sort=True):
        every = rows[rows["arm"] == ALL_SOURCES]
        if not len(every):
            head = "no all-sources arm"
        elif not every["sd_pts"].iloc[0] > 0:
            head = "all sources together: no spread"
        else:
            head = f"all sources together sd {every['sd_pts'].iloc[0]:.3f} pts" + (
                f" ({level} CI {every['sd_lo'].iloc[0]:.3f}-{every['sd_hi'].iloc[0]:.3f})"
                if pd.notna(every["sd_lo"].iloc[0])
                else ""
            )
        lines.append(
            f"{optimizer}, which source matters: {head}; alone: "
            + "; ".join(map(_arm_text, rows[rows["arm"] != ALL_SOURCES].itertuples()))
        )
    return lines


def _arm_text(r) -> str:  # noqa: ANN001 (an arms row)
    if r.sd_pts == 0:
        absorbed = "; every run ended on the deterministic control's weights" if r.on_control == r.runs else ""
        return f"{r.arm} none ({r.note.split(':')[0]}{absorbed})"
    if pd.notna(r.sd_vs_all_lo):
        return f"{r.arm} {r.sd_pts:.3f} ({r.sd_vs_all:.0%} of all, {r.sd_vs_all_lo:.0%}-{r.sd_vs_all_hi:.0%})"
    if pd.notna(r.sd_vs_all):
        return f"{r.arm} {r.sd_pts:.3f} ({r.sd_vs_all:.0%} of all; no interval with so few runs)"
    return f"{r.arm} {r.sd_pts:.3f}"
