"""The report's figures (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from analysis.cells import DET, noisy_modes  # noqa: E402


def _optimizer_axes(n: int, width: float = 5.5, height: float = 4.0):
    fig, axes = plt.subplots(1, n, figsize=(max(7.0, width * n), height), squeeze=False, constrained_layout=True)
    return fig, axes[0]


def metric_distribution(done: pd.DataFrame, metric: str, out: Path) -> Path:
    """Each configuration's noisy runs per mode (dots and box) and its deterministic score (diamond)."""
    optimizers = sorted(done["optimizer"].unique())
    modes = noisy_modes(done)
    width = 0.7 / max(1, len(modes))
    fig, axes = _optimizer_axes(len(optimizers))
    for ax, optimizer in zip(axes, optimizers):
        group = done[done["optimizer"] == optimizer]
        seeds = sorted(group["seed"].unique())
        for x, seed in enumerate(seeds):
            runs = group[group["seed"] == seed]
            for i, mode in enumerate(modes):
                scores = runs.loc[runs["mode"] == mode, "score"].to_numpy()
                if not len(scores):
                    continue
                pos = x + (i - (len(modes) - 1) / 2) * width
                ax.boxplot(
                    [scores], positions=[pos], widths=width * 0.8, showfliers=False, medianprops={"color": f"C{i}"}
                )
                jitter = np.linspace(-width / 4, width / 4, len(scores)) if len(scores) > 1 else np.zeros(1)
                ax.scatter(
                    pos + jitter, scores, s=14, color=f"C{i}", alpha=0.7, label=mode if x == 0 else None, zorder=3
                )
            det = runs.loc[runs["mode"] == DET, "score"].to_numpy()
            if len(det):
                ax.scatter([x], det[:1], marker="D", s=50, color="black", label=DET if x == 0 else None, zorder=4)
        ax.set_xticks(range(len(seeds)), [str(s) for s in seeds])
        ax.set_xlabel("seed")
        ax.set_ylabel(f"test {metric} (%)")
        ax.set_title(optimizer)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    fig.suptitle(f"Test {metric}: each noisy mode's runs beside the deterministic run (black)")
    return _save(fig, out / "metric_distribution.png")


def similarity_curves(sim: pd.DataFrame, out: Path) -> Path:
    """Mean (solid) and largest (dashed) 1 - cosine similarity of the last layer between runs that
    differ, per epoch, on a log scale (the cosine itself reads 1.0000 for all of them)."""
    optimizers = sorted(sim["optimizer"].unique())
    fig, axes = _optimizer_axes(len(optimizers))
    for ax, optimizer in zip(axes, optimizers):
        group = sim[(sim["optimizer"] == optimizer) & sim["one_minus_cos_mean"].notna()]
        for i, ((seed, mode), curve) in enumerate(group.groupby(["seed", "mode"])):
            label = f"seed {seed}" + (f" {mode}" if group["mode"].nunique() > 1 else "")
            ax.plot(curve["epoch"], curve["one_minus_cos_mean"], color=f"C{i}", label=f"{label} mean")
            ax.plot(curve["epoch"], curve["one_minus_cos_max"], color=f"C{i}", linestyle="--", label=f"{label} max")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("1 - cosine similarity of the last layer")
        ax.set_title(optimizer)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    fig.suptitle("How far the last layers of differing runs drift apart (identical pairs left out)")
    return _save(fig, out / "similarity.png")


def churn_bars(churn: pd.DataFrame, out: Path) -> Path:
    """Mean (bar) and largest (marker) prediction churn between repeats, per configuration."""
    table = churn.dropna(subset=["churn_mean"])
    labels = [
        f"{o}\nseed {s}" + (f"\n{m}" if table["mode"].nunique() > 1 else "")
        for o, s, m in zip(table["optimizer"], table["seed"], table["mode"])
    ]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.8 * len(table) + 2), 4.0), constrained_layout=True)
    x = np.arange(len(table))
    ax.bar(x, table["churn_mean"] * 100, color="tab:blue", label="mean over differing pairs")
    ax.scatter(x, table["churn_max"] * 100, color="tab:red", marker="_", s=300, label="largest pair", zorder=3)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("test examples predicted differently (%)")
    ax.set_ylim(bottom=0)
    ax.set_title("Prediction churn between runs whose weights differ")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out / "churn.png")


def runtime_by_mode(trials: pd.DataFrame, out: Path) -> Path:
    """Runtime of each finished trial in minutes, by optimizer and mode."""
    done = trials[trials["status"] == "finished"]
    groups = [(o, m) for o in sorted(done["optimizer"].unique()) for m in (DET, *noisy_modes(done))]
    data = [
        done[(done["optimizer"] == o) & (done["mode"] == m)]["runtime_s"].astype(float).to_numpy() / 60
        for o, m in groups
    ]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.4 * len(groups) + 1), 4.0), constrained_layout=True)
    keep = [i for i, d in enumerate(data) if len(d)]
    ax.boxplot([data[i] for i in keep], positions=keep, widths=0.5)
    ax.set_xticks(range(len(groups)), [f"{o}\n{m}" for o, m in groups], fontsize=8)
    ax.set_ylabel("runtime per trial (min)")
    ax.set_title("Runtime by mode")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, out / "runtime.png")


def which_source(table: pd.DataFrame, out: Path) -> Path:
    """Each arm's sd of the primary metric with its interval, and the share of test predictions two
    of its runs disagree on, per optimizer, over all seeds (`table`: analysis.arms.pooled_rows)."""
    optimizers = sorted(table["optimizer"].unique())
    fig, axes = plt.subplots(
        len(optimizers), 2, figsize=(10, 0.5 * len(table) + 2.5), squeeze=False, constrained_layout=True
    )
    for (left, right), optimizer in zip(axes, optimizers):
        rows = table[table["optimizer"] == optimizer].iloc[::-1]
        y = np.arange(len(rows))
        sd = rows["sd_pts"].fillna(0).to_numpy()
        err = np.vstack(
            [sd - rows["sd_lo"].fillna(rows["sd_pts"]).fillna(0), rows["sd_hi"].fillna(rows["sd_pts"]).fillna(0) - sd]
        )
        left.barh(y, sd, xerr=err, color=["C3" if a == "all" else "C0" for a in rows["arm"]], capsize=3)
        left.set_yticks(y, rows["arm"])
        left.set_xlabel("sd of the primary metric (points), 95% interval")
        left.set_title(f"{optimizer}: spread over runs")
        right.barh(y, rows["disagreement_pct"].fillna(0), color="C1")
        right.set_yticks(y, [""] * len(y))
        right.set_xlabel("test predictions two runs disagree on (%)")
        right.set_title("disagreement")
        for ax in (left, right):
            ax.grid(axis="x", alpha=0.3)
    fig.suptitle("Which source of randomness matters (red: every source together)")
    return _save(fig, out / "which_source.png")


def _save(fig, path: Path) -> Path:  # noqa: ANN001
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
