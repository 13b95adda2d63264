"""Classification scores from predicted probabilities, through scikit-learn so they match everyone
else's. Shared like layout.py: the trainable scores its epochs with it, the analysis its ensembles."""

from __future__ import annotations

import numpy as np


def scores(labels: np.ndarray, probs: np.ndarray, names: tuple[str, ...], f1_average: str) -> dict[str, float]:
    """`names` out of accuracy, f1, auc; AUC is one-vs-rest macro for more than two classes."""
    from sklearn.metrics import accuracy_score, f1_score  # why: 0.6 s of import kept off a trial's start

    pred = probs.argmax(1)
    out: dict[str, float] = {}
    for name in names:
        if name == "accuracy":
            out[name] = float(accuracy_score(labels, pred))
        elif name == "f1":
            out[name] = float(f1_score(labels, pred, average=f1_average, zero_division=0))
        elif name == "auc":
            out[name] = _auc(labels, probs)
        else:
            raise ValueError(f"unknown metric {name!r}")
    return out


def _auc(labels: np.ndarray, probs: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    present = np.unique(labels)
    if len(present) < 2:
        return float("nan")  # why: AUC is undefined with one class; NaN says so, 0.5 would lie
    if probs.shape[1] == 2:
        return float(roc_auc_score(labels, probs[:, 1]))
    if len(present) < probs.shape[1]:
        return float("nan")
    return float(roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
