"""Prediction churn and last-layer similarity, from the files each trial keeps beside its results
(predictions.npz, last_layer.npz), one configuration at a time so memory stays bounded.

Two runs with the same weights digest are the same model: their churn is 0 and their layers are
equal by construction. Such pairs are counted apart (identical_pairs) and the averages run over
the pairs that differ, so copies do not dilute how far differing runs drift apart.
"""

from __future__ import annotations

import itertools
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.cells import CELL, DET
from layout import LAST_LAYER_FILE, PREDICTIONS_FILE, parse_epoch_key

UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


def _runs(trials: pd.DataFrame) -> Iterator[tuple[str, int, str, pd.DataFrame]]:
    """(optimizer, seed, noisy mode or arm, its finished runs) per cell."""
    arm = trials["arm"] if "arm" in trials else trials["mode"]  # why: an arm's runs are deterministic, not the control
    done = trials[(trials["status"] == "finished") & (arm != DET)].assign(mode=arm)
    for (optimizer, seed, mode), group in done.groupby(CELL, sort=True):
        yield optimizer, seed, mode, group


def churn(experiment_dir: Path, trials: pd.DataFrame, skipped: list[str]) -> pd.DataFrame:
    """Fraction of test examples on which two runs of a cell predict different classes: mean and
    max over the pairs whose weights differ. Pairs whose runs selected different epochs (best
    validation selection) mix selection with CUDA noise and are counted in diff_epoch_pairs."""
    rows = []
    for optimizer, seed, mode, group in _runs(trials):
        preds: dict[str, tuple[np.ndarray, int]] = {}
        for name in group["trial"]:
            path = experiment_dir / name / PREDICTIONS_FILE
            if not path.is_file():
                continue
            try:
                with np.load(path) as archive:
                    preds[name] = archive["probs"].argmax(1), int(archive["epoch"])
            except UNREADABLE as exc:
                skipped.append(f"{path}: unreadable ({type(exc).__name__}), left out of churn")
        digest = dict(zip(group["trial"], group["weights_sha256"]))
        pairs = list(itertools.combinations(sorted(preds), 2))
        identical = [(a, b) for a, b in pairs if digest[a] == digest[b]]
        values = [float((preds[a][0] != preds[b][0]).mean()) for a, b in pairs if digest[a] != digest[b]]
        note = (
            "no predictions saved"
            if not preds
            else "one run with predictions"
            if len(preds) == 1
            else "every pair is bit-identical"
            if not values
            else ""
        )
        rows.append(
            {
                "optimizer": optimizer,
                "seed": seed,
                "mode": mode,
                "pairs": len(pairs),
                "identical_pairs": len(identical),
                "churn_mean": np.mean(values) if values else np.nan,
                "churn_max": np.max(values) if values else np.nan,
                "diff_epoch_pairs": sum(preds[a][1] != preds[b][1] for a, b in pairs),
                "note": note,
            }
        )
    return pd.DataFrame(
        rows, columns=[*CELL, "pairs", "identical_pairs", "churn_mean", "churn_max", "diff_epoch_pairs", "note"]
    )


def _last_layers(path: Path) -> dict[int, np.ndarray]:
    """Epoch -> the last layer's weight and bias, flattened into one vector."""
    parts: dict[int, list[np.ndarray]] = {}
    with np.load(path) as archive:
        for key in sorted(archive.files):
            epoch, _ = parse_epoch_key(key)
            parts.setdefault(epoch, []).append(archive[key].astype(np.float64).ravel())
    return {epoch: np.concatenate(p) for epoch, p in parts.items()}


def similarity(experiment_dir: Path, trials: pd.DataFrame, skipped: list[str]) -> pd.DataFrame:
    """1 - cosine similarity of the last layer between runs of a cell, per epoch (the reference
    study's Figs. 2 and 3 plot the cosine, which reads 1.0000 for runs that differ by 1e-8):
    pairs with equal layers are counted in identical_pairs, mean and max over the others."""
    rows = []
    for optimizer, seed, mode, group in _runs(trials):
        layers = {}
        for name in group["trial"]:
            path = experiment_dir / name / LAST_LAYER_FILE
            if path.is_file():
                try:
                    layers[name] = _last_layers(path)
                except UNREADABLE as exc:
                    skipped.append(f"{path}: unreadable ({type(exc).__name__}), left out of similarity")
        if len(layers) < 2:
            continue
        for epoch in sorted(set.intersection(*(set(v) for v in layers.values()))):
            distances, identical = [], 0
            for a, b in itertools.combinations(sorted(layers), 2):
                u, v = layers[a][epoch], layers[b][epoch]
                if np.array_equal(u, v):
                    identical += 1
                    continue
                norms = np.linalg.norm(u) * np.linalg.norm(v)
                distances.append(float(1 - u @ v / norms) if norms > 0 else np.nan)
            rows.append(
                {
                    "optimizer": optimizer,
                    "seed": seed,
                    "mode": mode,
                    "epoch": epoch,
                    "pairs": identical + len(distances),
                    "identical_pairs": identical,
                    "one_minus_cos_mean": float(np.nanmean(distances)) if distances else np.nan,
                    "one_minus_cos_max": float(np.nanmax(distances)) if distances else np.nan,
                }
            )
    return pd.DataFrame(
        rows, columns=[*CELL, "epoch", "pairs", "identical_pairs", "one_minus_cos_mean", "one_minus_cos_max"]
    )
