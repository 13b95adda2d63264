"""`python -m analysis report DIR --out OUT`: every table as Markdown and CSV, the figures, and a
compact summary for the terminal. Integrity problems come first and loudly."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis import artifacts, figures, stats
from analysis.load import Experiment


class ReportError(Exception):
    """An experiment the report cannot be made from; the message is one line."""


@dataclass(frozen=True)
class ReportOptions:
    alpha: float = 0.05  # significance level of every test
    board_power_w: float = 300.0  # Table VI estimate where no energy was recorded (an RTX A6000's board power)
    carbon_kg_per_kwh: float = 0.382  # Table VI: the reference study's figures imply 0.382 (Germany)
    deltas_pts: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)  # shifts (points) for the power table
    power: float = 0.8


def _check(experiment: Experiment) -> pd.DataFrame:
    trials = experiment.trials
    if trials.empty:
        raise ReportError(f"{experiment.path}: no trials (no folder with a params.json)")
    done = stats.finished(trials)
    if done.empty:
        raise ReportError(f"{experiment.path}: none of its {len(trials)} trials has finished")
    modes = set(done["mode"])
    if modes != {stats.DET, stats.NONDET}:
        raise ReportError(f"{experiment.path}: finished trials are all {next(iter(modes))}; the comparison needs both modes")
    return done


def _md(table: pd.DataFrame, digits: int = 3) -> str:
    return table.to_markdown(floatfmt=f".{digits}f")


def build(experiment: Experiment, out: Path, options: ReportOptions = ReportOptions()) -> str:
    """Write OUT/report.md, OUT/*.csv and OUT/*.png; return the terminal summary."""
    done = _check(experiment)
    out.mkdir(parents=True, exist_ok=True)
    metric = str(done["metric"].iloc[0]) if "metric" in done else "metric"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # why: identical scores make scipy warn; results say NaN
        tables = {
            "integrity": stats.integrity(experiment.trials),
            "table1_extremes": stats.table1_extremes(done),
            "table2_configurations": stats.table2_configurations(done),
            "table3_seed_optimizer": stats.table3_seed_optimizer(done),
            "table4_runtime": stats.table4_runtime(done),
        }
        tests = stats.ttests(done, options.alpha)
        tables.update({
            "table5_ttest": stats.table5_ttest_summary(tests), "ttests": tests,
            "table6_energy": stats.table6_energy(done, options.board_power_w, options.carbon_kg_per_kwh),
            "mode_tests": stats.mode_tests(done), "bootstrap": stats.bootstrap_intervals(done),
            "variance_share": stats.variance_share(done),
            "power": stats.power_table(done, options.deltas_pts, options.alpha, options.power),
            "churn": artifacts.churn(experiment.path, experiment.trials),
            "similarity": artifacts.similarity(experiment.path, experiment.trials),
        })
    for name, table in tables.items():
        table.to_csv(out / f"{name}.csv")
    pngs = [figures.metric_distribution(done, metric, out), figures.runtime_by_mode(experiment.trials, out)]
    if not tables["similarity"].empty:
        pngs.append(figures.similarity_curves(tables["similarity"], out))
    if tables["churn"]["churn_mean"].notna().any():
        pngs.append(figures.churn_bars(tables["churn"], out))
    (out / "report.md").write_text(_markdown(experiment, done, metric, tables, pngs, options))
    return _summary(experiment, done, metric, tables, out)


def _integrity_text(tables: dict) -> str:
    problems = tables["integrity"]
    if problems.empty:
        return "OK: deterministic repeats are bit-identical and every repeat of a configuration started from the same weights and data."
    return f"FAILED: {len(problems)} problem(s); differences below may not be CUDA noise alone."


def _markdown(experiment: Experiment, done: pd.DataFrame, metric: str, tables: dict, pngs: list[Path], o: ReportOptions) -> str:
    t = experiment.trials
    counts = t["status"].value_counts().to_dict()
    env = {k[4:]: t[k].dropna().unique().tolist() for k in t.columns if k.startswith("env_") and k[4:] in ("gpu", "torch", "cuda", "cudnn", "driver", "ray")}
    s = [f"# CUDA-randomness report: {experiment.path.name}", "",
         f"{len(t)} trials ({', '.join(f'{v} {k}' for k, v in counts.items())}); primary metric: test {metric} of each "
         f"trial's selected epoch, in percent. Environment: " + "; ".join(f"{k} {', '.join(map(str, v))}" for k, v in env.items() if v) + ".", ""]
    if experiment.skipped:
        s += ["Skipped while loading:", "", *[f"- {line}" for line in experiment.skipped], ""]
    s += ["## Integrity of the determinism contract", "", f"**{_integrity_text(tables)}**", ""]
    if not tables["integrity"].empty:
        s += [tables["integrity"].to_markdown(index=False), ""]
    restarted = t[t["restarts"].fillna(0).astype(float) > 0] if "restarts" in t else t.iloc[:0]
    if len(restarted):
        s += ["## Restarts", "", f"{len(restarted)} trial(s) continued from a checkpoint after a failure or an interrupted "
              "study (a deterministic one must still match its repeats above):", "",
              restarted[["trial", "mode", "restarts", "restart_epochs"]].to_markdown(index=False), ""]
    sections = [
        ("Table I: best and worst runs", "table1_extremes", "The spread between the best and worst run of an optimizer, seeds and CUDA noise together."),
        ("Table II: deterministic vs non-deterministic, per configuration", "table2_configurations",
         "diff_pct = (det - nondet mean) / nondet mean x 100; max_dev_pct = largest |run - det| / det x 100: how far one unlucky run can land from the reproducible one."),
        ("Table III: per seed and optimizer", "table3_seed_optimizer",
         "std_pts and range_pts are in percentage points over the non-deterministic repeats: the noise a single reported number carries."),
        ("Table IV: runtime", "table4_runtime", "Minutes per trial; diff_pct = (nondet - det) / det x 100, negative when the deterministic runs were slower."),
        ("Table V: one-sample t-test against the deterministic score", "table5_ttest",
         f"A configuration is significant when its non-deterministic mean differs from its deterministic score at p < {o.alpha}; the Holm column corrects for testing many configurations at once."),
        ("Per-configuration t-tests", "ttests", "dev_pct = |nondet mean - det| / det x 100."),
        ("Table VI: energy and CO2", "table6_energy",
         f"kWh from the GPU's energy counter where recorded (measured), otherwise {o.board_power_w:g} W x runtime x GPU share; CO2 at {o.carbon_kg_per_kwh:g} kg per kWh."),
        ("Welch and Brown-Forsythe tests between the modes", "mode_tests",
         "Welch asks whether the two modes have different means, Brown-Forsythe whether they have different spreads; both need two or more deterministic repeats."),
        ("Bootstrap 95% intervals", "bootstrap", "Where the mean and the std of the non-deterministic scores could plausibly lie, given this many repeats (percentile bootstrap, 2000 resamples)."),
        ("Seed vs CUDA noise", "variance_share",
         "share_cuda is the part of the non-deterministic runs' variance that remains with the seed fixed (CUDA noise); share_seed is what changing the seed adds."),
        ("Repeats needed", "power",
         f"How many non-deterministic repeats a one-sample t-test needs to detect a true shift of that many points with power {o.power:g} at alpha {o.alpha:g}, given the observed noise."),
        ("Prediction churn", "churn", "The fraction of test examples two repeats of one configuration classify differently, even when their scores agree."),
    ]
    for title, key, sentence in sections:
        s += [f"## {title}", "", sentence, "", _md(tables[key]), ""]
    sim = tables["similarity"]
    if not sim.empty:
        last = sim[sim["epoch"] == sim.groupby(["optimizer", "seed"])["epoch"].transform("max")]
        s += ["## Last-layer similarity", "", "Cosine similarity of the last layer's weights between non-deterministic repeats "
              "(the paper's Figs. 2 and 3); 1 means identical. Last epoch shown; every epoch is in similarity.csv.", "",
              _md(last.set_index(["optimizer", "seed"]), 4), ""]
    s += ["## Figures", "", *[f"![{p.stem}]({p.name})" for p in pngs], ""]
    return "\n".join(s)


def _summary(experiment: Experiment, done: pd.DataFrame, metric: str, tables: dict, out: Path) -> str:
    lines = []
    if not tables["integrity"].empty:
        lines += ["!!! INTEGRITY " + _integrity_text(tables)] + [f"!!!   {r.optimizer}/{r.seed}: {r.check}: {r.detail}" for r in tables["integrity"].itertuples()]
    else:
        lines.append("Integrity " + _integrity_text(tables))
    if experiment.skipped:
        lines.append(f"Skipped while loading: {len(experiment.skipped)} item(s), listed in report.md")
    t5, share = tables["table5_ttest"], tables["variance_share"]
    t2 = tables["table2_configurations"]
    for optimizer in t5.index:
        row = t5.loc[optimizer]
        worst = t2.loc[optimizer, "max_dev_pct"].max()
        cuda = share.loc[optimizer, "share_cuda"] if optimizer in share.index else float("nan")
        lines.append(f"{optimizer}: {row['sig_configs']} configurations differ significantly from deterministic "
                     f"(Holm {row['sig_configs_holm']}); mean |deviation| {row['avg_dev_all_pct']:.3f}%, "
                     f"worst single run {worst:.2f}% off; CUDA noise is {cuda:.0%} of the variance")
    lines.append(f"Report: {out / 'report.md'}")
    return "\n".join(lines)
