"""Claim: analysis.load_experiment reads 480 trials x 300 epochs in 2 s or less on a 2-core
machine, at least 10x faster than ray.tune.ExperimentAnalysis on the same directory.

Builds the directory once with Ray Tune itself (480 real trials of a stub trainable, so Tune writes
its own experiment state, params.json and result.json), then pads every trial to 300 epochs of
results shaped like the sweep's (metrics first, Ray's keys, the config last). Usage:
    python bench/analysis_load.py [DIR]        (default /tmp/bench_480x300)
Results are recorded in bench/RESULTS.md.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TRIALS, EPOCHS = 480, 300


def stub(config: dict) -> None:
    from ray import tune

    tune.report({"epoch": 1, "metric": 0.5})


def build(root: Path) -> Path:
    import ray
    from ray import tune

    experiment = root / "study"
    if not experiment.exists():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        space = {
            "seed": tune.grid_search([0, 42, 314, 3407, 180698]),
            "optimizer": tune.grid_search(["adam", "sgd"]),
            "mode": tune.grid_search(["deterministic", "nondeterministic"]),
            "repeat": tune.grid_search(list(range(24))),
            "dataset": "cifar10",
            "model": "preactresnet18",
            "epochs": EPOCHS,
            "batch_size": 128,
            "lr": 0.01,
        }
        tune.Tuner(
            stub,
            param_space=space,
            tune_config=tune.TuneConfig(reuse_actors=True),
            run_config=tune.RunConfig(name="study", storage_path=str(root), verbose=0),
        ).fit()
        ray.shutdown()
    for result_file in experiment.glob("*/result.json"):
        first = json.loads(result_file.read_text().splitlines()[0])
        if first.get("epoch") == 1 and len(result_file.read_text().splitlines()) == EPOCHS:
            continue
        lines = []
        for epoch in range(1, EPOCHS + 1):
            metrics = {
                "epoch": epoch,
                "train_loss": 1 / epoch,
                "test_loss": 0.3,
                "test_accuracy": 0.93,
                "test_f1": 0.93,
                "metric": 0.93,
                "lr": 0.01,
                "train_time_s": 3.2,
                "epoch_time_s": 3.5,
                "samples_per_s": 15000.0,
            }
            if epoch == EPOCHS:
                metrics.update(
                    final_metric=0.93,
                    final_epoch=EPOCHS,
                    weights_sha256="a" * 64,
                    init_sha256="b" * 64,
                    data_sha256="c" * 64,
                    runtime_s=1000.0,
                    energy_j=3e5,
                    env={"gpu": "H200", "torch": "2.11"},
                )
            ray_keys = {
                k: first[k]
                for k in (
                    "timestamp",
                    "checkpoint_dir_name",
                    "done",
                    "trial_id",
                    "date",
                    "time_this_iter_s",
                    "time_total_s",
                    "pid",
                    "hostname",
                    "node_ip",
                    "time_since_restore",
                )
                if k in first
            }
            lines.append(
                json.dumps(
                    {
                        **metrics,
                        **ray_keys,
                        "training_iteration": epoch,
                        "iterations_since_restore": epoch,
                        "config": first["config"],
                    }
                )
            )
        result_file.write_text("\n".join(lines) + "\n")
        header = list(json.loads(lines[0]).keys())[:-1]
        rows = [",".join(str(json.loads(line)[k]) for k in header) for line in lines]
        (result_file.parent / "progress.csv").write_text(",".join(header) + "\n" + "\n".join(rows) + "\n")
    return experiment


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/bench_480x300")
    experiment = build(root)
    from analysis import load_experiment

    times = []
    for _ in range(3):
        start = time.perf_counter()
        exp = load_experiment(experiment)
        times.append(time.perf_counter() - start)
    assert len(exp.trials) == TRIALS and len(exp.epochs) == TRIALS * EPOCHS, (len(exp.trials), len(exp.epochs))

    from ray.tune import ExperimentAnalysis

    start = time.perf_counter()
    analysis = ExperimentAnalysis(str(experiment))
    frames = analysis.trial_dataframes
    ray_time = time.perf_counter() - start
    assert len(frames) == TRIALS and sum(len(f) for f in frames.values()) == TRIALS * EPOCHS

    median = sorted(times)[len(times) // 2]
    print(
        f"load_experiment: {', '.join(f'{t:.2f}' for t in times)} s (median {median:.2f} s) for {TRIALS} trials x {EPOCHS} epochs"
    )
    print(f"ExperimentAnalysis + trial_dataframes: {ray_time:.2f} s")
    print(f"speed-up (median): {ray_time / median:.1f}x")


if __name__ == "__main__":
    main()
