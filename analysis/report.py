"""`python -m analysis report DIR --out OUT`: every table as Markdown and CSV, the figures, and a
compact summary for the terminal. Integrity problems come first and loudly; then the questions a
reader means (is the deterministic run one of the noisy outcomes, does the mode move the score, how
large is the noise) before the reference study's own test, which is kept and labelled for comparison.
The report also writes trials.csv, one row per trial: `report trials.csv` rebuilds every table that
needs no per-epoch or per-trial file from it."""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis import arms, artifacts, figures, questions, sources, stats
from analysis.cells import DET, Scored, finished
from analysis.display import markdown, p_value
from analysis.load import Experiment, trials_table
from layout import ARMS


class ReportError(Exception):
    """An experiment the report cannot be made from; the message is one line."""


@dataclass(frozen=True)
class ReportOptions:
    alpha: float = 0.05  # significance level of every test, and 1 - the level of every interval
    board_power_w: float = 300.0  # Table VI estimate where no energy was recorded (an RTX A6000's board power)
    carbon_kg_per_kwh: float = 0.382  # Table VI: the reference study's figures imply 0.382 (Germany)
    deltas_pts: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)  # shifts (points) the design table plans for
    power: float = 0.8  # the chance a planned study finds a shift of that size
    margin_pts: float = 0.1  # the equivalence test's margin: a shift under it counts as none (points)


def scored(experiment: Experiment) -> Scored:
    """The finished, scored trials; what could not be scored is added to experiment.skipped."""
    trials = experiment.trials
    if trials.empty:
        raise ReportError(f"{experiment.path}: no trials (no folder with a params.json)")
    result = finished(trials)
    experiment.skipped.extend(n for n in result.notes if n not in experiment.skipped)
    if result.done.empty:
        finished_count = int((trials["status"] == "finished").sum())
        why = (
            f"its {finished_count} finished trial(s) all scored NaN"
            if finished_count
            else "none of its trials has finished"
        )
        raise ReportError(f"{experiment.path}: {len(trials)} trials, but {why}")
    modes = set(result.done["mode"])
    if DET not in modes or modes == {DET}:
        raise ReportError(
            f"{experiment.path}: finished trials are all {', '.join(sorted(modes))}; "
            "the comparison needs deterministic runs and at least one other mode"
        )
    return result


def tables_for(experiment: Experiment, result: Scored, options: ReportOptions) -> dict[str, pd.DataFrame]:
    confidence, done, nan = 1 - options.alpha, result.done, result.nan_configs
    with warnings.catch_warnings():
        # why: scipy warns on precision loss for nearly identical scores; each table's note says what that means
        warnings.simplefilter("ignore", RuntimeWarning)
        tests = stats.paper_ttests(done, options.alpha)
        return {
            "integrity": stats.integrity(experiment.trials, result.nan_trials),
            "outcomes": stats.outcomes(done),
            "det_outcome": questions.det_outcome(done, nan),
            "table1_extremes": stats.table1_extremes(done),
            "table2_configurations": stats.configurations(done, nan),
            "table3_spread": stats.spread(done),
            "noise": stats.noise(done, confidence),
            "table4_runtime": stats.runtime(done),
            "mode_shift": questions.mode_shift(done, options.margin_pts, confidence, options.power),
            "typicality": questions.typicality(done, options.alpha, nan),
            "table5_ttest": stats.table5_summary(tests, options.alpha),
            "ttests": tests,
            "seed_vs_cuda": stats.seed_vs_cuda(done, confidence),
            "design": questions.design(done, options.deltas_pts, options.alpha, options.power),
            "table6_energy": stats.table6_energy(done, options.board_power_w, options.carbon_kg_per_kwh),
            "sources": sources.sources(done, confidence),
            "sources_pooled": sources.sources_pooled(done, confidence),
            "mode_cost": sources.mode_cost(done, experiment.epochs),
            "arms": arms.arms(done, experiment.path, experiment.skipped, confidence),
            "churn": artifacts.churn(experiment.path, experiment.trials, experiment.skipped),
            "similarity": artifacts.similarity(experiment.path, experiment.trials, experiment.skipped),
        }


