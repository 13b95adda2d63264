"""The report's figures (matplotlib, no display needed)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.stats import DET, NONDET  # noqa: E402


def _optimizer_axes(n: int, width: float = 5.5, height: float = 4.0):
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False, constrained_layout=True)
    return fig, axes[0]


def metric_distribution(done: pd.DataFrame, metric: str, out: Path) -> Path:
    """Each configuration's non-deterministic scores (dots and box) and its deterministic score (diamond)."""
    optimizers = sorted(done["optimizer"].unique())
    fig, axes = _optimizer_axes(len(optimizers))
    for ax, optimizer in zip(axes, optimizers):
        group = done[done["optimizer"] == optimizer]
        seeds = sorted(group["seed"].unique())
        for x, seed in enumerate(seeds):
            nondet = group[(group["seed"] == seed) & (group["mode"] == NONDET)]["score"].to_numpy()
            det = group[(group["seed"] == seed) & (group["mode"] == DET)]["score"].to_numpy()
            if len(nondet):
                ax.boxplot([nondet], positions=[x], widths=0.5, showfliers=False, medianprops={"color": "tab:blue"})
                jitter = np.linspace(-0.12, 0.12, len(nondet)) if len(nondet) > 1 else np.zeros(1)
                ax.scatter(x + jitter, nondet, s=14, color="tab:blue", alpha=0.7, label="non-deterministic" if x == 0 else None, zorder=3)
            if len(det):
                ax.scatter([x] * len(det), det, marker="D", s=50, color="tab:red", label="deterministic" if x == 0 else None, zorder=4)
        ax.set_xticks(range(len(seeds)), [str(s) for s in seeds])
        ax.set_xlabel("seed")
        ax.set_ylabel(f"test {metric} (%)")
        ax.set_title(optimizer)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    fig.suptitle(f"Test {metric} per configuration: CUDA noise (blue) around the deterministic run (red)")
    return _save(fig, out / "metric_distribution.png")


def similarity_curves(sim: pd.DataFrame, out: Path) -> Path:
    """Mean (solid) and minimum (dashed) last-layer cosine similarity between repeats, per epoch."""
    optimizers = sorted(sim["optimizer"].unique())
    fig, axes = _optimizer_axes(len(optimizers))
    for ax, optimizer in zip(axes, optimizers):
        group = sim[sim["optimizer"] == optimizer]
        for i, (seed, curve) in enumerate(group.groupby("seed")):
            color = f"C{i}"
            ax.plot(curve["epoch"], curve["similarity_mean"], color=color, label=f"seed {seed} mean")
            ax.plot(curve["epoch"], curve["similarity_min"], color=color, linestyle="--", label=f"seed {seed} min")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("cosine similarity of the last layer")
        ax.set_title(optimizer)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    fig.suptitle("Last-layer similarity between non-deterministic repeats (1 = identical)")
    return _save(fig, out / "similarity.png")


def churn_bars(churn: pd.DataFrame, out: Path) -> Path:
    """Mean (bar) and largest (marker) prediction churn between repeats, per configuration."""
    table = churn.reset_index().dropna(subset=["churn_mean"])
    labels = [f"{o}\nseed {s}" for o, s in zip(table["optimizer"], table["seed"])]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.8 * len(table) + 2), 4.0), constrained_layout=True)
    x = np.arange(len(table))
    ax.bar(x, table["churn_mean"] * 100, color="tab:blue", label="mean over pairs")
    ax.scatter(x, table["churn_max"] * 100, color="tab:red", marker="_", s=300, label="largest pair", zorder=3)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("test examples predicted differently (%)")
    ax.set_ylim(bottom=0)
    ax.set_title("Prediction churn between non-deterministic repeats")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out / "churn.png")


def runtime_by_mode(trials: pd.DataFrame, out: Path) -> Path:
    """Runtime of each finished trial in minutes, by optimizer and mode."""
    done = trials[trials["status"] == "finished"]
    groups = [(o, m) for o in sorted(done["optimizer"].unique()) for m in (DET, NONDET)]
    data = [done[(done["optimizer"] == o) & (done["mode"] == m)]["runtime_s"].astype(float).to_numpy() / 60 for o, m in groups]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.4 * len(groups) + 1), 4.0), constrained_layout=True)
    keep = [i for i, d in enumerate(data) if len(d)]
    ax.boxplot([data[i] for i in keep], positions=keep, widths=0.5)
    ax.set_xticks(range(len(groups)), [f"{o}\n{'det' if m == DET else 'non-det'}" for o, m in groups])
    ax.set_ylabel("runtime per trial (min)")
    ax.set_title("Runtime by mode")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, out / "runtime.png")


def _save(fig, path: Path) -> Path:  # noqa: ANN001
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
