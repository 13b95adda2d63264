"""A study on a Ray cluster of two nodes (a head and a worker, one machine) survives losing the
worker mid-study: every trial finishes exactly once, every repeat ends with the digest an
uninterrupted trial has (on the CPU every repeat of a configuration is bit-identical), and the
files of the trials that ran on the lost node are in the storage path."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
from ray.cluster_utils import Cluster

from tests.conftest import REPO


def digits_study(storage, name: str, *extra: str, epochs: int = 1, repeats: int = 1, det_repeats: int = 1) -> list[str]:
    """sweeps/run.py on digits, one seed and optimizer, one CPU per trial."""
    args = [
        "--dataset",
        "digits",
        "--seeds",
        "0",
        "--optimizers",
        "sgd",
        "--repeats",
        str(repeats),
        "--det-repeats",
        str(det_repeats),
    ]
    args += [
        "--epochs",
        str(epochs),
        "--cpus-per-trial",
        "1",
        "--gpus-per-trial",
        "0",
        "--name",
        name,
        "--storage-path",
        str(storage),
    ]
    return [sys.executable, "sweeps/run.py", *args, *extra]


pytestmark = pytest.mark.slow


def test_a_study_survives_losing_a_node(tmp_path):
    cluster = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 1, "num_gpus": 0})
    worker = cluster.add_node(num_cpus=1, num_gpus=0)
    cluster.wait_for_nodes()
    driver = None
    try:
        command = digits_study(tmp_path, "cluster", "--address", cluster.address, epochs=20, repeats=3, det_repeats=2)
        driver = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        experiment = tmp_path / "cluster"
        deadline = time.monotonic() + 150
        while (
            time.monotonic() < deadline
        ):  # a trial finished on the worker (its slot runs the next), and the study goes on
            results = [r.read_text() for r in experiment.glob("*/result.json")]
            finished = sum("weights_sha256" in text for text in results)
            if any(worker.node_id in text for text in results) and finished <= 3:
                break
            assert driver.poll() is None, driver.stdout.read()
            time.sleep(0.2)
        else:
            pytest.fail("no trial finished on the worker node in time")
        cluster.remove_node(worker, allow_graceful=False)
        out, _ = driver.communicate(timeout=240)
        assert driver.returncode == 0, out
        assert "retry  sgd_seed0_" in out, out  # a trial was running on the lost node and continued on the head
    finally:
        if driver is not None and driver.poll() is None:
            driver.kill()
        cluster.shutdown()
    trials = {}
    for params in experiment.glob("*/params.json"):
        lines = [json.loads(line) for line in (params.parent / "result.json").read_text().splitlines()]
        label = "_".join(params.parent.name.split("_")[:4])
        assert label not in trials, f"{label} ran twice"
        trials[label] = (params.parent, lines[-1])
    assert len(trials) == 5 and all("weights_sha256" in last for _, last in trials.values())
    assert len({last["weights_sha256"] for _, last in trials.values()}) == 1  # the CPU: every repeat bit-identical
    nodes = {last["env"]["node"] for _, last in trials.values()}
    assert worker.node_id in nodes and len(nodes) == 2
    for folder, _last in trials.values():  # the lost node's trials too
        assert np.load(folder / "predictions.npz")["probs"].shape[1] == 10
        assert len(np.load(folder / "last_layer.npz").files) == 2 * 20


def test_a_study_without_address_starts_its_own_ray_beside_a_running_cluster(tmp_path):
    cluster = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 1, "num_gpus": 0})
    try:
        proc = subprocess.run(digits_study(tmp_path, "alone"), cwd=REPO, capture_output=True, text=True, timeout=300)
    finally:
        cluster.shutdown()
    # before, it joined the cluster and then refused its own settings
    assert proc.returncode == 0, proc.stdout + proc.stderr
