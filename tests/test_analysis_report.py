import json
import re

import numpy as np
import pytest

from analysis import artifacts, load_experiment
from tests.conftest import run_report
from tests.experiment_factory import write_config, write_study, write_trial


def probs_for(classes: list[int], n_classes: int = 3) -> np.ndarray:
    p = np.full((len(classes), n_classes), 0.1)
    p[np.arange(len(classes)), classes] = 0.8
    return p


def test_churn_averages_over_differing_pairs_and_counts_copies_apart(tmp_path):
    preds = [[0, 1, 2, 0], [0, 1, 2, 1], [2, 1, 2, 1], [2, 1, 2, 1]]  # runs 2 and 3 are copies
    for r, (p, digest) in enumerate(zip(preds, ["a", "b", "c", "c"])):
        write_trial(
            tmp_path,
            optimizer="sgd",
            seed=0,
            mode="nondeterministic",
            repeat=r,
            scores=[0.5] * (1 + (r == 0)),
            probs=probs_for(p),
            weights=digest,
        )
    write_trial(
        tmp_path, optimizer="sgd", seed=0, mode="deterministic", repeat=0, scores=[0.5], probs=probs_for([2, 2, 2, 2])
    )
    exp = load_experiment(tmp_path)
    r = artifacts.churn(tmp_path, exp.trials, []).iloc[0]
    # differing pairs a-b 1/4, a-c 2/4 (twice), b-c 1/4 (twice); run 0 selected epoch 2, the others epoch 1
    assert (r["pairs"], r["identical_pairs"], r["diff_epoch_pairs"]) == (6, 1, 3)
    assert r["churn_mean"] == pytest.approx((1 + 2 + 2 + 1 + 1) / 20) and r["churn_max"] == 0.5


def test_similarity_is_one_minus_cosine_over_the_pairs_that_differ(tmp_path):
    a = [np.array([[1.0, 0.0]]), np.array([[1.0, 0.0]])]
    b = [np.array([[1.0, 0.0]]), np.array([[1.0, 1.0]])]
    c = [np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])]
    for r, layers in enumerate((a, b, c)):
        write_trial(
            tmp_path, optimizer="adam", seed=3, mode="nondeterministic", repeat=r, scores=[0.5, 0.6], last_layer=layers
        )
    sim = artifacts.similarity(tmp_path, load_experiment(tmp_path).trials, []).set_index("epoch")
    assert sim.loc[1, "identical_pairs"] == 3 and np.isnan(sim.loc[1, "one_minus_cos_mean"])
    pair = [1 - 1 / np.sqrt(2), 1.0, 1 - 1 / np.sqrt(2)]  # a-b, a-c, b-c at epoch 2
    assert sim.loc[2, "identical_pairs"] == 0 and sim.loc[2, "one_minus_cos_mean"] == pytest.approx(np.mean(pair))
    assert sim.loc[2, "one_minus_cos_max"] == pytest.approx(1.0)


def test_a_truncated_artifact_is_a_note_not_a_traceback(tmp_path):
    for r in range(2):
        write_trial(
            tmp_path,
            optimizer="sgd",
            seed=0,
            mode="nondeterministic",
            repeat=r,
            scores=[0.5],
            probs=probs_for([0, r]),
            weights=f"w{r}",
            last_layer=[np.eye(2) + r],
        )
    for name in ("predictions.npz", "last_layer.npz"):
        path = next(tmp_path.glob(f"*_r1_*/{name}"))
        path.write_bytes(path.read_bytes()[:40])
    skipped = []
    exp = load_experiment(tmp_path)
    assert artifacts.churn(tmp_path, exp.trials, skipped).iloc[0]["note"] == "one run with predictions"
    assert artifacts.similarity(tmp_path, exp.trials, skipped).empty
    assert len(skipped) == 2 and all("unreadable" in s for s in skipped)


