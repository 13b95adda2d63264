"""The trial grid, built from a preset without starting Ray, so tests and --dry-run can call it."""

from __future__ import annotations

from dataclasses import dataclass, field

from layout import DETERMINISTIC, PAPER_MODES
from trainables.config import TrialConfig


@dataclass(frozen=True)
class GridSpec:
    seeds: tuple[int, ...]
    optimizers: tuple[str, ...]
    repeats: int  # repeats per configuration of each mode but deterministic
    det_repeats: int  # deterministic repeats per configuration
    trial: dict = field(default_factory=dict)  # TrialConfig fields shared by every trial
    per_optimizer: dict = field(default_factory=dict)  # optimizer -> fields for it alone
    overrides: dict = field(default_factory=dict)  # CLI values; they beat both of the above
    modes: tuple[str, ...] = PAPER_MODES  # deterministic first: the reference every other mode is compared with


def build_trials(spec: GridSpec) -> list[dict]:
    """Every (seed, optimizer, mode, repeat) as a full, validated trial config.

    Deterministic trials come first within a configuration so the reference score exists early.
    """
    trials = []
    for seed in spec.seeds:
        for optimizer in spec.optimizers:
            for mode in spec.modes:
                for repeat in range(spec.det_repeats if mode == DETERMINISTIC else spec.repeats):
                    config = {
                        **spec.trial,
                        **spec.per_optimizer.get(optimizer, {}),
                        **spec.overrides,
                        "seed": seed,
                        "optimizer": optimizer,
                        "mode": mode,
                        "repeat": repeat,
                    }
                    trials.append(TrialConfig.from_dict(config).to_dict())
    return trials


SHORT_MODE = {
    "deterministic": "det",
    "nondeterministic": "nondet",
    "autotuner-only": "autotuner",
    "kernels-only": "kernels",
}


def trial_label(config: dict) -> str:
    """Short, readable name of a trial: optimizer, seed, mode, repeat (TensorBoard shows it)."""
    mode = SHORT_MODE[config["mode"]]
    return f"{config['optimizer']}_seed{config['seed']}_{mode}_r{config['repeat']}"
