"""The experiment directory's names, declared once: the trainable writes them, the driver checks them,
the analysis reads them. Dependency-free, so the analysis can import it and still needs neither torch
nor Ray (README, "The experiment directory", describes the same layout for users).
"""

from __future__ import annotations

PREDICTIONS_FILE = "predictions.npz"  # beside a trial's results: labels, probs (float32 N x C), the selected epoch
LAST_LAYER_FILE = "last_layer.npz"  # beside a trial's results: one entry per epoch and parameter, see epoch_key
FINISHED_KEY = "weights_sha256"  # in a trial's last result only when the trial finished

DETERMINISTIC = "deterministic"
PAPER_NOISY = "nondeterministic"  # the reference study's non-deterministic setting
# the paper's two CUDA settings, then the two that take its difference apart (trainables.determinism.SWITCHES)
MODES = (DETERMINISTIC, PAPER_NOISY, "autotuner-only", "kernels-only")
PAPER_MODES = MODES[:2]

CONFIG_KEYS = ("optimizer", "seed")  # one configuration; its deterministic repeats are one observation
TRIAL_KEYS = ("optimizer", "seed", "mode", "repeat")  # one trial of the grid


def epoch_key(epoch: int, parameter: str) -> str:
    """The last-layer file's entry for one epoch's parameter: e0001_weight."""
    return f"e{epoch:04d}_{parameter}"


def parse_epoch_key(key: str) -> tuple[int, str]:
    """(epoch, parameter) of an epoch_key; ValueError for anything else."""
    head, sep, parameter = key.partition("_")
    if not (sep and head[:1] == "e" and head[1:].isdigit() and parameter):
        raise ValueError(f"not an epoch key: {key!r}")
    return int(head[1:]), parameter
