"""Scores and the unit of replication: what every statistic in analysis/ is computed over.

A *configuration* is one (optimizer, seed). Its deterministic repeats are bit-identical by the
contract (the integrity check says when they are not), so together they are ONE observation: the
deterministic score. Each other mode present (the paper's "nondeterministic", and any mode that
takes it apart) is a *noisy mode*; a configuration's runs in one noisy mode are a *cell*.

Runs of a cell that end with the same weights_sha256 landed on one outcome (the autotuner picked
the same kernels, or no kernel differed). Each run is a fresh process, so such copies are
independent draws of a discrete variable that happened to agree, and how often each outcome occurs
is information: every statistic uses every run, frequencies kept (analysis.inference). n_distinct
describes how lumpy the runs are; no test is computed on distinct outcomes alone, which discards
the frequencies (statistics-2.md: 0% power against changed outcome frequencies).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.inference import sd, varies
from layout import ARMS, CONFIG_KEYS, DETERMINISTIC, DIGEST_VARIED_BY, PAPER_NOISY

CONFIG = list(CONFIG_KEYS)
CELL = [*CONFIG_KEYS, "mode"]
DET = DETERMINISTIC


@dataclass(frozen=True)
class Scored:
    """Finished trials that have a finite score, and one note per trial left out or patched."""

    done: pd.DataFrame
    notes: list[str]
    nan_trials: tuple[str, ...]  # finished trials whose score is NaN, left out of `done`
    nan_configs: frozenset[tuple[str, int, str]] = frozenset()  # (optimizer, seed, mode) of those trials


def finished(trials: pd.DataFrame) -> Scored:
    """Finished trials with `score` = the primary test metric of the selected epoch, in percent.

    A trial whose last result lacks final_metric (an older trainable) is scored by its last
    epoch's metric; a NaN score (AUC with one class present) is left out. Both are noted here,
    once, so that no table drops or patches a trial silently.
    """
    done = trials[trials["status"] == "finished"].copy()
    notes: list[str] = []
    final = pd.to_numeric(done.get("final_metric", pd.Series(np.nan, index=done.index)), errors="coerce")
    last = pd.to_numeric(done.get("last_metric", pd.Series(np.nan, index=done.index)), errors="coerce")
    reported = done["final_metric_reported"] if "final_metric_reported" in done else pd.Series(True, index=done.index)
    patched = ~reported.astype(bool) & last.notna()
    for name in done.loc[patched, "trial"]:
        notes.append(f"{name}: no final_metric in its last result; scored by its last epoch's metric")
    score = final.where(~patched, last)
    nan_trials = tuple(done.loc[score.isna(), "trial"])
    notes += [
        f"{name}: score is NaN (e.g. AUC with one class present); excluded from every table" for name in nan_trials
    ]
    # why: x100 turns 0.933 into 93.30000000000001; the rounding keeps that noise out of the CSVs
    done["score"] = (score * 100).round(10)
    if "arm" in done:  # why: every table compares arms as it compares modes; the CUDA mode stays beside
        done["cuda_mode"], done["mode"] = done["mode"], done["arm"]
    nan_rows = done[done["score"].isna()]
    nan_configs = frozenset(zip(nan_rows["optimizer"], nan_rows["seed"], nan_rows["mode"]))
    return Scored(done[done["score"].notna()], notes, nan_trials, nan_configs)


def noisy_modes(done: pd.DataFrame) -> list[str]:
    """Every mode (arm) but deterministic present in `done`: the paper's first, then the other CUDA
    modes by name, then the sources of randomness in layout.ARMS' order."""
    modes = set(done["mode"]) - {DET}
    return sorted(modes, key=lambda m: (m != PAPER_NOISY, m in ARMS, ARMS.index(m) if m in ARMS else 0, m))


