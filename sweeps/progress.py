"""A terminal view of the study a person can read at a glance (Ray's own reporter is off).

One status line: trials finished / running / pending / failed, an estimate of the time left, and
the latest metric of the running trials. On a terminal it redraws in place every second;
into a file or pipe it prints a line every 30 seconds. Finished and failed trials get a
permanent line each.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from pathlib import Path
from typing import TextIO

from ray import tune

from analysis.load import error_line
from sweeps.grid import trial_label


def _error_of(trial) -> str:  # noqa: ANN001
    """The exception line of the error file Tune wrote for the trial."""
    line = error_line(Path(trial.error_file)) if trial.error_file else None
    return (line or "see the trial's error.txt")[:200]


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class StudyProgress(tune.Callback):
    def __init__(self, total_trials: int, epochs_per_trial: int, metric: str, stream: TextIO | None = None) -> None:
        self.total, self.epochs, self.metric = total_trials, epochs_per_trial, metric
        self.stream = stream or sys.stdout
        self.setup()

    def setup(self, **info) -> None:  # noqa: ANN003
        """Tune calls this at the start of every run, a resumed one too: counting starts afresh."""
        self.tty = self.stream.isatty()
        self.interval = 1.0 if self.tty else 30.0
        self.started = time.monotonic()
        self.last_draw = 0.0
        self.epochs_done: dict[str, int] = {}  # trial id -> last epoch reported (this run)
        self.first_epochs: dict[str, int] = {}  # trial id -> epoch before its first report in this run
        self.latest: dict[str, float] = {}
        self.epoch_seconds: dict[str, float] = {}  # trial id -> its latest epoch's duration
        self.line_open = False
        self.last_line = ""

    def __getstate__(self) -> dict:
        # why: Tune pickles its callbacks into tuner.pkl; a terminal cannot be pickled
        return {"total": self.total, "epochs": self.epochs, "metric": self.metric}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["total"], state["epochs"], state["metric"])

    # Tune's hooks -------------------------------------------------------------------------------
    def on_trial_recover(self, iteration, trials, trial, **info) -> None:  # noqa: ANN001
        self._permanent(f"retry  {trial_label(trial.config)} from its last checkpoint, after: {_error_of(trial)}")

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:  # noqa: ANN001
        epoch = int(result.get("epoch", 0))
        self.first_epochs.setdefault(trial.trial_id, epoch - 1)
        self.epochs_done[trial.trial_id] = epoch
        if "epoch_time_s" in result:
            self.epoch_seconds[trial.trial_id] = float(result["epoch_time_s"])
        if self.metric in result and math.isfinite(float(result[self.metric])):  # NaN: an epoch not evaluated
            self.latest[trial.trial_id] = float(result[self.metric])

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:  # noqa: ANN001
        score = (trial.last_result or {}).get("final_metric")
        shown = f"{score:.4f}" if isinstance(score, float) else "?"
        self._permanent(f"done   {trial_label(trial.config)}: {self.metric} {shown}")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:  # noqa: ANN001
        self._permanent(f"FAILED {trial_label(trial.config)} (details in the summary and {trial.path})")

    def on_step_end(self, iteration, trials, **info) -> None:  # noqa: ANN001
        now = time.monotonic()
        if now - self.last_draw >= self.interval:
            self.last_draw = now
            self._draw(self.status_line(trials, now - self.started))

    def on_experiment_end(self, trials, **info) -> None:  # noqa: ANN001
        # why: after Ctrl-C Tune marks stopped trials terminated; the summary, read from disk, says what finished
        self._end_line()

    # Text ---------------------------------------------------------------------------------------
    def status_line(self, trials, elapsed: float) -> str:  # noqa: ANN001
        counts = {"TERMINATED": 0, "RUNNING": 0, "PENDING": 0, "ERROR": 0, "PAUSED": 0}
        for t in trials:
            counts[t.status] = counts.get(t.status, 0) + 1
        pending = self.total - counts["TERMINATED"] - counts["RUNNING"] - counts["ERROR"]
        line = (
            f"[{format_duration(elapsed)}] {counts['TERMINATED']}/{self.total} finished, "
            f"{counts['RUNNING']} running, {pending} pending, {counts['ERROR']} failed"
            f" | left: {self.eta(trials, elapsed)}"
        )
        running = [t for t in trials if t.status == "RUNNING" and t.trial_id in self.latest]
        shown = "; ".join(
            f"{trial_label(t.config)} ep {self.epochs_done[t.trial_id]}/{self.epochs} {self.latest[t.trial_id]:.3f}"
            for t in running[:3]
        )
        if shown:
            line += f" | {self.metric}: {shown}" + (f" (+{len(running) - 3})" if len(running) > 3 else "")
        return line

    def eta(self, trials, elapsed: float) -> str:  # noqa: ANN001
        """Epochs still to run over the epoch rate seen so far in this run. Until a trial has
        finished in this run, that rate is mostly start-up and cuDNN's autotuning (an sdnet study on
        two H200s read 270 hours left after 2 minutes, for about 22), so the rate is then the
        running trials over their median latest epoch: it leaves out the start-ups of trials to come."""
        done_now = sum(e - self.first_epochs.get(i, 0) for i, e in self.epochs_done.items())
        if done_now == 0 or elapsed <= 0:
            return "estimating"
        unfinished = [t for t in trials if t.status in ("RUNNING", "PENDING", "PAUSED")]
        remaining = sum(self.epochs - self.epochs_done.get(t.trial_id, 0) for t in unfinished)
        remaining += (self.total - len(trials)) * self.epochs  # trials Tune has not created yet
        rate = done_now / elapsed
        running = [t.trial_id for t in trials if t.status == "RUNNING"]
        latest = [self.epoch_seconds[i] for i in running if i in self.epoch_seconds]
        finished_here = any(t.status == "TERMINATED" and t.trial_id in self.epochs_done for t in trials)
        if not finished_here and latest and min(latest) > 0:
            rate = len(running) / statistics.median(latest)
        return format_duration(max(remaining, 0) / rate)

    def _draw(self, line: str) -> None:
        self.last_line = line
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
            self.line_open = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def _end_line(self) -> None:
        if self.line_open:
            self.stream.write("\n")
            self.line_open = False

    def _permanent(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K")
            self.line_open = False
        self.stream.write(f"[{format_duration(time.monotonic() - self.started)}] {text}\n")
        self.stream.flush()
        if self.tty:
            self.last_draw = 0.0  # redraw the status line under it at the next step
