"""The trial grid, built from a preset without starting Ray, so tests and --dry-run can call it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from layout import ALL_SOURCES, DETERMINISTIC, PAPER_MODES, PAPER_NOISY, STREAMS, arm_of
from trainables.config import TrialConfig

SOURCE_INDEX = {"init": 1, "order": 2, "augment": 3, "dropout": 4, "bitflip": 5}  # stream_seed's keys; never renumber


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
    arms: tuple[str, ...] = ()  # layout.ARMS to add, `repeats` runs each: one source of randomness varied per arm


def stream_seed(seed: int, source: str, repeat: int) -> int:
    """The seed of `source` in repeat `repeat` of an arm that varies it: a function of the
    configuration's seed, the source and the repeat alone, so arms pair up by repeat (the all arm's
    initial weights in repeat r are the init arm's)."""
    return int(np.random.SeedSequence([seed, SOURCE_INDEX[source], repeat]).generate_state(1)[0])


def arm_fields(arm: str, seed: int, repeat: int) -> dict[str, object]:
    """The settings that make a trial repeat `repeat` of `arm`: its mode and the seeds it varies."""
    if arm == "bitflip":
        return {"arm": arm, "mode": DETERMINISTIC, "bitflip_seed": stream_seed(seed, arm, repeat)}
    varied = STREAMS if arm == ALL_SOURCES else (arm,)
    mode = PAPER_NOISY if arm == ALL_SOURCES else DETERMINISTIC
    return {"arm": arm, "mode": mode, **{f"{s}_seed": stream_seed(seed, s, repeat) for s in varied}}


def build_trials(spec: GridSpec) -> list[dict]:
    """Every (seed, optimizer, mode, repeat) as a full, validated trial config.

    Deterministic trials come first within a configuration so the reference score exists early.
    """
    trials = []
    for seed in spec.seeds:
        for optimizer in spec.optimizers:
            base = {**spec.trial, **spec.per_optimizer.get(optimizer, {}), **spec.overrides, "seed": seed}
            base["optimizer"] = optimizer
            for mode in spec.modes:
                for repeat in range(spec.det_repeats if mode == DETERMINISTIC else spec.repeats):
                    trials.append(TrialConfig.from_dict({**base, "mode": mode, "repeat": repeat}).to_dict())
            for arm in spec.arms:
                for repeat in range(spec.repeats):
                    config = {**base, **arm_fields(arm, seed, repeat), "repeat": repeat}
                    trials.append(TrialConfig.from_dict(config).to_dict())
    return trials


SHORT_MODE = {
    "deterministic": "det",
    "nondeterministic": "nondet",
    "autotuner-only": "autotuner",
    "kernels-only": "kernels",
}


def trial_label(config: dict) -> str:
    """Short, readable name of a trial: optimizer, seed, arm (its mode, where it varies no other
    source), repeat. TensorBoard shows it, and a regex (_init_, _det_) picks an arm there."""
    arm = arm_of(config)
    return f"{config['optimizer']}_seed{config['seed']}_{SHORT_MODE.get(arm, arm)}_r{config['repeat']}"


def recorded(config: dict) -> dict:
    """The trial as Tune gets it (and params.json keeps it): its arm and every stream's seed written
    out, also where they are the defaults the grid, and so the study's name, leaves out."""
    cfg = TrialConfig.from_dict(config)
    seeds = {f"{s}_seed": cfg.stream_seed(s) for s in STREAMS}
    return {**config, "arm": cfg.arm_label(), **seeds, "bitflip_seed": cfg.bitflip_seed}
