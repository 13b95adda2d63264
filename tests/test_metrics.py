"""Scores from predicted probabilities, through scikit-learn, and what AUC says when it cannot be computed."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from metrics import scores


def probs(rows):
    return np.array(rows, dtype=np.float64)


def test_binary_auc_is_scikit_learn_s():
    labels, p = np.array([0, 1, 1, 0]), probs([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    assert scores(labels, p, ("auc",), "macro")["auc"] == pytest.approx(roc_auc_score(labels, p[:, 1]))


def test_auc_with_one_class_present_is_nan_not_a_made_up_number():
    assert np.isnan(scores(np.array([1, 1, 1]), probs([[0.2, 0.8]] * 3), ("auc",), "macro")["auc"])


def test_multiclass_auc_with_a_class_missing_is_nan_and_with_all_present_is_ovr_macro():
    p = probs([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.5, 0.3, 0.2]])
    assert np.isnan(scores(np.array([0, 1, 1, 0]), p, ("auc",), "macro")["auc"])  # class 2 never appears
    labels = np.array([0, 1, 2, 0])
    expected = roc_auc_score(labels, p, multi_class="ovr", average="macro")
    assert scores(labels, p, ("auc", "accuracy"), "macro") == pytest.approx({"auc": expected, "accuracy": 1.0})
