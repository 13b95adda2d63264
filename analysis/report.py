"""`python -m analysis report DIR --out OUT`: every table as Markdown and CSV, the figures, and a
compact summary for the terminal. Integrity problems come first and loudly; the questions a reader
means (does the mode move the score, is the deterministic run typical, how large is the noise)
come before the reference study's own test, which is kept and labelled for comparison."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis import artifacts, figures, sources, stats
from analysis.cells import DET, Scored, finished
from analysis.display import markdown, p_value
from analysis.load import Experiment


class ReportError(Exception):
    """An experiment the report cannot be made from; the message is one line."""


@dataclass(frozen=True)
class ReportOptions:
    alpha: float = 0.05  # significance level of every test, and 1 - the level of every interval
    board_power_w: float = 300.0  # Table VI estimate where no energy was recorded (an RTX A6000's board power)
    carbon_kg_per_kwh: float = 0.382  # Table VI: the reference study's figures imply 0.382 (Germany)
    deltas_pts: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)  # shifts (points) for the power table
    power: float = 0.8


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
    confidence, done = 1 - options.alpha, result.done
    with warnings.catch_warnings():
        # why: scipy warns on precision loss for nearly identical scores; each table's note says what that means
        warnings.simplefilter("ignore", RuntimeWarning)
        tests = stats.paper_ttests(done, options.alpha)
        return {
            "integrity": stats.integrity(experiment.trials, result.nan_trials),
            "outcomes": stats.outcomes(done),
            "table1_extremes": stats.table1_extremes(done),
            "table2_configurations": stats.configurations(done),
            "table3_spread": stats.spread(done, confidence),
            "table4_runtime": stats.runtime(done),
            "mode_shift": stats.mode_shift(done, confidence),
            "typicality": stats.typicality(done, options.alpha),
            "table5_ttest": stats.table5_summary(tests, options.alpha),
            "ttests": tests,
            "seed_vs_cuda": stats.seed_vs_cuda(done, confidence),
            "power": stats.power_table(done, options.deltas_pts, options.alpha, options.power),
            "table6_energy": stats.table6_energy(done, options.board_power_w, options.carbon_kg_per_kwh),
            "sources": sources.sources(done, confidence),
            "sources_pooled": sources.sources_pooled(done, confidence),
            "mode_cost": sources.mode_cost(done, experiment.epochs),
            "churn": artifacts.churn(experiment.path, experiment.trials, experiment.skipped),
            "similarity": artifacts.similarity(experiment.path, experiment.trials, experiment.skipped),
        }


def build(experiment: Experiment, out: Path, options: ReportOptions = ReportOptions()) -> str:
    """Write OUT/report.md, OUT/*.csv and OUT/*.png; return the terminal summary."""
    result = scored(experiment)
    done = result.done
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise ReportError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    metric = str(done["metric"].iloc[0]) if "metric" in done else "metric"
    tables = tables_for(experiment, result, options)
    for name, table in tables.items():
        table.to_csv(out / f"{name}.csv", index=False)
    pngs = [figures.metric_distribution(done, metric, out), figures.runtime_by_mode(experiment.trials, out)]
    if tables["similarity"]["one_minus_cos_mean"].notna().any():
        pngs.append(figures.similarity_curves(tables["similarity"], out))
    if tables["churn"]["churn_mean"].notna().any():
        pngs.append(figures.churn_bars(tables["churn"], out))
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


SECTIONS = [
    (
        "Table I: best and worst runs",
        "table1_extremes",
        "Best and worst run per optimizer over every run, seeds and CUDA noise together. det_outcomes counts distinct "
        "deterministic digests (one per configuration when the contract holds); noisy_runs and det_runs count trials.",
    ),
    (
        "Table II: deterministic vs noisy runs, per configuration",
        "table2_configurations",
        "det_pct is the deterministic score (its repeats are bit-identical: one observation); mean_pct the noisy runs' mean; "
        "diff_pts = det - mean and max_dev_pts = the largest |run - det|, in percentage points. n_distinct counts distinct "
        "weight digests among the n runs, n_equal_det the runs bit-identical to the deterministic one.",
    ),
    (
        "Table III: the noise one reported number carries",
        "table3_spread",
        "Mean of the noisy runs with its {level} t interval, std with its {level} chi-square interval, range; points. "
        "Copies (runs with one digest) are real outcomes and count in every estimate here.",
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
        "Each seed gives one difference d = det - mean(noisy runs); shift_pts is their mean over seeds with its {level} t "
        "interval, p the paired t-test (seeds - 1 df), p_exact a sign-flip permutation test over seeds (no normality; its "
        "smallest possible value is p_exact_min). This is the test for a claim that deterministic mode changes accuracy.",
    ),
    (
        "Is the deterministic run an ordinary draw from the noisy runs?",
        "typicality",
        "Prediction test t = (det - mean) / (s sqrt(1 + 1/n)) on every run (p, Holm over the mode's configurations: "
        "p_holm, atypical) and on the distinct outcomes (p_distinct); below / ties / above place det among the distinct "
        "outcomes, p_rank is the exact rank p-value (smallest possible: p_rank_min). Unlike Table V its false-alarm rate "
        "stays at alpha however many repeats run.",
    ),
    (
        "Table V: the reference study's one-sample t-test",
        "table5_ttest",
        "The paper's test asks whether the noisy runs' mean equals the deterministic score exactly; with enough repeats it "
        "rejects even when det is an ordinary draw, so a significant count here is not evidence that determinism changes "
        "accuracy (see the two sections above). Holm's family is every tested configuration of the mode, all optimizers; "
        "sig_holm leads, sig_holm_distinct repeats it on distinct outcomes, sig_unadjusted is the paper's count. "
        "mean_abs_diff_rel_pct is the paper's |mean - det| / det in %, over the tested configurations (_sig: significant only, as the paper).",
    ),
    (
        "Table V per configuration",
        "ttests",
        "t and p on every run (as the paper), p_distinct on the distinct outcomes, p_sign an exact sign test on them; "
        "p_holm / p_holm_distinct adjusted over the mode's family.",
    ),
    (
        "Seed vs CUDA noise",
        "seed_vs_cuda",
        "One-way random effects over seeds: var_cuda is the variance with the seed fixed (points²), var_seed what changing "
        "the seed adds; share_cuda = var_cuda / (var_seed + var_cuda) with Searle's {level} interval.",
    ),
    (
        "Repeats needed",
        "power",
        "Runs the paper's one-sample t-test needs to detect a true shift of that many points with power {power:g} at alpha "
        "{alpha:g}, from the pooled within-configuration std (df beside it). 2 is the floor: read it as ≤ 2.",
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
        f"# CUDA-randomness report: {experiment.path.name}",
        "",
        f"{len(t)} trials ({', '.join(f'{v} {k}' for k, v in counts.items())}); primary metric: test {metric} of each "
        f"trial's selected epoch, in percent; differences in percentage points (pts) unless named _rel_pct. "
        f"Environment: " + "; ".join(f"{k} {', '.join(map(str, v))}" for k, v in env.items() if v) + ".",
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
        *[f"- {line}" for line in outcome_lines(tables["outcomes"])],
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
            markdown(restarted[["trial", "mode", "restarts", "restart_epochs"]]),
            "",
        ]
    for title, key, sentence in SECTIONS:
        text = sentence.format(
            level=level, power=o.power, alpha=o.alpha, board=o.board_power_w, carbon=o.carbon_kg_per_kwh
        )
        s += [f"## {title}", "", text, "", markdown(tables[key]), ""]
    if not tables["sources_pooled"].empty:
        s += [
            "## Where the noise comes from",
            "",
            "autotuner-only keeps every kernel deterministic but lets cuDNN time and pick them in each process; kernels-only "
            "fixes cuDNN's pick but allows non-deterministic kernels. *_share = that mode's within-seed variance / the paper "
            f"mode's, with its {level} F interval: 1 means that source alone reproduces all the paper's noise. sum_share near 1 "
            "(adds_up: its interval holds 1) is what two independent, additive sources would give; a sum well above 1 means each "
            "source alone already produces the full spread.",
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


def _finding(tables: dict, shift, o: ReportOptions) -> str:  # noqa: ANN001 (a mode_shift row)
    """One optimizer and mode in a sentence: the shift over seeds, typicality, noise, the paper's test."""

    def rows(name: str) -> pd.DataFrame:
        t = tables[name]
        return t[(t["optimizer"] == shift.optimizer) & (t["mode"] == shift.mode)]

    spread, typical, paper, share = (
        rows("table3_spread"),
        rows("typicality"),
        rows("table5_ttest").iloc[0],
        rows("seed_vs_cuda"),
    )
    if (spread["n_distinct"] <= 1).all():
        return (
            f"no run differed from its repeats in any of {len(spread)} configurations: no CUDA noise observed, "
            "so no test applies"
        )
    level = f"{1 - o.alpha:.0%}"
    if shift.seeds < 2:
        moved = f"det - mean = {_fmt(shift.shift_pts, '+.3f')} pts (one seed: a shift needs >= 2 seeds to test)"
    elif pd.isna(shift.p):
        moved = f"det - mean = {_fmt(shift.shift_pts, '+.3f')} pts in every one of {shift.seeds} seeds"
    else:
        moved = (
            f"det - mean = {_fmt(shift.shift_pts, '+.3f')} pts over {shift.seeds} seeds ({level} CI "
            f"{_fmt(shift.shift_lo, '+.3f')} to {_fmt(shift.shift_hi, '+.3f')}; p {p_value(shift.p)}, exact {p_value(shift.p_exact)})"
        )
    tested = int(typical["p"].notna().sum())
    typical_text = (
        f"det atypical in {int(typical['atypical'].sum())} of {tested} testable configurations (prediction test, Holm)"
        if tested
        else "no configuration varied enough to test det's typicality"
    )
    sd = spread["std_pts"].dropna()
    noise = f"noise sd {sd.median():.3f} pts (median over configurations)" if len(sd) else "noise sd –"
    if share.empty or pd.isna(share["share_cuda"].iloc[0]):
        noise += "; CUDA's share of the variance needs >= 2 seeds"
    else:
        c = share.iloc[0]
        noise += f"; CUDA noise {c['share_cuda']:.0%} of the variance" + (
            f" ({level} CI {c['share_cuda_lo']:.0%}-{c['share_cuda_hi']:.0%})" if pd.notna(c["share_cuda_lo"]) else ""
        )
    table5 = (
        f"paper's Table V: {paper['sig_holm']} of {paper['tested']} testable configurations significant after Holm "
        f"({paper['sig_unadjusted']} unadjusted; {paper['configs']} in all)"
    )
    return "; ".join([moved, typical_text, noise, table5])


def _summary(experiment: Experiment, tables: dict, out: Path, o: ReportOptions) -> str:
    lines = []
    if not tables["integrity"].empty:
        lines += ["!!! INTEGRITY " + integrity_text(tables)] + [
            f"!!!   {r.optimizer}/{r.seed}: {r.check}: {r.detail}" for r in tables["integrity"].itertuples()
        ]
    else:
        lines.append("Integrity " + integrity_text(tables))
    lines += outcome_lines(tables["outcomes"])
    if experiment.skipped:
        lines.append(f"Skipped while loading or scoring: {len(experiment.skipped)} item(s), listed in report.md")
    for r in tables["mode_shift"].itertuples():
        lines.append(f"{r.optimizer}, {r.mode}: {_finding(tables, r, o)}")
    lines += sources.source_lines(tables["sources_pooled"], tables["mode_cost"])
    lines.append(f"Report: {out / 'report.md'}")
    return "\n".join(lines)
