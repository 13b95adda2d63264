"""Prediction churn and last-layer similarity, from the files each trial keeps beside its results
(predictions.npz, last_layer.npz), one configuration at a time so memory stays bounded."""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.stats import CONFIG, NONDET


def _pairs(trials: pd.DataFrame):
    """(optimizer, seed, trial folders of the non-deterministic repeats) per configuration."""
    done = trials[(trials["status"] == "finished") & (trials["mode"] == NONDET)]
    for (optimizer, seed), group in done.groupby(CONFIG, sort=True):
        yield optimizer, seed, group["trial"].tolist()


def churn(experiment_dir: Path, trials: pd.DataFrame) -> pd.DataFrame:
    """Fraction of test examples on which two non-deterministic repeats predict different classes;
    mean and max over all pairs of a configuration."""
    rows = []
    for optimizer, seed, names in _pairs(trials):
        preds = {}
        for name in names:
            path = experiment_dir / name / "predictions.npz"
            if path.is_file():
                preds[name] = np.load(path)["probs"].argmax(1)
        values = [float((preds[a] != preds[b]).mean()) for a, b in itertools.combinations(sorted(preds), 2)]
        rows.append({"optimizer": optimizer, "seed": seed, "pairs": len(values),
                     "churn_mean": np.mean(values) if values else np.nan, "churn_max": np.max(values) if values else np.nan})
    return pd.DataFrame(rows, columns=[*CONFIG, "pairs", "churn_mean", "churn_max"]).set_index(CONFIG)


def _last_layers(path: Path) -> dict[int, np.ndarray]:
    """Epoch -> the last layer's weight and bias, flattened into one vector."""
    parts: dict[int, list[np.ndarray]] = {}
    with np.load(path) as archive:
        for key in sorted(archive.files):
            epoch = int(key[1:5])
            parts.setdefault(epoch, []).append(archive[key].astype(np.float64).ravel())
    return {epoch: np.concatenate(p) for epoch, p in parts.items()}


def similarity(experiment_dir: Path, trials: pd.DataFrame) -> pd.DataFrame:
    """Cosine similarity of the last layer between non-deterministic repeats, per epoch: mean and
    min over pairs (the reference study's Figs. 2 and 3). 1 means identical weights."""
    rows = []
    for optimizer, seed, names in _pairs(trials):
        layers = {n: _last_layers(experiment_dir / n / "last_layer.npz") for n in names if (experiment_dir / n / "last_layer.npz").is_file()}
        if len(layers) < 2:
            continue
        epochs = sorted(set.intersection(*(set(v) for v in layers.values())))
        for epoch in epochs:
            sims = []
            for a, b in itertools.combinations(sorted(layers), 2):
                u, v = layers[a][epoch], layers[b][epoch]
                sims.append(float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v))))
            rows.append({"optimizer": optimizer, "seed": seed, "epoch": epoch, "pairs": len(sims),
                         "similarity_mean": float(np.mean(sims)), "similarity_min": float(np.min(sims))})
    return pd.DataFrame(rows, columns=[*CONFIG, "epoch", "pairs", "similarity_mean", "similarity_min"])
