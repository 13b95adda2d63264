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

# sources of training randomness, one per arm (DESIGN.md): each varies one seed stream of the trial in
# deterministic mode, but "all", which varies every stream with CUDA non-deterministic
ARMS = ("init", "order", "augment", "dropout", "bitflip", "all")
STREAMS = ("init", "order", "augment", "dropout")  # a trial's seed streams, each with its own seed
ALL_SOURCES = "all"

# each digest a trial reports, and the arms whose runs move it: every other trial of a configuration
# must share it with the deterministic control (analysis.cells.broken_inputs checks it)
DIGEST_VARIED_BY = {
    "init_sha256": ("init", "bitflip", ALL_SOURCES),
    "data_sha256": ("order", "augment", ALL_SOURCES),
    "order_sha256": ("order", ALL_SOURCES),
    "augment_sha256": ("augment", ALL_SOURCES),
    "dropout_sha256": ("dropout", ALL_SOURCES),
}

CONFIG_KEYS = ("optimizer", "seed")  # one configuration; its deterministic repeats are one observation
TRIAL_KEYS = ("optimizer", "seed", "mode", "repeat")  # one trial of the grid


def arm_of(params: dict) -> str:
    """A trial's arm: its params' `arm`, else (a CUDA arm, or a study made before arms) its mode."""
    return params.get("arm") or params["mode"]


def epoch_key(epoch: int, parameter: str) -> str:
    """The last-layer file's entry for one epoch's parameter: e0001_weight."""
    return f"e{epoch:04d}_{parameter}"


def parse_epoch_key(key: str) -> tuple[int, str]:
    """(epoch, parameter) of an epoch_key; ValueError for anything else."""
    head, sep, parameter = key.partition("_")
    if not (sep and head[:1] == "e" and head[1:].isdigit() and parameter):
        raise ValueError(f"not an epoch key: {key!r}")
    return int(head[1:]), parameter
