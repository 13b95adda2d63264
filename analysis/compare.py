"""`python -m analysis compare A B`: did study B reproduce study A?

In order: is each side intact (a side whose deterministic repeats disagree does not reproduce
itself, and is named); per shared configuration, are the two deterministic runs bit-identical, and
where not, is their difference one the non-deterministic runs make ordinary (how many pairs of
runs of that configuration differ as much); across configurations, does B's deterministic score
move one way (det_b - det_a, an exact sign-flip test over configurations); do the noisy runs of each
mode differ (a permutation test on every run, frequencies kept; modes are paired by name only); and
which facts of the environment and the settings differ. One verdict line ends it: identical, within
noise, different or undetermined, each with its reason.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import inference, stats
from analysis.cells import CONFIG, DET, Cell, cells
from analysis.display import markdown, p_value
from analysis.load import FINAL_KEYS, load_experiment
from analysis.report import ReportError, scored

ENVIRONMENT = ("gpu", "driver", "cuda", "cudnn", "torch", "ray", "python", "numpy", "timm", "git_commit")
NOT_SETTINGS = {
    "seed",
    "optimizer",
    "mode",
    "arm",
    "repeat",
    "data_dir",
    "trial",
    "status",
    "error",
}  # grid axes, paths
BROKEN = (
    "deterministic repeats share weights_sha256",
    "all repeats share init_sha256",
    "all repeats share data_sha256",
)


@dataclass(frozen=True)
class Side:
    label: str  # A or B
    name: str
    trials: pd.DataFrame
    done: pd.DataFrame
    cells: dict[tuple[str, int, str], Cell]
    det: dict[tuple[str, int], tuple[float, str]]  # configuration -> (deterministic score, its digest)
    broken: pd.DataFrame  # integrity problems that mean the side does not reproduce itself


def _side(path: Path, label: str) -> Side:
    experiment = load_experiment(path)
    result = scored(experiment)
    done = result.done
    det_runs = done[done["mode"] == DET]
    det = {
        (o, s): (float(g["score"].iloc[0]), str(g["weights_sha256"].iloc[0]))
        for (o, s), g in det_runs.groupby(CONFIG, sort=True)
    }
    problems = stats.integrity(experiment.trials, result.nan_trials)
    return Side(
        label,
        experiment.name,
        experiment.trials,
        done,
        {(c.optimizer, c.seed, c.mode): c for c in cells(done, result.nan_configs)},
        det,
        problems[problems["check"].isin(BROKEN)],
    )


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
    return {c for c in side.trials.columns if c not in added and not c.startswith(("env_", "startup_", "bitflip_"))}


def _noisy_runs(side: Side, config: tuple[str, int], modes: list[str]) -> list[np.ndarray]:
    return [side.cells[(*config, m)].scores for m in modes if (*config, m) in side.cells]


def deterministic(a: Side, b: Side, modes: list[str], alpha: float) -> pd.DataFrame:
    """Per shared configuration: the two deterministic scores and digests; where the digests differ,
    diff_pts = det_b - det_a and p_ordinary, the share of pairs of noisy runs (within a side, of the
    shared modes) that differ at least as much; Holm over the configurations tested."""
    rows = []
    for config in sorted(set(a.det) & set(b.det)):
        (det_a, digest_a), (det_b, digest_b) = a.det[config], b.det[config]
        same = digest_a == digest_b
        noisy = _noisy_runs(a, config, modes) + _noisy_runs(b, config, modes)
        p, pairs = (np.nan, 0) if same else inference.pair_share(det_b - det_a, noisy)
        still = not same and pairs and not any(inference.varies(g) for g in noisy)
        rows.append(
            {
                "optimizer": config[0],
                "seed": config[1],
                "det_a": det_a,
                "det_b": det_b,
                "same_digest": same,
                "diff_pts": det_b - det_a,
                "noise_pairs": pairs,
                "p_ordinary": p,
                "note": "identical"
                if same
                else "no pair of noisy runs of the shared modes to compare with"
                if not pairs
                else f"no noisy run of either side differs from another ({sum(len(g) for g in noisy)} runs)"
                if still
                else "",
            }
        )
    table = pd.DataFrame(
        rows,
        columns=[*CONFIG, "det_a", "det_b", "same_digest", "diff_pts", "noise_pairs", "p_ordinary", "note"],
    )
    table["p_holm"] = inference.holm(table["p_ordinary"])
    # why: where no run of either side ever differs, any difference of the deterministic runs exceeds the noise
    table["beyond_noise"] = (table["p_holm"] < alpha) | (
        table["note"].str.startswith("no noisy run") & (table["diff_pts"] != 0)
    )
    return table


def shift(det: pd.DataFrame, margin: float, alpha: float) -> pd.DataFrame:
    """Across the shared configurations, per optimizer and over all: does det_b - det_a lean one way?
    Exact sign-flip test over configurations, the t interval beside it (normal theory)."""
    rows = []
    groups = [(o, g) for o, g in det.groupby("optimizer", sort=True)]
    if len(groups) > 1:
        groups.append(("all", det))
    for optimizer, g in groups:
        s = inference.seed_shift(g["diff_pts"].to_numpy(dtype=float), margin, 1 - alpha)
        rows.append(
            {
                "optimizer": optimizer,
                "configs": s.seeds,
                "differ": int((~g["same_digest"]).sum()),
                "mean_diff_pts": s.mean,
                "lo_t": s.lo,
                "hi_t": s.hi,
                "p_signflip": s.p_signflip,
                "p_signflip_min": s.p_signflip_min,
                "detectable_pts": s.detectable,
                "note": "needs >= 2 configurations" if s.seeds < 2 else "",
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "optimizer",
            "configs",
            "differ",
            "mean_diff_pts",
            "lo_t",
            "hi_t",
            "p_signflip",
            "p_signflip_min",
            "detectable_pts",
            "note",
        ],
    )


def noisy(a: Side, b: Side, modes: list[str], alpha: float) -> pd.DataFrame:
    """Per shared cell of a shared mode, and per mode over its cells ("all"): do B's noisy runs score
    differently from A's? A permutation test of the difference in means on every run (copies are
    draws, so their frequencies count), side labels permuted within the configuration; Holm over cells."""
    rows = []
    for mode in modes:
        keys = sorted(k for k in set(a.cells) & set(b.cells) if k[2] == mode)
        for key in keys:
            ca, cb = a.cells[key], b.cells[key]
            diff, p = inference.two_sample_permutation([(ca.scores, cb.scores)])
            rows.append(_noisy_row(key[0], key[1], mode, [ca], [cb], p, diff))
        if len(keys) > 1:
            pairs = [(a.cells[k].scores, b.cells[k].scores) for k in keys]
            diff, p = inference.two_sample_permutation(pairs)
            rows.append(_noisy_row("all", "all", mode, [a.cells[k] for k in keys], [b.cells[k] for k in keys], p, diff))
    table = pd.DataFrame(
        rows,
        columns=[
            "optimizer",
            "seed",
            "mode",
            "n_a",
            "n_distinct_a",
            "sd_a",
            "n_b",
            "n_distinct_b",
            "sd_b",
            "diff_mean_pts",
            "p",
            "note",
        ],
    )
    per_cell = table["seed"] != "all"
    table["p_holm"] = table["p"].where(~per_cell, inference.holm(table["p"].where(per_cell)))
    table["differ"] = table["p_holm"] < alpha
    return table


def _noisy_row(optimizer: str, seed: object, mode: str, ca: list[Cell], cb: list[Cell], p: float, diff: float) -> dict:
    runs_a, runs_b = np.concatenate([c.scores for c in ca]), np.concatenate([c.scores for c in cb])
    return {
        "optimizer": optimizer,
        "seed": seed,
        "mode": mode,
        "n_a": len(runs_a),
        "n_distinct_a": sum(c.n_distinct for c in ca),
        "sd_a": inference.sd(runs_a) if len(ca) == 1 else np.nan,
        "n_b": len(runs_b),
        "n_distinct_b": sum(c.n_distinct for c in cb),
        "sd_b": inference.sd(runs_b) if len(cb) == 1 else np.nan,
        "diff_mean_pts": float(np.mean([y.mean - x.mean for x, y in zip(ca, cb)])) if np.isnan(diff) else diff,
        "p": p,
        "note": "" if np.isfinite(p) else "no run of either side differs: nothing to permute",
    }


def missing(a: Side, b: Side) -> list[str]:
    """What one side has and the other lacks, one line per side; modes are paired by name only."""
    lines = []
    modes = [sorted({k[2] for k in s.cells}) for s in (a, b)]
    if set(modes[0]) != set(modes[1]):
        lines.append(
            f"noisy modes: A has {', '.join(modes[0]) or 'none'}, B has {', '.join(modes[1]) or 'none'}; "
            "a mode is compared only with the mode of the same name"
        )
    for this, other in ((a, b), (b, a)):
        only = sorted(set(this.cells) - set(other.cells))
        if only:
            shown = ", ".join(f"{o}/seed {s}/{m}" for o, s, m in only[:12]) + (
                f" and {len(only) - 12} more" if len(only) > 12 else ""
            )
            lines.append(f"only in {this.label} ({this.name}): {shown}")
    return lines


def verdict(
    a: Side, b: Side, det: pd.DataFrame, moved: pd.DataFrame, dist: pd.DataFrame, env: pd.DataFrame, alpha: float
) -> str:
    """identical / within noise / different / undetermined, with the reason, in one line."""
    settings = env[env["kind"] == "setting"]["key"].tolist()
    caveat = f"; settings differ ({', '.join(settings)}), so this is not a re-run of one study" if settings else ""
    broken = [
        f"{s.label}'s {r.check.replace('all repeats share ', '').replace('deterministic repeats share ', 'deterministic ')} "
        f"disagree in {r.optimizer}/{r.seed} ({r.detail})"
        for s in (a, b)
        for r in s.broken.itertuples()
    ]
    if broken:
        return f"VERDICT: different: a side does not reproduce itself: {'; '.join(broken[:3])}{caveat}"
    k, unequal = len(det), int((~det["same_digest"]).sum())
    cells_differ = dist[(dist["seed"] != "all") & dist["differ"]]
    pooled_differ = dist[(dist["seed"] == "all") & (dist["p"] < alpha)]
    noisy_text = (
        f"; noisy runs differ in {len(cells_differ)} of {int((dist['seed'] != 'all').sum())} cells"
        + (f" and over all configurations of {', '.join(pooled_differ['mode'])}" if len(pooled_differ) else "")
        + " (permutation test, Holm)"
        if len(cells_differ) or len(pooled_differ)
        else ""
    )
    if unequal == 0:
        return f"VERDICT: identical: all {k} shared configurations have equal deterministic digests{noisy_text}{caveat}"
    beyond = det[det["beyond_noise"]]
    overall = moved.iloc[-1]
    leans = bool(overall["p_signflip"] < alpha)
    if len(beyond) or leans or noisy_text:
        reasons = []
        if len(beyond):
            reasons.append(
                f"{len(beyond)} of {k} deterministic scores differ by more than the noisy runs make ordinary "
                f"({', '.join(f'{r.optimizer}/{r.seed} {r.diff_pts:+.2f} pts' for r in beyond.head(3).itertuples())})"
            )
        if leans:
            reasons.append(
                f"det_b - det_a leans one way over configurations ({overall['mean_diff_pts']:+.3f} pts, sign-flip p "
                f"{p_value(overall['p_signflip'])})"
            )
        return f"VERDICT: different: {'; '.join(reasons) or noisy_text.lstrip('; ')}{noisy_text if reasons else ''}{caveat}"
    tested = det["p_ordinary"].notna().sum()
    if not tested and overall["configs"] < 2 and dist["p"].isna().all():
        return (
            f"VERDICT: undetermined: {unequal} of {k} deterministic digests differ, and nothing could be tested "
            f"(no pair of noisy runs to measure the noise, fewer than 2 configurations for a shift){caveat}"
        )
    missed = (
        f"; a shift of det over configurations under {overall['detectable_pts']:.2f} pts could have been missed"
        if np.isfinite(overall["detectable_pts"])
        else ""
    )
    return (
        f"VERDICT: within noise: {unequal} of {k} deterministic digests differ, none by more than the noisy runs make "
        f"ordinary ({tested} tested, Holm, alpha {alpha:g}), no lean over configurations (sign-flip p "
        f"{p_value(overall['p_signflip'])}){missed}; noisy runs alike{caveat}"
    )


def run(path_a: Path, path_b: Path, out: Path | None, alpha: float = 0.05, margin: float = 0.1) -> str:
    """Write OUT/compare.md and the CSVs; return the terminal text, the verdict last."""
    for path in (path_a, path_b):
        if not path.exists():
            raise ReportError(f"{path}: no such experiment directory")
    a, b = _side(path_a, "A"), _side(path_b, "B")
    if not set(a.det) & set(b.det):
        raise ReportError(f"{path_a} and {path_b} share no configuration (optimizer, seed) with a deterministic run")
    out = out or (path_a if path_a.is_dir() else path_a.parent) / f"compare-{b.name}"
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise ReportError(f"--out {out}: cannot write there ({exc.strerror or exc}); pass --out DIR") from None
    modes = sorted({k[2] for k in a.cells} & {k[2] for k in b.cells})
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", RuntimeWarning
        )  # why: scipy warns on nearly equal samples; p says what it means
        env, det = environment_diff(a, b), deterministic(a, b, modes, alpha)
        moved, dist = shift(det, margin, alpha), noisy(a, b, modes, alpha)
    gaps = missing(a, b)
    line = verdict(a, b, det, moved, dist, env, alpha)
    integrity = pd.concat([s.broken.assign(side=s.label) for s in (a, b)], ignore_index=True)
    env.to_csv(out / "compare_environment.csv", index=False)
    det.to_csv(out / "compare.csv", index=False)
    moved.to_csv(out / "compare_shift.csv", index=False)
    dist.to_csv(out / "compare_noisy.csv", index=False)
    (out / "compare.md").write_text(
        "\n".join(
            [
                f"# {a.name} (A) against {b.name} (B)",
                "",
                f"**{line}**",
                "",
                "## Does each side reproduce itself?",
                "",
                markdown(integrity)
                if len(integrity)
                else "Yes: every side's deterministic repeats share one digest, "
                "and every repeat of a configuration its initial weights and data.",
                "",
                "## What differs besides the runs",
                "",
                markdown(env) if len(env) else "Nothing: same environment facts and settings.",
                "",
                "## Grids",
                "",
                *(f"- {g}" for g in gaps or ["both studies hold the same configurations and modes"]),
                "",
                "## Deterministic runs, per configuration",
                "",
                "diff_pts = det_b - det_a. Where the digests differ, p_ordinary is the share of pairs of noisy runs of that "
                "configuration (within a side, modes compared: " + (", ".join(modes) or "none") + ") that differ at "
                "least as much, (1 + k) / (1 + pairs); p_holm adjusts over configurations. beyond_noise: Holm p < alpha, or "
                "no noisy run of either side ever differed and the deterministic runs do.",
                "",
                markdown(det),
                "",
                "## Deterministic runs, across configurations",
                "",
                "mean_diff_pts = the mean of det_b - det_a; p_signflip is an exact sign-flip test over configurations (its "
                "smallest value p_signflip_min), lo_t / hi_t the t interval (normal theory); detectable_pts the mean "
                "difference the t-test over these configurations finds with 80% power.",
                "",
                markdown(moved),
                "",
                "## Noisy runs",
                "",
                "diff_mean_pts = mean_b - mean_a; p: permutation test of that difference on every run (copies are draws), "
                "labels permuted within each configuration; a row 'all' pools the mode's configurations. Holm over cells.",
                "",
                markdown(dist),
                "",
            ]
        )
    )
    lines = [f"{e.kind} {e.key}: A {e.a} | B {e.b}" for e in env.itertuples()] + gaps
    return "\n".join([*lines, f"Comparison: {out / 'compare.md'}", line])
