"""python sweeps/run.py --dataset digits: the whole CUDA-randomness study, on every GPU Ray sees.

Checks every input before Ray starts, starts Ray locally (or joins --address), runs the grid
through Tune (resuming the experiment directory if the same study was started before), and ends
with one row per configuration and mode. Exit code 0 only if every trial finished.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # why: run as a script from anywhere

from sweeps.cli import Study, UsageError, fail, parse  # noqa: E402


def dry_run(study: Study) -> None:
    import pandas as pd

    from sweeps.grid import trial_label

    rows = pd.DataFrame(
        [
            {"trial": trial_label(t), **{k: t[k] for k in ("seed", "optimizer", "mode", "repeat", "lr")}}
            for t in study.trials
        ]
    )
    shared = {k: v for k, v in study.trials[0].items() if all(t[k] == v for t in study.trials)}
    print(rows.to_string(index=False))
    print(f"\n{len(study.trials)} trials; shared settings:")
    for key, value in shared.items():
        print(f"  {key} = {value}")


def main(argv: list[str]) -> int:
    try:
        study = parse(argv)
    except UsageError as exc:
        fail(str(exc))
    if study.dry_run:
        dry_run(study)
        return 0

    from datasets import DataError, get_dataset, reader_options
    from datasets.image_folder import SPLITS_DIR_ENV
    from sweeps import launch, storage
    from sweeps.summary import format_summary, summary_rows

    name = launch.experiment_name(study)
    experiment = study.storage_path / name
    metric = study.trials[0]["metric"]
    try:
        resume = launch.check_existing(experiment, list(study.trials))
    except UsageError as exc:
        fail(str(exc))
    if resume:  # why: a finished study needs no data, weights or Ray, so check before fetching any
        from sweeps.repair import repair_results

        for note in repair_results(experiment):
            print(note)
        rows = summary_rows(storage.counted_trials(experiment))
        finished = int((rows["status"] == "finished").sum())
        if len(rows) == len(study.trials) and (rows["status"] == "finished").all():
            print(
                f"This study has already finished: all {len(rows)} trials are in {experiment}; nothing is trained again.\n"
            )
            print(format_summary(rows, metric))
            return 0
    try:
        if study.address is not None:
            launch.check_address(study.address)
        else:  # local: everything is known before Ray starts
            cpus, gpus = launch.local_resources()
            where = "this machine (where Ray starts) has"
            gpus_per_trial = launch.resolve_gpus(
                study, cpus, gpus, where=where, read_gpu_memory=launch.local_gpu_memory_gib
            )
            study = launch.fit_cpus(study, cpus, where=where)
        # why: a read-only data directory keeps its split manifest here, for the driver and every trial
        os.environ.setdefault(SPLITS_DIR_ENV, str(study.storage_path / ".splits"))
        # why: the driver fetches the data once; the trials only read it
        get_dataset(study.dataset).prepare(study.data_dir, **reader_options(study.dataset, study.trials[0]))
        storage.check_free_space(study, experiment, len(study.trials) - (finished if resume else 0))
        launch.check_pretrained(study.trials[0])
        experiment.mkdir(parents=True, exist_ok=True)
    except (UsageError, DataError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"--storage-path: cannot write {experiment}: {exc.strerror}")

    launch.start_ray(study, experiment / launch.DRIVER_LOG)
    if study.address is not None:
        try:
            cpus, gpus = launch.cluster_resources()
            gpus_per_trial = launch.resolve_gpus(study, cpus, gpus)
            study = launch.fit_cpus(study, cpus)
        except UsageError as exc:
            fail(str(exc))
    trials = [dict(t, gpu_share=gpus_per_trial) for t in study.trials]
    if not resume:
        launch.write_study(experiment, list(study.trials))
    print(
        f"{'Resuming' if resume else 'Starting'} {len(trials)} trials in {experiment}\n"
        f"  {gpus_per_trial:g} GPU and {study.cpus_per_trial:g} CPU per trial; watch: tensorboard --logdir {experiment}"
    )
    try:
        launch.fit(study, trials, experiment, resume, gpus_per_trial)
    except Exception:
        if (line := storage.disk_full(experiment)) is not None:
            fail(line, code=1)
        raise
    if (line := storage.disk_full(experiment)) is not None:
        print(line, file=sys.stderr)
    rows = summary_rows(storage.counted_trials(experiment))
    command = " ".join(["python", "sweeps/run.py", *argv])
    print("\n" + format_summary(rows, metric))
    print(f"\nExperiment directory: {experiment}\nAnalysis: python -m analysis report {experiment}")
    if (rows["status"] == "stopped").any() or len(rows) < len(trials):
        print(
            f"\nStopped with {len(trials) - (rows['status'] == 'finished').sum()} trial(s) unfinished; nothing finished is lost. "
            f"To continue, run the same command again:\n  {command}"
        )
        return 130
    return 0 if (rows["status"] == "finished").all() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
