import subprocess
import sys

import numpy as np
import pytest

from analysis import artifacts, load_experiment
from tests.conftest import REPO
from tests.experiment_factory import write_study, write_trial


def probs_for(classes: list[int], n_classes: int = 3) -> np.ndarray:
    p = np.full((len(classes), n_classes), 0.1)
    p[np.arange(len(classes)), classes] = 0.8
    return p


def test_churn_is_the_fraction_of_examples_predicted_differently(tmp_path):
    preds = [[0, 1, 2, 0], [0, 1, 2, 1], [2, 1, 2, 1]]  # pairs differ on 1, 2 and 1 of 4
    for r, p in enumerate(preds):
        write_trial(tmp_path, optimizer="sgd", seed=0, mode="nondeterministic", repeat=r, scores=[0.5], probs=probs_for(p))
    write_trial(tmp_path, optimizer="sgd", seed=0, mode="deterministic", repeat=0, scores=[0.5], probs=probs_for([2, 2, 2, 2]))
    exp = load_experiment(tmp_path)
    row = artifacts.churn(tmp_path, exp.trials).loc[("sgd", 0)]
    assert row["pairs"] == 3 and row["churn_mean"] == pytest.approx((1 + 2 + 1) / 12) and row["churn_max"] == 0.5


def test_similarity_is_the_cosine_of_last_layers_per_epoch(tmp_path):
    a = [np.array([[1.0, 0.0]]), np.array([[1.0, 0.0]])]
    b = [np.array([[1.0, 0.0]]), np.array([[1.0, 1.0]])]
    c = [np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])]
    for r, layers in enumerate((a, b, c)):
        write_trial(tmp_path, optimizer="adam", seed=3, mode="nondeterministic", repeat=r, scores=[0.5, 0.6], last_layer=layers)
    sim = artifacts.similarity(tmp_path, load_experiment(tmp_path).trials).set_index("epoch")
    assert sim.loc[1, "similarity_mean"] == pytest.approx(1.0) and sim.loc[1, "similarity_min"] == pytest.approx(1.0)
    pair = [1 / np.sqrt(2), 0.0, 1 / np.sqrt(2)]  # a-b, a-c, b-c at epoch 2
    assert sim.loc[2, "similarity_mean"] == pytest.approx(np.mean(pair)) and sim.loc[2, "similarity_min"] == pytest.approx(0.0)


def run_report(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "analysis", "report", *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_report_writes_every_table_figure_and_a_short_summary(tmp_path):
    exp = write_study(tmp_path / "exp")
    for r in range(2):
        write_trial(exp, optimizer="sgd", seed=5, mode="nondeterministic", repeat=r, scores=[0.5, 0.6], probs=probs_for([0, r]),
                    last_layer=[np.ones((2, 2)), np.eye(2) + r])
    write_trial(exp, optimizer="sgd", seed=5, mode="deterministic", repeat=0, scores=[0.5, 0.6], restarts=1)
    proc = run_report(exp, "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    report = (out / "report.md").read_text()
    for title in ("Integrity", "Table I", "Table II", "Table III", "Table IV", "Table V", "Table VI", "Welch", "Bootstrap",
                  "Seed vs CUDA noise", "Repeats needed", "Prediction churn", "Last-layer similarity"):
        assert title in report, title
    assert report.index("Integrity") < report.index("Table I")  # integrity first
    assert "1 trial(s) continued from a checkpoint" in report and "sgd_seed5_det_r0" in report
    for png in ("metric_distribution", "runtime", "similarity", "churn"):
        assert (out / f"{png}.png").stat().st_size > 10_000 and f"({png}.png)" in report
    for csv in ("table1_extremes", "table2_configurations", "table5_ttest", "table6_energy", "churn", "similarity"):
        assert (out / f"{csv}.csv").is_file()
    assert proc.stdout.splitlines()[0].startswith("Integrity OK") and len(proc.stdout.splitlines()) <= 6


def test_report_shouts_when_the_contract_is_broken(tmp_path):
    exp = write_study(tmp_path / "exp")
    write_trial(exp, optimizer="adam", seed=0, mode="deterministic", repeat=7, scores=[0.9], weights="different", init="init0", data="data0")
    proc = run_report(exp, "--out", tmp_path / "out")
    assert proc.returncode == 0 and proc.stdout.startswith("!!! INTEGRITY FAILED")
    report = (tmp_path / "out" / "report.md").read_text()
    assert "**FAILED: 1 problem(s)" in report


@pytest.mark.parametrize("case", ["empty", "one_mode", "missing"])
def test_unusable_directories_get_one_line(tmp_path, case):
    exp = tmp_path / "exp"
    exp.mkdir()
    if case == "one_mode":
        for r in range(3):
            write_trial(exp, optimizer="sgd", seed=0, mode="nondeterministic", repeat=r, scores=[0.5])
    target = tmp_path / "nowhere" if case == "missing" else exp
    proc = run_report(target, "--out", tmp_path / "out")
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(target) in lines[0]
    assert not (tmp_path / "out").exists()
