"""The one module of the trainable that talks to Ray Tune: config in, metrics and checkpoints out.

Keep every Ray call here: its reporting API has changed five times across releases.
"""
from __future__ import annotations

import time

LOADED_AT = time.time()  # why: start-up is measured from here, before torch and Ray are imported

import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Optional  # noqa: E402

import torch  # noqa: E402
from ray import tune  # noqa: E402

from trainables.config import TrialConfig  # noqa: E402
from trainables.loop import run_trial  # noqa: E402

STATE_FILE = "state.pt"


def load_state(checkpoint: Optional[tune.Checkpoint]) -> Optional[dict]:
    """The trial state of a Tune checkpoint, read as data only (weights_only: no code unpickled)."""
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as directory:
        return torch.load(Path(directory) / STATE_FILE, map_location="cpu", weights_only=True)


def report(metrics: dict, state: dict) -> None:
    """One epoch's metrics, with the state to continue from as the epoch's checkpoint."""
    with tempfile.TemporaryDirectory() as directory:
        torch.save(state, Path(directory) / STATE_FILE)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))


def train(config: dict) -> None:
    """Ray Tune function trainable: one trial, in its own process (actors are not reused); after a
    failure or an interrupted study it continues from the trial's last checkpoint."""
    cfg = TrialConfig.from_dict(config)
    directory = Path(tune.get_context().get_trial_dir())
    directory.mkdir(parents=True, exist_ok=True)
    run_trial(cfg, report, directory, restore=load_state(tune.get_checkpoint()), loaded_at=LOADED_AT)
