"""The one module of the trainable that talks to Ray Tune.

Keep every Ray call here: its reporting API has changed five times across releases.
"""
from __future__ import annotations

from pathlib import Path

from ray import tune

from trainables.config import TrialConfig
from trainables.loop import run_trial


def train(config: dict) -> None:
    """Ray Tune function trainable: one trial, in its own process (actors are not reused)."""
    cfg = TrialConfig.from_dict(config)
    directory = Path(tune.get_context().get_trial_dir())
    directory.mkdir(parents=True, exist_ok=True)
    run_trial(cfg, tune.report, directory)
