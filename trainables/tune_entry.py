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
from trainables.loop import Report, fail_once_at, run_trial  # noqa: E402
from trainables.placement import pinning_wanted  # noqa: E402

STATE_FILE = "state.pt"
FAIL_AT_EPOCH_ENV = "CUDA_RANDOMNESS_FAIL_AT_EPOCH"  # tests only: each trial of the study fails once at this epoch
# why: one decision, read by the driver (Tune's reuse_actors) and by train below: a kept actor is
# safe only because each trial forks a fresh process from it; reusing actors without forking would
# carry determinism flags and cuDNN's autotuning cache from one trial into the next
REUSE_ACTORS = forked.available()
# imported once per slot, what every trial would otherwise import again (seconds each): module ->
# whether only data sets streamed from files need it
SLOT_PRELOAD = {
    "torch._dynamo": False,  # every trial's first optimizer step imports it
    "trainables.file_stream": True,  # albumentations and OpenCV
}


class Slot:
    """This process as a kept slot: its first trial waited for the slot's imports, later ones did not."""

    def __init__(self, loaded_at: float) -> None:
        self.loaded_at, self.trials = loaded_at, 0

    def next_trial_origin(self) -> float:
        """Where the next trial's start-up is measured from: the imports for the first, now for the rest."""
        origin = self.loaded_at if self.trials == 0 else time.time()
        self.trials += 1
        return origin


SLOT = Slot(LOADED_AT)


def read_state(directory: Path) -> dict:
    """One checkpoint's trial state, read as data only (weights_only: no code unpickled)."""
    # why: the checkpoint holds CUDA tensors, and this is the slot, which must never start CUDA
    # (a forked child cannot use its parent's context); the trial moves them to its device
    return torch.load(directory / STATE_FILE, map_location="cpu", weights_only=True)


def load_state(checkpoint: tune.Checkpoint | None) -> dict | None:
    """The trial state of Tune's latest checkpoint; if that one does not load (cut off by a full
    disk or a kill), the newest older one of the trial that does, said in one line. With none, the
    trial starts again from scratch, said too. Never torch's own message, which advises unpickling."""
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as directory:
        try:
            return read_state(Path(directory))
        except Exception as exc:  # noqa: BLE001 (whatever a cut-off file raises)
            broken = f"{Path(checkpoint.path).name} does not load ({type(exc).__name__})"
    for older in sorted(Path(checkpoint.path).parent.glob("checkpoint_*"), reverse=True):
        if older.name >= Path(checkpoint.path).name:
            continue
        try:
            state = read_state(older)
        except Exception:  # noqa: BLE001, S112
            continue
        print(f"{broken}; continuing from {older.name} (after epoch {state['epoch']})", flush=True)
        return state
    print(f"{broken}, and no older checkpoint of this trial does; it starts again from scratch", flush=True)
    return None


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
    # why: the tests of whole studies run the real command, so their failure hook travels as a variable
    hook = fail_once_at(int(os.environ[FAIL_AT_EPOCH_ENV])) if os.environ.get(FAIL_AT_EPOCH_ENV) else None
    # why: the trial's process claims as many cores as Ray reserved for it (trainables/placement.py)
    cores = int(ray.get_runtime_context().get_assigned_resources().get("CPU", 0)) if pinning_wanted() else 0
    if not REUSE_ACTORS:  # the actor is not reused: this process is the trial's own
        run_trial(
            cfg,
            reporter(report_saved),
            directory,
            restore=restore,
            loaded_at=LOADED_AT,
            on_epoch_start=hook,
            cores=cores,
        )
        return
    # why: what every trial would import again (seconds each), the slot imports once
    for module, streamed_only in SLOT_PRELOAD.items():
        if not streamed_only or cfg.dataset in STREAMED:
            importlib.import_module(module)
    loaded_at = SLOT.next_trial_origin()
    assert not torch.cuda.is_initialized(), "a slot must never start CUDA: its forked trials could not use the GPU"
    forked.run_forked(
        lambda send: run_trial(
            cfg, reporter(send), directory, restore=restore, loaded_at=loaded_at, on_epoch_start=hook, cores=cores
        ),
        report_saved,
    )
