"""Writes experiment directories in Ray Tune's layout with numbers the tests choose.

The files are the ones the sweep leaves (params.json, result.json with one JSON line per epoch and
the config last, error.txt, predictions.npz, last_layer.npz), so analysis is tested on the real
format without running Ray.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = v
    return out


def write_trial(
    root: Path,
    *,
    optimizer: str,
    seed: int,
    mode: str,
    repeat: int,
    scores: list[float],
    runtime_s: float = 60.0,
    energy_j: float | None = None,
    gpu_share: float = 1.0,
    weights: str = "w",
    init: str = "i",
    data: str = "d",
    finished: bool = True,
    error: str | None = None,
    probs: np.ndarray | None = None,
    last_layer: list[np.ndarray] | None = None,
    metric: str = "accuracy",
    truncate_last_line: bool = False,
    progress_csv: bool = True,
    restarts: int = 0,
    env: dict | None = None,
) -> Path:
    """One trial; `scores` are the per-epoch test scores (fractions), the last one is final_metric."""
    short = {"deterministic": "det", "nondeterministic": "nondet"}.get(mode, mode)
    name = f"{optimizer}_seed{seed}_{short}_r{repeat}_{seed:05d}_{repeat:05d}"
    directory = root / name
    directory.mkdir(parents=True)
    params = {
        "dataset": "fixture",
        "model": "m",
        "seed": seed,
        "optimizer": optimizer,
        "mode": mode,
        "repeat": repeat,
        "epochs": len(scores),
        "batch_size": 8,
        "lr": 0.1,
        "metric": metric,
        "metrics": [metric],
        "gpu_share": gpu_share,
    }
    (directory / "params.json").write_text(json.dumps(params, indent=2))
    lines = []
    for epoch, score in enumerate(scores, 1):
        result = {
            "epoch": epoch,
            "train_loss": 1.0 / epoch,
            f"test_{metric}": score,
            "metric": score,
            "lr": 0.1,
            "epoch_time_s": runtime_s / len(scores),
            "samples_per_s": 100.0,
        }
        if finished and epoch == len(scores):
            result.update(
                final_metric=score,
                final_epoch=epoch,
                weights_sha256=weights,
                init_sha256=init,
                data_sha256=data,
                runtime_s=runtime_s,
                energy_j=energy_j,
                gpu_energy_j=energy_j,
                nondeterministic_ops=[],
                restarts=restarts,
                restart_epochs=[1] * restarts,
                env=env or {"gpu": "Fixture GPU", "torch": "2.x", "host": "h"},
            )
        result.update(trial_id=name, done=False, config=params)  # Ray's keys, the config last
        lines.append(json.dumps(result))
    text = "\n".join(lines) + "\n"
    if progress_csv:  # as Ray's CSV logger writes it: the first result's keys, flattened, config left out
        flat = [_flatten({k: v for k, v in json.loads(line).items() if k != "config"}) for line in lines]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, list(flat[0]), extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(flat)
        text_csv = buffer.getvalue()
        cut = len(text_csv.rstrip("\n").rsplit("\n", 1)[-1]) // 2 if truncate_last_line else 0
        (directory / "progress.csv").write_text(text_csv[: len(text_csv) - cut])
    if truncate_last_line:
        text = text[: len(text) - len(lines[-1]) // 2]
    (directory / "result.json").write_text(text)
    if error:
        (directory / "error.txt").write_text(
            f'Failure # 1 (occurred at 2026-11-26)\nray::ImplicitFunc.train()\n  File "x.py", line 1\n{error}\n'
        )
    if probs is not None:
        np.savez(
            directory / "predictions.npz",
            labels=np.zeros(len(probs), dtype=np.int64),
            probs=probs.astype(np.float32),
            epoch=np.int64(len(scores)),
        )
    if last_layer is not None:
        np.savez(directory / "last_layer.npz", **{f"e{e:04d}_weight": w for e, w in enumerate(last_layer, 1)})
    return directory


# The standard study of the analysis tests: final scores (fractions) per configuration.
STUDY = {
    ("adam", 0): {"det": [0.90, 0.90], "nondet": [0.91, 0.93, 0.92, 0.94]},
    ("adam", 1): {"det": [0.80, 0.80], "nondet": [0.79, 0.81, 0.80, 0.80]},
    ("sgd", 0): {"det": [0.95, 0.95], "nondet": [0.95, 0.951, 0.949, 0.952]},
    ("sgd", 1): {"det": [0.96, 0.96], "nondet": [0.955, 0.957, 0.956, 0.958]},
}
RUNTIME = {"det": 120.0, "nondet": 90.0}  # seconds


def write_study(root: Path) -> Path:
    for (optimizer, seed), modes in STUDY.items():
        for key, mode in (("det", "deterministic"), ("nondet", "nondeterministic")):
            for repeat, score in enumerate(modes[key]):
                write_trial(
                    root,
                    optimizer=optimizer,
                    seed=seed,
                    mode=mode,
                    repeat=repeat,
                    scores=[0.5, score],
                    runtime_s=RUNTIME[key] + repeat,
                    energy_j=1000.0 * (repeat + 1) if optimizer == "adam" else None,
                    weights=f"{optimizer}{seed}-det" if key == "det" else f"{optimizer}{seed}-{repeat}",
                    init=f"init{seed}",
                    data=f"data{seed}",
                )
    return root


def write_config(
    root: Path,
    *,
    optimizer: str,
    seed: int,
    det: float,
    noisy: list[float],
    digests: list[str] | None = None,
    det_copies: int = 2,
    mode: str = "nondeterministic",
    det_digest: str | None = None,
    env: dict | None = None,
) -> None:
    """One configuration in percent: `det_copies` bit-identical deterministic repeats scoring `det`
    and one run of `mode` per entry of `noisy`; runs with equal `digests` entries are copies."""
    digests = digests or [f"{optimizer}{seed}-{mode}-{r}" for r in range(len(noisy))]
    det_digest = det_digest or f"{optimizer}{seed}-det"
    for r in range(det_copies):
        write_trial(
            root,
            optimizer=optimizer,
            seed=seed,
            mode="deterministic",
            repeat=r,
            scores=[det / 100],
            weights=det_digest,
            init=f"init{seed}",
            data=f"data{seed}",
            env=env,
        )
    for r, (score, digest) in enumerate(zip(noisy, digests)):
        write_trial(
            root,
            optimizer=optimizer,
            seed=seed,
            mode=mode,
            repeat=r,
            scores=[score / 100],
            weights=digest,
            init=f"init{seed}",
            data=f"data{seed}",
            env=env,
        )
