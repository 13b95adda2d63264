import pandas as pd

from sweeps.summary import format_summary, summarize


def rows() -> pd.DataFrame:
    base = {"status": "finished", "init_sha256": "i", "data_sha256": "d", "error": None}
    data = [
        {
            "optimizer": "adam",
            "seed": 0,
            "mode": "deterministic",
            "repeat": 0,
            "final_metric": 0.90,
            "weights_sha256": "A",
            **base,
        },
        {
            "optimizer": "adam",
            "seed": 0,
            "mode": "deterministic",
            "repeat": 1,
            "final_metric": 0.90,
            "weights_sha256": "A",
            **base,
        },
        {
            "optimizer": "adam",
            "seed": 0,
            "mode": "nondeterministic",
            "repeat": 0,
            "final_metric": 0.80,
            "weights_sha256": "B",
            **base,
        },
        {
            "optimizer": "adam",
            "seed": 0,
            "mode": "nondeterministic",
            "repeat": 1,
            "final_metric": 0.90,
            "weights_sha256": "C",
            **base,
        },
        {
            "optimizer": "adam",
            "seed": 0,
            "mode": "nondeterministic",
            "repeat": 2,
            "final_metric": None,
            "weights_sha256": None,
            **{**base, "status": "failed", "error": "RuntimeError: boom"},
        },
        {
            "optimizer": "sgd",
            "seed": 1,
            "mode": "deterministic",
            "repeat": 0,
            "final_metric": 0.5,
            "weights_sha256": "D",
            **base,
        },
        {
            "optimizer": "sgd",
            "seed": 1,
            "mode": "deterministic",
            "repeat": 1,
            "final_metric": 0.6,
            "weights_sha256": "E",
            **{**base, "data_sha256": "other"},
        },
    ]
    return pd.DataFrame([{**r, "label": f"{r['optimizer']}_{r['seed']}_{r['mode']}_{r['repeat']}"} for r in data])


def test_statistics_and_verdicts_per_configuration_and_mode():
    table = summarize(rows())
    det = table.loc[("adam", 0, "deterministic")]
    nondet = table.loc[("adam", 0, "nondeterministic")]
    assert det["done"] == "2/2" and det["same weights"] == "yes" and det["same init+data"] == "yes"
    assert nondet["done"] == "2/3"
    assert abs(nondet["mean"] - 0.85) < 1e-12 and nondet["min"] == 0.80 and nondet["max"] == 0.90
    assert abs(nondet["std"] - pd.Series([0.8, 0.9]).std()) < 1e-12  # sample std, as pandas and the paper use
    assert nondet["same weights"] == "2 of 2 differ"
    broken = table.loc[("sgd", 1, "deterministic")]
    assert broken["same weights"] == "NO (2 digests)" and broken["same init+data"] == "NO"


def test_failed_trials_are_listed_with_their_error():
    text = format_summary(rows(), "accuracy")
    assert "1 trial(s) did not finish" in text and "RuntimeError: boom" in text