@dataclass(frozen=True)
class Cell:
    """One configuration's runs in one noisy mode, and its deterministic observation."""

    optimizer: str
    seed: int
    mode: str
    det: float  # the deterministic score (mean of its bit-identical repeats); NaN if none is scored
    det_digest: str | None
    scores: np.ndarray  # every run of the noisy mode, in percent
    digests: np.ndarray  # weights_sha256 of each run, aligned with scores
    det_nan: bool = False  # a deterministic run finished but scored NaN (excluded, listed)

    @property
    def n(self) -> int:
        return len(self.scores)

    @property
    def mean(self) -> float:
        """The noisy runs' mean score, exactly their score where they all agree; NaN with no run."""
        if not self.n:
            return np.nan
        return float(self.scores[0]) if not varies(self.scores) else float(self.scores.mean())

    @property
    def sd(self) -> float:
        """The runs' standard deviation: exactly 0 where they all agree (inference.sd)."""
        return sd(self.scores)

    @property
    def diff(self) -> float:
        """det - mean, in points: the sign and unit of every table."""
        return self.det - self.mean

    @property
    def n_distinct(self) -> int:
        return len(set(self.digests))

    @property
    def modal_share(self) -> float:
        """The share of runs on the most frequent outcome (1: every run the same)."""
        return float(pd.Series(self.digests).value_counts().iloc[0] / self.n) if self.n else np.nan

    @property
    def n_equal_det(self) -> int:
        return int((self.digests == self.det_digest).sum()) if self.det_digest is not None else 0

    @property
    def det_missing(self) -> str:
        """Why the cell has no deterministic score, or "" when it has one."""
        if not np.isnan(self.det):
            return ""
        return "the deterministic run scored NaN (excluded)" if self.det_nan else "no deterministic run finished"

    @property
    def copies_note(self) -> str:
        """How lumpy the runs are, or "" when every run is its own outcome (or all are one)."""
        if self.n_distinct in (1, self.n):  # all alike says "no variation" instead
            return ""
        return f"{self.n - self.n_distinct} of {self.n} runs repeat an earlier run's outcome ({self.n_distinct} distinct outcomes)"


def cells(done: pd.DataFrame, nan_configs: frozenset = frozenset()) -> Iterator[Cell]:
    """Every (optimizer, seed, noisy mode) with at least one run or a deterministic score;
    nan_configs (Scored.nan_configs) tells a NaN-scored deterministic run from a missing one."""
    for mode in noisy_modes(done):
        for (optimizer, seed), group in done.groupby(CONFIG, sort=True):
            det = group[group["mode"] == DET]
            noisy = group[group["mode"] == mode]
            if noisy.empty and det.empty:
                continue
            yield Cell(
                optimizer=optimizer,
                seed=seed,
                mode=mode,
                det=float(det["score"].mean()) if len(det) else np.nan,
                det_digest=det["weights_sha256"].iloc[0] if len(det) else None,
                scores=noisy["score"].to_numpy(dtype=float),
                digests=noisy["weights_sha256"].astype(str).to_numpy(),
                det_nan=(optimizer, seed, DET) in nan_configs,
            )


def cell_key(cell: Cell) -> dict[str, object]:
    return {"optimizer": cell.optimizer, "seed": cell.seed, "mode": cell.mode}


def broken_inputs(done: pd.DataFrame) -> list[dict[str, object]]:
    """Where a configuration's trials do not share what their arms keep fixed: every digest of
    layout.DIGEST_VARIED_BY must be one value over the trials whose arm does not vary it (every
    trial of a study made before arms); an arm that varies it must move it in every run (else the
    arm did not do what it says); a bitflip run must start from the control's weights, one bit away.
    One problem per row: optimizer, seed, check, detail. `done` is the loader's trials table."""
    problems = []
    arm = done["arm"] if "arm" in done else done["mode"]
    for (optimizer, seed), group in done.groupby(CONFIG, sort=True):
        arms = arm.loc[group.index]
        names = group["trial"] if "trial" in group else group.index.astype(str).to_series(index=group.index)
        for column, varied_by in DIGEST_VARIED_BY.items():
            if column not in group or group[column].isna().all():
                continue  # a study made before this digest existed
            kept = group.loc[~arms.isin(varied_by), column].dropna()
            if kept.nunique() > 1:
                problems.append(
                    _problem(
                        optimizer,
                        seed,
                        f"all repeats share {column}",
                        f"{kept.nunique()} different digests over {len(kept)} repeats",
                    )
                )
            moved = group.loc[arms.isin(varied_by), [column]].dropna().assign(trial=names)
            stayed = moved[moved[column].isin(set(kept))]
            if len(kept) and len(stayed):
                problems.append(
                    _problem(
                        optimizer,
                        seed,
                        f"arms that vary it move {column}",
                        f"{', '.join(stayed['trial'][:3])} kept the control's",
                    )
                )
        flips = group[arms == "bitflip"]
        if len(flips) and "bitflip_changed_bits" in group:
            control = group.loc[~arms.isin(DIGEST_VARIED_BY["init_sha256"]), "init_sha256"].dropna()
            bad = flips[
                (flips["bitflip_changed_bits"] != 1) | ~flips["bitflip_unflipped_init_sha256"].isin(set(control))
            ]
            if len(bad):
                problems.append(
                    _problem(
                        optimizer,
                        seed,
                        "a bitflip run is the control's weights with one bit changed",
                        f"{', '.join(names[bad.index][:3])}",
                    )
                )
    return problems


def _problem(optimizer: str, seed: int, check: str, detail: str) -> dict[str, object]:
    return {"optimizer": optimizer, "seed": seed, "check": check, "detail": detail}