def build(experiment: Experiment, out: Path, options: ReportOptions = ReportOptions()) -> str:
    """Write OUT/report.md, OUT/*.csv and OUT/*.png; return the terminal summary. Everything is
    made in a staging folder beside OUT and moved in at the end, so a report stopped part-way
    (Ctrl-C) leaves OUT as it was."""
    result = scored(experiment)
    try:
        if out.exists() and not out.is_dir():
            raise NotADirectoryError(20, "not a directory")
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    except OSError as exc:
        raise ReportError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    try:
        summary = _write(experiment, result, staging, options)
        out.mkdir(exist_ok=True)
        for made in sorted(staging.iterdir()):
            os.replace(made, out / made.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summary.replace(str(staging), str(out))


def _write(experiment: Experiment, result: Scored, out: Path, options: ReportOptions) -> str:
    done = result.done
    metric = str(done["metric"].iloc[0]) if "metric" in done else "metric"
    tables = tables_for(experiment, result, options)
    for name, table in tables.items():
        table.to_csv(out / f"{name}.csv", index=False)
    trials_table(experiment.trials).to_csv(out / "trials.csv", index=False)
    pngs = [figures.metric_distribution(done, metric, out), figures.runtime_by_mode(experiment.trials, out)]
    if tables["similarity"]["one_minus_cos_mean"].notna().any():
        pngs.append(figures.similarity_curves(tables["similarity"], out))
    if tables["churn"]["churn_mean"].notna().any():
        pngs.append(figures.churn_bars(tables["churn"], out))
    if len(tables["arms"]):
        pngs.append(figures.which_source(arms.pooled_rows(tables["arms"]), out))
    (out / "report.md").write_text(_markdown(experiment, metric, tables, pngs, options))
    return _summary(experiment, tables, out, options)


def integrity_text(tables: dict) -> str:
    problems = tables["integrity"]
    if problems.empty:
        return (
            "OK: deterministic repeats are bit-identical, every repeat of a configuration started from the same "
            "weights and data, and every finished trial has a score."
        )
    return f"FAILED: {len(problems)} problem(s); differences below may not be CUDA noise alone."


def outcome_lines(outcomes: pd.DataFrame) -> list[str]:
    """'nondeterministic repeats: 14 distinct of 20; 2 equal the deterministic digest' per mode."""
    return [
        f"{r.mode} repeats: {r.distinct} distinct outcomes of {r.runs} runs in {r.configs} configurations; "
        f"{r.equal_det} equal the deterministic digest"
        for r in outcomes.itertuples()
    ]


def det_lines(det: pd.DataFrame, alpha: float) -> list[str]:
    """Per CUDA mode, pooled over every configuration: is det one of the noisy outcomes? (The arms
    vary a source on purpose; their table asks how much each moves.)"""
    lines = []
    latest = det[(det["optimizer"] == det.groupby("mode")["optimizer"].transform("last")) & ~det["mode"].isin(ARMS)]
    for r in latest.itertuples():
        if not r.configs:
            lines.append(f"{r.mode}: is det one of its outcomes? untested ({r.note})")
            continue
        verdict = (
            "det is not an ordinary draw among them"
            if r.p_outside < alpha
            else "no more often than an ordinary draw would be"
        )
        lean = (
            f"; it leans {'above' if r.lean > 0 else 'below'} the runs (mean centred rank {r.lean:+.2f}, p {p_value(r.p_lean)})"
            if r.p_lean < alpha
            else f"; no consistent direction (p {p_value(r.p_lean)})"
        )
        lines.append(
            f"{r.mode}: det lies outside the range of all its runs in {r.outside} of {r.configs} configurations "
            f"({r.below_all} below, {r.above_all} above; an ordinary draw would in {r.expected_outside:.1f}, "
            f"p {p_value(r.p_outside)}): {verdict}{lean}; {r.equal_det_runs} of {r.runs} runs equal its digest"
        )
    return lines


SECTIONS = [
    (
        "Is the deterministic run one of the noisy outcomes?",
        "det_outcome",
        "The deterministic mode runs other kernels than the noisy modes, so its outcome is not presumed to be one of "
        "theirs. If it were one more draw, it would lie strictly outside the range of all n runs with chance at most "
        "2 / (n + 1), exactly, whatever the distribution (p_outside: at least `outside` of `configs` under that null, "
        "Poisson-binomial over the configurations' chances, expected_outside of them). lean is det's mean centred "
        "mid-rank (+0.5: above every run, -0.5: below), p_lean its permutation test within configurations. Pooled "
        "because one configuration's 20 runs cannot show it: its rank test cannot go below p = 2/21.",
    ),
    (
        "Table I: best and worst runs",
        "table1_extremes",
        "Best and worst run per optimizer over every run, seeds and CUDA noise together. det_outcomes counts distinct "
        "deterministic digests (one per configuration when the contract holds); noisy_runs and det_runs count trials.",
    ),
    (
        "Table II: deterministic vs noisy runs, per configuration",
        "table2_configurations",
        "det_pct is the deterministic score (its repeats are bit-identical: one observation); mean_pct the noisy runs' "
        "mean; diff_pts = det - mean and max_dev_pts = the largest |run - det|, in percentage points. n_distinct "
        "counts distinct weight digests among the n runs, modal_share the share of runs on the most frequent one, "
        "n_equal_det the runs bit-identical to the deterministic one.",
    ),
    (
        "How much noise one run carries",
        "noise",
        "The within-configuration std pooled over seeds (sd_pts), with its {level} interval: a grouped jackknife on the "
        "log scale, runs left out within their seed, t with dof = distinct outcomes beyond one per seed. On the real "
        "studies' lumpy outcomes it covered at 6, 20 and 100 runs per seed, where chi-square and the bootstrap did not "
        "(bench/RESULTS.md). Runs that never differed have sd 0 exactly and say how often a run could still differ.",
    ),
    (
        "Table III: each configuration's runs",
        "table3_spread",
        "Mean, std and range of the noisy runs, points, as the paper's Table III: described, not given intervals, since "
        "no interval for one configuration's spread holds on a few outcomes at 20 runs; the pooled std above has one.",
    ),
    (
        "Table IV: runtime",
        "table4_runtime",
        "Minutes per trial; diff_min = det - noisy (positive: determinism costs time), "
        "diff_rel_pct the same relative to the noisy mean.",
    ),
    (
        "Does the mode shift the score? (seed as the unit)",
        "mode_shift",
        "Each seed gives one difference d = det - mean(noisy runs); shift_pts is their mean. p_signflip is the sign-flip "
        "test over seeds (no normality; it cannot go below p_signflip_min), the test to cite. p_t_normal is the paired "
        "t-test and shift_lo_t / shift_hi_t its {level} interval, normal theory over seeds: on the real studies' lumpy "
        "scores the t-test's false alarms reached 6.7% at alpha 5% and the interval covered 93% (bench/RESULTS.md). p_equivalent tests |shift| < margin_pts (TOST: "
        "small means a shift as large as the margin is excluded); detectable_pts is the shift the t-test over these "
        "seeds had {power:g} power to detect. A shift not detected is one smaller than that, or none.",
    ),
    (
        "Is det an ordinary draw, per configuration?",
        "typicality",
        "Where det falls among all n runs (copies count: each is a draw); outside: strictly beyond every run. p_rank is "
        "the exact permutation p of det's mid-rank (ties counted as mid-ranks), p_holm over the mode's configurations; "
        "p_rank_min is the smallest p these runs allow. p_normal is the prediction test (normal theory), for comparison "
        "only: on a few outcomes it extrapolates a tail the runs do not have.",
    ),
    (
        "Table V: the reference study's one-sample t-test (normal theory)",
        "table5_ttest",
        "The paper's test asks whether the noisy runs' mean equals the deterministic score exactly; with enough repeats it "
        "rejects even when det is an ordinary draw, so a significant count here is not evidence that determinism changes "
        "accuracy (see the sections above). Holm's family is every tested configuration of the mode, all optimizers; "
        "sig_unadjusted is the paper's count. Runs that never differ are not tested: their mean is a fact. "
        "mean_abs_diff_rel_pct is the paper's |mean - det| / det in %, over the tested configurations (_sig: significant only, as the paper).",
    ),
    (
        "Table V per configuration",
        "ttests",
        "t and p on every run (as the paper), p_holm adjusted over the mode's family.",
    ),
    (
        "Seed vs CUDA noise",
        "seed_vs_cuda",
        "One-way random effects over seeds: var_cuda is the variance with the seed fixed (points²), var_seed what changing "
        "the seed adds; share_cuda = var_cuda / (var_seed + var_cuda), with a {level} grouped-jackknife interval (logit "
        "scale) that holds these seeds fixed.",
    ),
    (
        "What a study needs",
        "design",
        "Per shift size delta_pts, at alpha {alpha:g} and power {power:g}: repeats_rank_test is the runs per configuration "
        "the rank test needs to find a det that far from its runs, from the runs' pooled scatter (never under "
        "2 / alpha - 1: it cannot reject with fewer); seeds_shift_test the seeds the shift test needs, from the sd of "
        "det - mean over seeds (never under the sign-flip test's minimum); paper_test_repeats what the reference "
        "study's one-sample t-test would need, the paper's design, for comparison. Empty: not reachable or not estimable (note).",
    ),
    (
        "What each mode costs",
        "mode_cost",
        "Minutes per trial and seconds per epoch after the first (the first holds cuDNN's autotuning where benchmark is on), "
        "against deterministic; reproducible: every configuration's repeats of the mode ended bit-identical (deterministic: "
        "by the contract, which the integrity check tests where it has 2 or more repeats). Trials that shared a GPU ran beside "
        "other modes, so timings of a packed study carry their neighbours; bench/determinism_overhead.py measures a mode alone.",
    ),
    (
        "Table VI: energy and CO2",
        "table6_energy",
        "kWh from the GPU's energy counter where recorded (measured), otherwise {board:g} W x runtime x GPU share; CO2 at {carbon:g} kg per kWh.",
    ),
    (
        "Prediction churn",
        "churn",
        "The fraction of test examples two runs classify differently, mean and max over the pairs whose weights differ; "
        "identical_pairs ended bit-identical; diff_epoch_pairs selected different epochs (selection mixed with noise).",
    ),
]


def _markdown(experiment: Experiment, metric: str, tables: dict, pngs: list[Path], o: ReportOptions) -> str:
    t = experiment.trials
    counts = t["status"].value_counts().to_dict()
    env = {
        k[4:]: t[k].dropna().unique().tolist()
        for k in t.columns
        if k.startswith("env_") and k[4:] in ("gpu", "torch", "cuda", "cudnn", "driver", "ray")
    }
    level = f"{1 - o.alpha:.0%}"
    s = [
        f"# CUDA-randomness report: {experiment.name}",
        "",
        f"{len(t)} trials ({', '.join(f'{v} {k}' for k, v in counts.items())}); primary metric: test {metric} of each "
        f"trial's selected epoch, in percent; differences in percentage points (pts) unless named _rel_pct. "
        + (
            "Environment: " + "; ".join(f"{k} {', '.join(map(str, v))}" for k, v in env.items() if v) + "."
            if env
            else ""
        ),
        "",
        "An empty cell reads –; the row's note says why.",
    ]
    if experiment.skipped:
        s += ["", "Skipped while loading or scoring:", "", *[f"- {line}" for line in experiment.skipped]]
    s += [
        "",
        "## Integrity of the determinism contract",
        "",
        f"**{integrity_text(tables)}**",
        "",
        *[f"- {line}" for line in [*det_lines(tables["det_outcome"], o.alpha), *outcome_lines(tables["outcomes"])]],
        "",
    ]
    if not tables["integrity"].empty:
        s += [markdown(tables["integrity"]), ""]
    restarted = t[pd.to_numeric(t["restarts"], errors="coerce").fillna(0) > 0] if "restarts" in t else t.iloc[:0]
    if len(restarted):
        s += [
            "## Restarts",
            "",
            f"{len(restarted)} trial(s) continued from a checkpoint after a failure or an interrupted "
            "study (a deterministic one must still match its repeats above):",
            "",
            markdown(restarted[[c for c in ("trial", "mode", "restarts", "restart_epochs") if c in restarted]]),
            "",
        ]
    for title, key, sentence in SECTIONS:
        text = sentence.format(
            level=level, power=o.power, alpha=o.alpha, board=o.board_power_w, carbon=o.carbon_kg_per_kwh
        )
        s += [f"## {title}", "", text, "", markdown(tables[key]), ""]
    if len(tables["arms"]):
        s += [
            "## Which source of randomness matters",
            "",
            "Each arm varies one source alone in deterministic mode (init: initial weights; order: data order; augment: "
            "augmentation draws; dropout: the model's own training-time draws; bitflip: the lowest mantissa bit of one "
            "initial weight), or is a CUDA mode, or varies every source with non-deterministic CUDA (all). Pooled over "
            "seeds, pairs within a configuration: on_control the runs that ended on the deterministic control's weights "
            "(a perturbation training absorbed); "
            f"sd_pts with its {level} grouped-jackknife interval; sd_vs_all = the "
            "arm's sd / the all arm's, with its interval (1: this source alone gives the whole spread); ce_sd the sd of "
            "the test cross-entropy; disagreement_pct the test examples two runs classify differently; correlation of "
            "two runs' predicted probabilities; ensemble_gain_pts the primary metric of two runs' averaged probabilities "
            "less their mean (Summers & Dinneen, ICML 2021, measure the same).",
            "",
            *[f"- {line}" for line in arms.arm_lines(tables["arms"], level)],
            "",
            markdown(tables["arms"]),
            "",
        ]
    if not tables["sources_pooled"].empty:
        s += [
            "## Where the noise comes from",
            "",
            "autotuner-only keeps every kernel deterministic but lets cuDNN time and pick them in each process; kernels-only "
            "fixes cuDNN's pick but allows non-deterministic kernels. *_share = that mode's within-seed variance / the paper "
            f"mode's, with its {level} grouped-jackknife interval: 1 means that source alone reproduces all the paper's noise. "
            "Shares need not add up to 1: one perturbation alone can produce the full spread of chaotic training. A source "
            "whose runs never differed reads *_differ_at_most: the largest chance of a differing run the data leave open.",
            "",
            *[f"- {line}" for line in sources.source_lines(tables["sources_pooled"], tables["mode_cost"])],
            "",
            "Pooled over seeds:",
            "",
            markdown(tables["sources_pooled"]),
            "",
            "Per configuration:",
            "",
            markdown(tables["sources"]),
            "",
        ]
    sim = tables["similarity"]
    if not sim.empty:
        last = sim[sim["epoch"] == sim.groupby(["optimizer", "seed", "mode"])["epoch"].transform("max")]
        s += [
            "## Last-layer similarity",
            "",
            "1 - cosine similarity of the last layer's weights between runs of a "
            "configuration (the paper's Figs. 2 and 3 plot the cosine); 0 would be identical, and pairs that are "
            "identical are counted apart. Last epoch shown; every epoch is in similarity.csv.",
            "",
            markdown(last),
            "",
        ]
    s += ["## Figures", "", *[f"![{p.stem}]({p.name})" for p in pngs], ""]
    return "\n".join(s)


def _fmt(value: float, spec: str = ".2f") -> str:
    return "–" if pd.isna(value) else format(value, spec)


def _shift_text(shift, level: str) -> str:  # noqa: ANN001 (a mode_shift row)
    """The shift over seeds and what the data exclude, in one clause."""
    if shift.seeds < 2:
        return f"det - mean = {_fmt(shift.shift_pts, '+.3f')} pts (one seed: a shift needs >= 2 seeds to test)"
    if pd.isna(shift.p_t_normal):
        return (
            f"det - mean = {shift.shift_pts:+.3f} pts in every one of {shift.seeds} seeds "
            f"(sign-flip p {p_value(shift.p_signflip)}, its smallest possible {p_value(shift.p_signflip_min)})"
        )
    excluded = (
        f"a shift of {shift.margin_pts:g} pts or more is excluded (TOST p {p_value(shift.p_equivalent)})"
        if shift.p_equivalent < 1 - float(level.rstrip("%")) / 100
        else f"shifts up to {shift.detectable_pts:.2f} pts could have been missed (80% power; TOST against "
        f"{shift.margin_pts:g} pts p {p_value(shift.p_equivalent)})"
    )
    return (
        f"det - mean = {shift.shift_pts:+.3f} pts over {shift.seeds} seeds ({level} CI {shift.shift_lo_t:+.3f} to "
        f"{shift.shift_hi_t:+.3f}, normal theory; sign-flip p {p_value(shift.p_signflip)}); {excluded}"
    )


def _finding(tables: dict, shift, o: ReportOptions) -> str:  # noqa: ANN001 (a mode_shift row)
    """One optimizer and mode in a sentence: the shift over seeds, the noise, the paper's test."""

    def rows(name: str) -> pd.DataFrame:
        t = tables[name]
        return t[(t["optimizer"] == shift.optimizer) & (t["mode"] == shift.mode)]

    level = f"{1 - o.alpha:.0%}"
    noise, share, paper = rows("noise"), rows("seed_vs_cuda"), rows("table5_ttest")
    parts = [_shift_text(shift, level)]
    if noise.empty or pd.isna(noise["sd_pts"].iloc[0]):
        parts.append("noise not estimable (needs 2 runs of one seed)")
    elif noise["sd_pts"].iloc[0] == 0:
        parts.append("no noise: " + noise["note"].iloc[0])
    else:
        r = noise.iloc[0]
        interval = (
            f"{level} CI {r['sd_lo']:.3f}-{r['sd_hi']:.3f}"
            if pd.notna(r["sd_lo"])
            else "no interval: it needs 3 runs of a configuration"
        )
        text = f"one run's noise sd {r['sd_pts']:.3f} pts ({interval})"
        if not share.empty and pd.notna(share["share_cuda"].iloc[0]):
            c = share.iloc[0]
            text += f", {c['share_cuda']:.0%} of the variance seeds and CUDA give together" + (
                f" ({c['share_cuda_lo']:.0%}-{c['share_cuda_hi']:.0%})" if pd.notna(c["share_cuda_lo"]) else ""
            )
        parts.append(text)
    if not paper.empty:
        p = paper.iloc[0]
        parts.append(
            f"the paper's Table V test (normal theory): {p['sig_holm']} of {p['tested']} testable configurations "
            f"significant after Holm ({p['sig_unadjusted']} unadjusted)"
        )
    return "; ".join(parts)


def _summary(experiment: Experiment, tables: dict, out: Path, o: ReportOptions) -> str:
    lines = []
    if not tables["integrity"].empty:
        lines += ["!!! INTEGRITY " + integrity_text(tables)] + [
            f"!!!   {r.optimizer}/{r.seed}: {r.check}: {r.detail}" for r in tables["integrity"].itertuples()
        ]
    else:
        lines.append("Integrity " + integrity_text(tables))
    lines += det_lines(tables["det_outcome"], o.alpha)
    lines += outcome_lines(tables["outcomes"])
    if experiment.skipped:
        lines.append(f"Skipped while loading or scoring: {len(experiment.skipped)} item(s), listed in report.md")
    for r in tables["mode_shift"].itertuples():
        if r.mode not in ARMS:  # why: an arm's line is in arm_lines, against every source together
            lines.append(f"{r.optimizer}, {r.mode}: {_finding(tables, r, o)}")
    lines += sources.source_lines(tables["sources_pooled"], tables["mode_cost"])
    lines += arms.arm_lines(tables["arms"], f"{1 - o.alpha:.0%}")
    lines.append(f"Report: {out / 'report.md'}")
    return "\n".join(lines)
