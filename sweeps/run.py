"""python sweeps/run.py --dataset digits: the whole CUDA-randomness study, on every GPU Ray sees.

Checks every input before Ray starts, starts Ray locally (or joins --address), runs the grid
through Tune (resuming the experiment directory if the same study was started before), and ends
with one row per configuration and mode. Exit code 0 only if every trial finished.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # why: run as a script from anywhere

from sweeps.cli import Study, UsageError, fail, parse  # noqa: E402


def dry_run(study: Study) -> None:
    import pandas as pd

    from sweeps.grid import trial_label

    rows = pd.DataFrame(
        [
            {
                "trial": trial_label(t),
                **{k: t[k] for k in ("seed", "optimizer", "mode", "repeat", "lr")},
                "arm": t.get("arm", ""),
            }
            for t in study.trials
        ]
    )
    shared = {k: v for k, v in study.trials[0].items() if all(t[k] == v for t in study.trials)}
    print(rows.to_string(index=False))
    print(f"\n{len(study.trials)} trials; shared settings:")
    for key, value in shared.items():
        print(f"  {key} = {value}")


KILL_AT_ENV = "CUDA_RANDOMNESS_KILL_AT"  # tests only: the driver kills itself (SIGKILL) at this moment of its start


def checkpoint_moment(moment: str) -> None:
    """A named moment of the driver's start, where the tests of 'any stop at any moment' stop it."""
    if os.environ.get(KILL_AT_ENV) == moment:
        os.kill(os.getpid(), signal.SIGKILL)


class Stopping:
    """SIGTERM (docker stop, systemd, Slurm, Kubernetes) stops the study as Ctrl-C does: it is handed
    to whatever answers SIGINT at that moment (Tune's graceful stop while trials run). A second
    signal of either kind stops at once.

    systemd, Slurm and `timeout` send SIGTERM to every process of the job, Ray's own among them: its
    control store then dies under Tune's graceful stop, which would wait a minute for it and end in a
    C++ abort. So the resume command is printed at the first SIGTERM, and a driver still running
    GRACE_S later exits 143 by itself: what finished is on disk, and the same command resumes it."""

    GRACE_S = 15.0

    def __init__(self, again: str) -> None:
        self.by: str | None = None
        self.again = again

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._terminate)

    def _terminate(self, signum: int, frame: object) -> None:
        if self.by is not None:
            os._exit(143)
        self.by = "SIGTERM"
        print(f"\nSIGTERM: stopping; to continue, run the same command again:\n  {self.again}", flush=True)
        timer = threading.Timer(self.GRACE_S, self._give_up)
        timer.daemon = True  # why: a driver that stopped in time exits at once
        timer.start()
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler) and handler is not signal.default_int_handler:
            handler(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt

    def _give_up(self) -> None:
        print(
            f"\nStill stopping {self.GRACE_S:g} s after SIGTERM (Ray's own processes were probably stopped with this "
            f"one); exiting. Nothing finished is lost. To continue, run the same command again:\n  {self.again}",
            flush=True,
        )
        os._exit(143)

    @property
    def code(self) -> int:
        return 143 if self.by == "SIGTERM" else 130


def main(argv: list[str]) -> int:
    try:
        study = parse(argv)
    except UsageError as exc:
        fail(str(exc))
    if study.dry_run:
        dry_run(study)
        return 0

    from sweeps import launch
    from sweeps.lock import Held, StudyLock

    experiment = study.storage_path / launch.experiment_name(study)
    again = shlex.join(["python", sys.argv[0], *argv])
    stopping = Stopping(again)
    stopping.install()
    try:
        if study.address is None:  # why: Ray starts here, and keeps its sockets in the temporary folder
            launch.check_tmpdir()
    except UsageError as exc:
        fail(str(exc))
    lock = StudyLock(experiment)
    try:
        lock.acquire()
    except Held as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"--storage-path: cannot write {experiment}: {exc.strerror}")
    if lock.unlocked_why:
        print(f"Not locked: {lock.unlocked_why}; make sure no other driver runs this study")
    started = False
    try:
        checkpoint_moment("locked")
        started, code = run_study(study, experiment, again, stopping)
        return code
    except KeyboardInterrupt:
        print(
            f"\nStopped by {stopping.by or 'Ctrl-C'} before any trial ran; nothing was trained. "
            f"To start, run the same command again:\n  {again}"
        )
        return stopping.code
    finally:
        lock.release(remove_if_unused=not started)


def run_study(study: Study, experiment: Path, again: str, stopping: Stopping) -> tuple[bool, int]:
    """The study's lifecycle, the experiment directory locked: resume or start, check everything
    that can be checked before Ray starts, run the grid through Tune, summarise. Returns whether the
    study began (its study.json written) and the exit code."""
    from datasets import DataError, get_dataset, reader_options
    from datasets.image_folder import SPLITS_DIR_ENV
    from sweeps import launch, storage
    from sweeps.grid import recorded
    from sweeps.summary import format_summary, summary_rows

    metric = study.trials[0]["metric"]
    flag = "--dataset" if study.preset == "folder" else "--data-dir"
    try:
        resume = launch.check_existing(experiment, list(study.trials), flag)
    except UsageError as exc:
        fail(str(exc))
    finished = 0
    if resume:  # why: a finished study needs no data, weights or Ray, so check before fetching any
        from sweeps.repair import repair_results

        for note in repair_results(experiment):
            print(note)
        rows = summary_rows(storage.counted_trials(experiment))
        finished = int((rows["status"] == "finished").sum())
        if finished == len(study.trials) and len(rows) == len(study.trials):
            print(
                f"This study has already finished: all {len(rows)} trials are in {experiment}; nothing is trained again.\n"
            )
            print(format_summary(rows, metric))
            return True, 0
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
        storage.check_free_space(study, experiment, len(study.trials) - finished)
        launch.check_pretrained(study.trials[0])
    except (UsageError, DataError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"--storage-path: cannot write {experiment}: {exc.strerror}")
    if not resume:
        launch.write_study(experiment, list(study.trials))
    checkpoint_moment("study-written")
    launch.start_ray(study, experiment / launch.DRIVER_LOG)
    stopping.install()  # why: again, over the handler Ray's start installs (it dumps C++ stacks on SIGTERM)
    checkpoint_moment("ray-started")
    if study.address is not None:
        try:
            cpus, gpus = launch.cluster_resources()
            gpus_per_trial = launch.resolve_gpus(study, cpus, gpus)
            study = launch.fit_cpus(study, cpus)
        except UsageError as exc:
            fail(str(exc))
    trials = [dict(recorded(t), gpu_share=gpus_per_trial) for t in study.trials]
    print(
        f"{'Resuming' if resume else 'Starting'} {len(trials)} trials in {experiment}\n"
        f"  {gpus_per_trial:g} GPU and {study.cpus_per_trial:g} CPU per trial; "
        f"watch: tensorboard --logdir {shlex.quote(str(experiment))}"
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
    print("\n" + format_summary(rows, metric))
    print(f"\nExperiment directory: {experiment}\nAnalysis: python -m analysis report {shlex.quote(str(experiment))}")
    if (rows["status"] == "stopped").any() or len(rows) < len(trials):
        by = f"Stopped by {stopping.by}" if stopping.by else "Stopped"
        print(
            f"\n{by} with {len(trials) - (rows['status'] == 'finished').sum()} trial(s) unfinished; nothing finished is lost. "
            f"To continue, run the same command again:\n  {again}"
        )
        return True, stopping.code
    return True, 0 if (rows["status"] == "finished").all() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
