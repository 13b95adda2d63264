"""The end-of-run table: one row per configuration and arm (a mode, or a source of randomness varied
alone), and the trials that did not finish.

Pure pandas over one row per trial, read from the experiment directory itself (the same loader the
analysis uses), so it is tested without Ray and shows what is on disk, not what Tune remembers.
"""

from __future__ import annotations

import pandas as pd

from analysis.cells import broken_inputs
from layout import CONFIG_KEYS, DETERMINISTIC

KEYS = [*CONFIG_KEYS, "arm"]  # an arm is a CUDA mode, or one source of randomness varied
STATUS = {"finished": "finished", "errored": "failed", "running": "stopped"}  # the loader's words -> the summary's


def summary_rows(trials: pd.DataFrame) -> pd.DataFrame:
    """The loader's trials table (analysis.load_experiment) as the summary's rows."""
    from sweeps.grid import trial_label

    rows = trials.copy()
    rows["status"] = rows["status"].map(STATUS)
    rows["label"] = [trial_label(r) for r in rows[["optimizer", "seed", "mode", "arm", "repeat"]].to_dict("records")]
    return rows


def _digest_verdict(group: pd.DataFrame) -> str:
    digests = group["weights_sha256"].dropna()
    if len(digests) == 0:
        return "-"
    distinct = digests.nunique()
    if group.name[-1] == DETERMINISTIC:  # type: ignore[attr-defined]
        if len(digests) == 1:
            return "1 run only"
        return "yes" if distinct == 1 else f"NO ({distinct} digests)"
    return f"{distinct} of {len(digests)} differ" if distinct > 1 else f"all {len(digests)} equal"


def summarize(trials: pd.DataFrame) -> pd.DataFrame:
    """trials: one row per trial with KEYS, status, final_metric, weights/init/data_sha256."""
    if "arm" not in trials:  # a table of a study made before arms: each mode is its own arm
        trials = trials.assign(arm=trials["mode"])
    done = trials[trials["status"] == "finished"]
    groups = trials.groupby(KEYS, sort=True)
    table = pd.DataFrame({"done": groups["status"].apply(lambda s: f"{(s == 'finished').sum()}/{len(s)}")})
    stats = done.groupby(KEYS)["final_metric"].agg(["mean", "std", "min", "max"])
    table = table.join(stats)
    table["same weights"] = done.groupby(KEYS).apply(_digest_verdict, include_groups=False) if len(done) else "-"
    # why: repeats of a configuration must start from the same weights and see the same data, but
    # where their arm varies one of them (analysis.cells.broken_inputs says which)
    broken = {(p["optimizer"], p["seed"]) for p in broken_inputs(done)}
    table["same init+data"] = [
        ("NO" if (o, s) in broken else "yes") if len(done[(done["optimizer"] == o) & (done["seed"] == s)]) else "-"
        for o, s, _ in table.index
    ]
    return table.fillna({"same weights": "-"})


def format_summary(trials: pd.DataFrame, metric: str) -> str:
    table = summarize(trials)
    with pd.option_context(
        "display.width",
        200,
        "display.max_columns",
        20,
        "display.max_rows",
        500,
        "display.float_format",
        "{:.4f}".format,
    ):
        text = f"{metric} of each trial's selected epoch, per configuration and arm:\n{table.to_string()}"
    failed = trials[trials["status"] != "finished"]
    if len(failed):
        lines = [
            f"  {r.label} ({r.status}): {r.error if isinstance(r.error, str) else 'interrupted, continues on the next run'}"
            for r in failed.itertuples()
        ]
        text += f"\n{len(failed)} trial(s) did not finish:\n" + "\n".join(lines)
    return text
