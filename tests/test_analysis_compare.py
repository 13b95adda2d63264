"""`python -m analysis compare A B` on fixtures that play two machines."""

import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import REPO
from tests.experiment_factory import write_config

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
    assert det["same_digest"].all() and det["p"].isna().all()
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
    assert (det["p_holm"] > 0.05).all() and (det["detectable_a_pts"] > 0).all()
    assert det.loc[0, "diff_pts"] == pytest.approx(93.12 - 93.2)


def test_a_real_shift_is_different(tmp_path):
    a = machine(tmp_path / "a", {0: 93.2, 1: 92.1}, "h200-", H200)
    b = machine(tmp_path / "b", {0: 95.2, 1: 94.1}, "a100-", A100, shift=2.0)
    proc = compare(tmp_path, a, b)
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.splitlines()[-1]
    assert last.startswith("VERDICT: different: 2 of 2 configurations' deterministic scores lie outside")
    assert "noisy distributions differ in 2 of 2" in last
    noisy = pd.read_csv(tmp_path / "out" / "compare_noisy.csv")
    assert noisy["diff_mean_pts"].tolist() == pytest.approx([2.0, 2.0])


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
