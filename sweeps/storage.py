"""The storage path's space, and a study that can always resume after it ran out.

A full disk mid-study used to print a thousand lines, truncate Tune's saved state and leave a
directory no later run could resume. So: the space a study's checkpoints need is checked before it
starts; a disk that fills is said in one line; and a resume that finds Tune's state cut off falls
back to the newest intact state, or, with none (or tuner.pkl itself cut off), starts the trials
not finished on disk again from the grid in study.json, their partial folders kept aside.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from sweeps.cli import Study, UsageError

SUPERSEDED = ".superseded"  # unfinished trials' folders set aside when Tune's state could not be read
BROKEN = ".broken-state"  # Tune state files that do not parse
SLACK_BYTES = 1 << 30  # results, event files, predictions and the experiment state beside the checkpoints


def checkpoint_bytes(trial: dict) -> int:
    """About one checkpoint's size: fp32 weights and buffers plus the optimizer's per-parameter state."""
    import torch

    from trainables.models import create_model

    with torch.device("meta"):  # why: shapes only, no memory and no weights download
        model = create_model(trial["model"], 10, 3)
    params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() for b in model.buffers())
    slots = (3 if trial["amsgrad"] else 2) if trial["optimizer"] == "adam" else (1 if trial["momentum"] else 0)
    return 4 * (params * (1 + slots) + buffers)


def check_free_space(study: Study, experiment: Path, unfinished: int) -> None:
    """Refuse to start when the storage cannot hold the checkpoints the study keeps."""
    if unfinished == 0:
        return
    existing = next(p for p in (experiment, *experiment.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    size = checkpoint_bytes(study.trials[0])
    need = unfinished * study.keep_checkpoints * size + SLACK_BYTES
    if free < need:
        raise UsageError(
            f"--storage-path: {free / 1e9:.1f} GB free at {existing}, and {unfinished} trial(s) keeping "
            f"{study.keep_checkpoints} checkpoint(s) of about {size / 1e6:.0f} MB each need about "
            f"{need / 1e9:.1f} GB; free space or choose another --storage-path"
        )


def disk_full(experiment: Path) -> str | None:
    """One line if the storage is (nearly) full after a study stopped, else None."""
    try:
        free = shutil.disk_usage(experiment).free
    except OSError:
        return None
    if free >= 64 << 20:
        return None
    return (
        f"The disk holding {experiment} is full ({free >> 20} MB free): free some space and run the same command "
        "again; finished trials are kept and the rest continue"
    )


def tune_state(path: Path) -> list | None:
    """The trial data of one of Tune's experiment_state-*.json files; None if it is cut off."""
    try:
        return json.loads(path.read_text())["trial_data"]
    except (ValueError, KeyError, TypeError, OSError):
        return None


def set_aside_broken_states(experiment: Path) -> list[str]:
    """Move Tune state files that do not parse out of Tune's way, so it restores the newest intact
    one; one note per file moved."""
    notes = []
    for state in sorted(experiment.glob("experiment_state-*.json")):
        if tune_state(state) is None:
            (experiment / BROKEN).mkdir(exist_ok=True)
            state.replace(experiment / BROKEN / state.name)
            notes.append(f"{state.name} is cut off (a full disk?); set aside in {BROKEN}/")
    return notes


def intact_state(experiment: Path) -> bool:
    return any(experiment.glob("experiment_state-*.json")) and (experiment / "tuner.pkl").is_file()


def set_aside_earlier_attempts(experiment: Path, trials) -> list[str]:  # noqa: ANN001 (the loader's trials table)
    """Tune starts a failed trial again in a new folder; once that run finished, the failed
    attempt's folder moves to SUPERSEDED/ so the trial is counted once. One note per folder."""
    notes = []
    labels = trials["trial"].map(_label)
    done = set(labels[trials["status"] == "finished"])
    for name, label, status in zip(trials["trial"], labels, trials["status"]):
        if status != "finished" and label in done:
            _set_aside(experiment, name)
            notes.append(f"{label}: an earlier attempt ({status}) moved to {SUPERSEDED}/; a later run of it finished")
    return notes


def counted_trials(experiment: Path):  # noqa: ANN201 (the loader's trials table)
    """The experiment's trials once earlier attempts of finished trials are set aside (said in one
    line each); the directory is read a second time only if one was."""
    from analysis import load_experiment

    trials = load_experiment(experiment).trials
    notes = set_aside_earlier_attempts(experiment, trials)
    for note in notes:
        print(note)
    return load_experiment(experiment).trials if notes else trials


def supersede_unfinished(experiment: Path, trials: list[dict], finished_labels: set[str]) -> list[dict]:
    """The trials of the grid not finished on disk; their partial folders move to SUPERSEDED/ so a
    fresh start of each is the only one the analysis sees."""
    from sweeps.grid import trial_label

    for folder in sorted(p.parent for p in experiment.glob("*/params.json")):
        if _label(folder.name) not in finished_labels:
            _set_aside(experiment, folder.name)
    return [t for t in trials if trial_label(t) not in finished_labels]


def _label(folder: str) -> str:
    """The trial label (sweeps.grid.trial_label) a trial folder's name starts with, before Tune's id."""
    return "_".join(folder.split("_")[:4])


def _set_aside(experiment: Path, folder: str) -> None:
    (experiment / SUPERSEDED).mkdir(exist_ok=True)
    (experiment / folder).replace(experiment / SUPERSEDED / folder)
