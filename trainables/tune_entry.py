"""The one module of the trainable that talks to Ray Tune: config in, metrics and checkpoints out.

Keep every Ray call here: its reporting API has changed five times across releases.
"""

from __future__ import annotations

import time

LOADED_AT = time.time()  # why: start-up is measured from here, before torch and Ray are imported

import importlib  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import ray  # noqa: E402
import torch  # noqa: E402
from ray import tune  # noqa: E402

from datasets.registry import STREAMED  # noqa: E402
from trainables import forked  # noqa: E402
from trainables.config import TrialConfig  # noqa: E402
from trainables.environment import NODE_ENV  # noqa: E402
from trainables.loop import Report, run_trial  # noqa: E402

STATE_FILE = "state.pt"
_slot = {"trials": 0}  # trials this process has run: only the first one waited for the imports above


def load_state(checkpoint: tune.Checkpoint | None) -> dict | None:
    """The trial state of a Tune checkpoint, read as data only (weights_only: no code unpickled)."""
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as directory:
        return torch.load(Path(directory) / STATE_FILE, map_location="cpu", weights_only=True)


def reporter(deliver: Callable[[tuple[dict, str]], None]) -> Report:
    """The trial's report(metrics, state): saves the state in a temporary directory and hands
    (metrics, directory) on; the directory is removed once `deliver` returns (Tune has copied it)."""

    def report(metrics: dict, state: dict) -> None:
        with tempfile.TemporaryDirectory() as directory:
            torch.save(state, Path(directory) / STATE_FILE)
            deliver((metrics, directory))

    return report


def report_saved(message: tuple[dict, str]) -> None:
    """One epoch's metrics, with its saved state as the epoch's checkpoint (Tune copies it now)."""
    metrics, directory = message
    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))


def train(config: dict) -> None:
    """Ray Tune function trainable: one trial, in a process of its own (trainables/forked.py);
    after a failure or an interrupted study it continues from the trial's last checkpoint."""
    cfg = TrialConfig.from_dict(config)
    os.environ[NODE_ENV] = ray.get_runtime_context().get_node_id()
    directory = Path(tune.get_context().get_trial_dir())
    directory.mkdir(parents=True, exist_ok=True)
    restore = load_state(tune.get_checkpoint())
    if not forked.available():  # the actor is not reused: this process is the trial's own
        run_trial(cfg, reporter(report_saved), directory, restore=restore, loaded_at=LOADED_AT)
        return
    # why: what every trial would import again (seconds each), the slot imports once: torch._dynamo
    # (each trial's first optimizer) and, for data sets read from files, albumentations and OpenCV
    for module in ("torch._dynamo", *(["trainables.file_stream"] if cfg.dataset in STREAMED else [])):
        importlib.import_module(module)
    # why: start-up runs from the fork, and for a slot's first trial from this process's imports
    loaded_at = LOADED_AT if _slot["trials"] == 0 else time.time()
    _slot["trials"] += 1
    forked.run_forked(
        lambda send: run_trial(cfg, reporter(send), directory, restore=restore, loaded_at=loaded_at), report_saved
    )