def test_report_writes_every_table_figure_and_a_short_summary(tmp_path):
    exp = write_study(tmp_path / "exp")
    for r in range(2):
        write_trial(
            exp,
            optimizer="sgd",
            seed=5,
            mode="nondeterministic",
            repeat=r,
            scores=[0.5, 0.6],
            probs=probs_for([0, r]),
            last_layer=[np.ones((2, 2)), np.eye(2) + r],
            weights=f"sgd5-{r}",
        )
    write_trial(exp, optimizer="sgd", seed=5, mode="deterministic", repeat=0, scores=[0.5, 0.6], restarts=1)
    proc = run_report(exp, "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    report = (out / "report.md").read_text()
    for title in (
        "Integrity",
        "Table I",
        "Table II",
        "Table III",
        "Table IV",
        "Table V",
        "Table VI",
        "Does the mode shift",
        "ordinary draw",
        "Is the deterministic run one of the noisy outcomes?",
        "How much noise one run carries",
        "Seed vs CUDA noise",
        "What a study needs",
        "Prediction churn",
        "Last-layer similarity",
    ):
        assert title in report, title
    assert "Welch" not in report and "Brown-Forsythe" not in report
    assert report.index("Integrity") < report.index("Is the deterministic run one of") < report.index("Table I")
    assert "1 trial(s) continued from a checkpoint" in report and "sgd_seed5_det_r0" in report
    for png in ("metric_distribution", "runtime", "similarity", "churn"):
        assert (out / f"{png}.png").stat().st_size > 10_000 and f"({png}.png)" in report
    for csv in (
        "table1_extremes",
        "table2_configurations",
        "table3_spread",
        "table5_ttest",
        "typicality",
        "mode_shift",
        "det_outcome",
        "noise",
        "design",
        "trials",
        "table6_energy",
        "churn",
        "similarity",
    ):
        assert (out / f"{csv}.csv").is_file()
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("Integrity OK")
    assert lines[1].startswith("nondeterministic: det lies outside the range of all its runs in ")
    assert lines[2].startswith("nondeterministic repeats: 18 distinct outcomes of 18 runs in 5 configurations;")
    assert len(lines) <= 7 and "nan" not in proc.stdout


def test_the_report_reads_right_at_a_glance(tmp_path):
    exp = tmp_path / "exp"
    write_config(
        exp,
        optimizer="sgd",
        seed=0,
        det=93.30,
        noisy=[93.10, 93.10, 93.10, 93.10, 93.16, 93.22],
        digests=["a", "a", "a", "a", "b", "c"],
    )
    write_config(exp, optimizer="adam", seed=0, det=93.3, noisy=[93.1] * 4, digests=["z"] * 4)  # no variation
    proc = run_report(exp, "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    report = (tmp_path / "out" / "report.md").read_text()
    assert "3 of 6 runs repeat an earlier run's outcome" in report and "no variation among 4 runs" in report
    assert (
        "nondeterministic repeats: 4 distinct outcomes of 10 runs in 2 configurations; 0 equal the deterministic digest"
        in report
    )
    assert "4.2e-04" in report  # the paper's p, on every run
    assert "p_distinct" not in report
    assert re.search(r"\| *6 *\| *3 *\|", report)  # n and n_distinct print as integers
    assert not re.search(r"\b\d+\.000\b", report.split("## Table III")[0].split("## Integrity")[1])  # no 6.000, 2.000
    for bad in ("nan", "('sgd'", "0.000 |  no", "| 0.000 |"):
        assert bad not in report, bad
    assert "nan" not in proc.stdout and "p 0.000" not in proc.stdout
    csv = (tmp_path / "out" / "table2_configurations.csv").read_text()
    assert "93.30000000000001" not in csv and "93.3," in csv


def test_a_report_over_nan_scores_is_never_integrity_ok(tmp_path):
    exp = tmp_path / "exp"
    write_config(exp, optimizer="sgd", seed=0, det=93.3, noisy=[93.1, 93.2])
    write_trial(
        exp,
        optimizer="sgd",
        seed=0,
        mode="nondeterministic",
        repeat=5,
        scores=[float("nan")],
        init="init0",
        data="data0",
    )
    proc = run_report(exp, "--out", tmp_path / "out")
    assert proc.returncode == 0 and proc.stdout.startswith("!!! INTEGRITY FAILED")
    assert "sgd_seed0_nondet_r5_00000_00005: NaN, excluded" in proc.stdout
    for r in range(2):
        write_trial(
            tmp_path / "allnan",
            optimizer="sgd",
            seed=0,
            mode="deterministic" if r else "nondeterministic",
            repeat=r,
            scores=[float("nan")],
        )
    proc = run_report(tmp_path / "allnan", "--out", tmp_path / "out2")
    assert proc.returncode == 2 and "all scored NaN" in proc.stderr and proc.stdout == ""


def test_report_shouts_when_the_contract_is_broken(tmp_path):
    exp = write_study(tmp_path / "exp")
    write_trial(
        exp,
        optimizer="adam",
        seed=0,
        mode="deterministic",
        repeat=7,
        scores=[0.9],
        weights="different",
        init="init0",
        data="data0",
    )
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


def test_garbled_files_are_notes_and_an_unwritable_out_is_one_line(tmp_path):
    exp = write_study(tmp_path / "exp")
    odd = sorted(exp.glob("adam_seed0_nondet_r0_*"))[0]
    (odd / "params.json").write_text("[1, 2]")
    lacking = sorted(exp.glob("adam_seed0_nondet_r1_*"))[0]
    params = json.loads((lacking / "params.json").read_text())
    params.pop("mode")
    (lacking / "params.json").write_text(json.dumps(params))
    texty = sorted(exp.glob("sgd_seed1_nondet_r2_*"))[0]
    rows = (texty / "progress.csv").read_text().splitlines()
    header = rows[0].split(",")
    for i in (1, 2):
        cells = rows[i].split(",")
        cells[header.index("metric")] = "oops"
        rows[i] = ",".join(cells)
    (texty / "progress.csv").write_text("\n".join(rows) + "\n")
    proc = run_report(exp, "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    report = (tmp_path / "out" / "report.md").read_text()
    assert f"{odd / 'params.json'}: not a JSON object, trial skipped" in report
    assert f"{lacking / 'params.json'}: lacks mode, trial skipped" in report
    assert report.count(f"{texty.name}: text where numbers belong") == 1  # one note for the file, not one per row
    (tmp_path / "file").write_text("x")
    proc = run_report(exp, "--out", tmp_path / "file")
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: --out {tmp_path / 'file'}: cannot write there")
    assert len(proc.stderr.strip().splitlines()) == 1
