"""`python -m analysis compare A B` on fixtures that play two machines."""

import shutil
import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import REPO
from tests.experiment_factory import write_config, write_trial

H200 = {"gpu": "NVIDIA H200", "torch": "2.11.0", "cudnn": 91000, "driver": "580.1", "host": "a"}
A100 = {"gpu": "NVIDIA A100", "torch": "2.11.0", "cudnn": 90800, "driver": "570.2", "host": "b"}
NOISY = {0: [93.10, 93.16, 93.22, 93.05, 93.30, 93.18], 1: [92.00, 92.10, 91.95, 92.20, 92.05, 92.12]}


def machine(root, det: dict[int, float], digest: str, env: dict, seeds=(0, 1), shift: float = 0.0):
    for seed in seeds:
        write_config(
            root,
            optimizer="sgd",
            seed=seed,
            det=det[seed],
            noisy=[s + shift for s in NOISY[seed]],
            det_digest=f"{digest}{seed}",
            digests=[f"{digest}{seed}-{r}" for r in range(6)],
            env=env,
        )
    return root


def compare(tmp_path, a, b, *extra):
    return subprocess.run(
        [sys.executable, "-m", "analysis", "compare", str(a), str(b), "--out", str(tmp_path / "out"), *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_equal_digests_are_identical(tmp_path):
    a = machine(tmp_path / "a", {0: 93.2, 1: 92.1}, "same", H200)
    b = machine(tmp_path / "b", {0: 93.2, 1: 92.1}, "same", H200)
    proc = compare(tmp_path, a, b)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1].startswith("VERDICT: identical: all 2 shared configurations")
    det = pd.read_csv(tmp_path / "out" / "compare.csv")
    assert det["same_digest"].all() and det["p_ordinary"].isna().all()
    assert "Nothing: same environment facts and settings." in (tmp_path / "out" / "compare.md").read_text()


def test_differing_digests_within_the_noise(tmp_path):
    a = machine(tmp_path / "a", {0: 93.2, 1: 92.1}, "h200-", H200)
    b = machine(tmp_path / "b", {0: 93.12, 1: 92.03}, "a100-", A100)
    proc = compare(tmp_path, a, b)
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.splitlines()[-1]
    assert (
        last.startswith("VERDICT: within noise: 2 of 2 deterministic digests differ") and "settings differ" not in last
    )
    assert "environment gpu: A NVIDIA H200 | B NVIDIA A100" in proc.stdout and "environment cudnn" in proc.stdout
    assert "environment torch" not in proc.stdout and "host" not in proc.stdout  # equal facts and hosts are not news
    det = pd.read_csv(tmp_path / "out" / "compare.csv")
    assert (det["p_holm"] > 0.05).all() and not det["beyond_noise"].any() and (det["noise_pairs"] == 30).all()
    assert det.loc[0, "diff_pts"] == pytest.approx(93.12 - 93.2)
    # 0.08 points: pairs of noisy runs of seed 0 (within a side) that differ at least as much, of 30
    runs = NOISY[0]
    pairs = [abs(x - y) for i, x in enumerate(runs) for y in runs[i + 1 :]]
    assert det.loc[0, "p_ordinary"] == pytest.approx((1 + 2 * sum(p >= 0.08 - 1e-9 for p in pairs)) / 31)
    assert "could have been missed" in last


def test_a_real_shift_is_different(tmp_path):
    a = machine(tmp_path / "a", {0: 93.2, 1: 92.1}, "h200-", H200)
    b = machine(tmp_path / "b", {0: 95.2, 1: 94.1}, "a100-", A100, shift=2.0)
    proc = compare(tmp_path, a, b)
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.splitlines()[-1]
    assert last.startswith("VERDICT: different: ") and "noisy runs differ in 2 of 2 cells" in last
    noisy = pd.read_csv(tmp_path / "out" / "compare_noisy.csv")
    assert noisy["diff_mean_pts"].tolist() == pytest.approx([2.0, 2.0, 2.0])  # two cells, then the pooled row
    assert noisy["differ"].iloc[:2].all() and noisy["seed"].tolist()[-1] == "all"


def test_partly_overlapping_grids_say_what_is_missing_on_each_side(tmp_path):
    a = machine(tmp_path / "a", {0: 93.2, 1: 92.1}, "x", H200, seeds=(0, 1))
    b = machine(tmp_path / "b", {0: 93.2, 1: 92.1}, "x", H200, seeds=(1,))
    write_config(b, optimizer="adam", seed=0, det=90.0, noisy=[90.1, 90.2])
    proc = compare(tmp_path, a, b)
    assert proc.returncode == 0, proc.stderr
    assert "only in A (a): sgd/seed 0/nondeterministic" in proc.stdout
    assert "only in B (b): adam/seed 0/nondeterministic" in proc.stdout
    assert proc.stdout.splitlines()[-1].startswith("VERDICT: identical: all 1 shared configurations")


def test_different_settings_are_named_in_the_verdict(tmp_path):
    a = machine(tmp_path / "a", {0: 93.2, 1: 92.1}, "x", H200)
    b = machine(tmp_path / "b", {0: 93.2, 1: 92.1}, "x", H200)
    for params in b.glob("*/params.json"):
        params.write_text(params.read_text().replace('"lr": 0.1', '"lr": 0.2'))
    proc = compare(tmp_path, a, b)
    assert "setting lr: A 0.1 | B 0.2" in proc.stdout and "settings differ (lr)" in proc.stdout.splitlines()[-1]


@pytest.mark.parametrize("case", ["missing", "empty", "disjoint"])
def test_unreadable_input_is_one_line(tmp_path, case):
    a = machine(tmp_path / "a", {0: 93.2, 1: 92.1}, "x", H200)
    b = tmp_path / "b"
    if case == "empty":
        b.mkdir()
    if case == "disjoint":
        write_config(b, optimizer="adam", seed=7, det=90.0, noisy=[90.1, 90.2])
    proc = compare(tmp_path, a, b)
    lines = proc.stderr.strip().splitlines()
    assert (
        proc.returncode == 2
        and proc.stdout == ""
        and len(lines) == 1
        and lines[0].startswith("error: ")
        and str(b) in lines[0]
    )


def test_a_copy_with_renamed_deterministic_digests_is_within_noise(tmp_path):
    # the review: every det score equal, digests renamed: "different: 3 of 10"
    a = machine(tmp_path / "a", {0: 93.2, 1: 92.1}, "h200-", H200)
    b = tmp_path / "b"
    shutil.copytree(a, b)
    for params in b.glob("*_det_*/result.json"):
        params.write_text(params.read_text().replace('"weights_sha256": "h200-', '"weights_sha256": "renamed-'))
    proc = compare(tmp_path, a, b)
    last = proc.stdout.splitlines()[-1]
    assert last.startswith("VERDICT: within noise: 2 of 2 deterministic digests differ"), last
    det = pd.read_csv(tmp_path / "out" / "compare.csv")
    assert (det["diff_pts"] == 0).all() and (det["p_ordinary"] == 1).all()


def test_a_deterministic_change_where_no_run_ever_varies_is_different(tmp_path):
    # the review: det 90 vs 95 with no non-deterministic variation read "within noise"
    for root, det in ((tmp_path / "a", 90.0), (tmp_path / "b", 95.0)):
        write_config(root, optimizer="sgd", seed=0, det=det, noisy=[91.0] * 3, digests=["n"] * 3, det_digest=f"d{det}")
    proc = compare(tmp_path, tmp_path / "a", tmp_path / "b")
    last = proc.stdout.splitlines()[-1]
    assert last.startswith("VERDICT: different: 1 of 1 deterministic scores differ by more than"), last
    assert "sgd/0 +5.00 pts" in last
    assert "no noisy run of either side differs from another (6 runs)" in (tmp_path / "out" / "compare.md").read_text()


def test_a_side_whose_deterministic_repeats_disagree_is_named_and_never_identical(tmp_path):
    a = machine(tmp_path / "a", {0: 93.2, 1: 92.1}, "same", H200)
    b = machine(tmp_path / "b", {0: 93.2, 1: 92.1}, "same", H200)
    write_trial(a, optimizer="sgd", seed=0, mode="deterministic", repeat=5, scores=[0.92], weights="other",
                init="init0", data="data0")  # fmt: skip
    proc = compare(tmp_path, a, b)
    last = proc.stdout.splitlines()[-1]
    assert last.startswith("VERDICT: different: a side does not reproduce itself: A's deterministic weights_sha256 "
                           "disagree in sgd/0"), last  # fmt: skip


def test_modes_are_paired_by_name_never_silently(tmp_path):
    write_config(tmp_path / "a", optimizer="sgd", seed=0, det=93.2, noisy=NOISY[0], det_digest="d")
    write_config(tmp_path / "b", optimizer="sgd", seed=0, det=93.2, noisy=NOISY[0], det_digest="d",
                 mode="autotuner-only")  # fmt: skip
    proc = compare(tmp_path, tmp_path / "a", tmp_path / "b")
    assert (
        "noisy modes: A has nondeterministic, B has autotuner-only; a mode is compared only with the mode of the same name"
        in proc.stdout
    )
    assert pd.read_csv(tmp_path / "out" / "compare_noisy.csv").empty


def test_nothing_testable_is_undetermined(tmp_path):
    for root, det in ((tmp_path / "a", 90.0), (tmp_path / "b", 90.4)):
        write_config(root, optimizer="sgd", seed=0, det=det, noisy=[90.2], det_digest=f"d{det}")
    proc = compare(tmp_path, tmp_path / "a", tmp_path / "b")
    assert proc.stdout.splitlines()[-1].startswith("VERDICT: undetermined: 1 of 1 deterministic digests differ"), (
        proc.stdout
    )


def test_an_unwritable_default_output_is_one_line(tmp_path):
    a = machine(tmp_path / "a", {0: 93.2, 1: 92.1}, "x", H200)
    b = machine(tmp_path / "b", {0: 93.2, 1: 92.1}, "x", H200)
    (a / "compare-b").write_text("in the way")  # as a read-only A would, also for root
    proc = subprocess.run(
        [sys.executable, "-m", "analysis", "compare", str(a), str(b)], cwd=REPO, capture_output=True, text=True
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and proc.stdout == "" and len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: --out {a / 'compare-b'}: cannot write there") and "pass --out DIR" in lines[0]
