"""What a trial must carry across a restart to end exactly as if it had never stopped.

A checkpoint holds the model, optimizer and schedule, every RNG (Python, NumPy, torch CPU and
CUDA) and this bookkeeping. The data stream needs no state of its own: its order and every
augmentation draw are a function of (seed, epoch), and checkpoints fall on epoch boundaries.
Everything is tensors and plain Python values, so torch.load(weights_only=True) reads it back
without unpickling code.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, fields

import numpy as np
import torch


@dataclass
class Tracking:
    data_sha256: str | None = None  # fixed once epoch 1 has been fed
    order_sha256: str | None = None  # epoch 1's order alone: the order stream (fixed with data_sha256)
    augment_sha256: str | None = None  # epoch 1's augmentation draws alone: the augment stream
    chosen_epoch: int = 0  # the epoch whose test score is the trial's (see TrialConfig.select)
    chosen_scores: dict = field(default_factory=dict)
    chosen_labels: torch.Tensor | None = None
    chosen_probs: torch.Tensor | None = None
    best_key: float = float("inf")  # lower is better
    first_step_s: float | None = None  # seconds from the first start to the first training step
    startup_parts: dict = field(
        default_factory=dict
    )  # where those seconds went: imports_s, setup_s (determinism flags, CUDA), data_s, model_s, first_step_s
    elapsed_s: float = 0.0  # runtime of earlier attempts
    gpu_joules: float | None = None  # GPU energy of earlier attempts
    ops: list = field(default_factory=list)  # ops without a deterministic kernel (--det-warn-only)
    restart_epochs: list = field(default_factory=list)  # the epoch each restart continued after
    last_layer: dict = field(default_factory=dict)  # "e0001_weight" -> tensor, every epoch so far

    def to_state(self) -> dict:
        """A shallow dict: the report saves it at once, so copying every epoch's layers is not needed."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_state(cls, state: dict) -> Tracking:
        return cls(**state)


def capture_rng() -> dict:
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(state: dict) -> None:
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
