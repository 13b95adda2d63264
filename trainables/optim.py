"""Optimizer and learning-rate schedule from a TrialConfig."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from trainables.config import TrialConfig


def build_optimizer(cfg: TrialConfig, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.nesterov
        )
    return torch.optim.Adam(
        params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), amsgrad=cfg.amsgrad, weight_decay=cfg.weight_decay
    )


class Schedule:
    """`batch_step()` after every optimizer step and `step(val_loss)` after every epoch, whatever
    the scheduler, so the loop need not know which one steps when."""

    def __init__(self, cfg: TrialConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> None:
        self.kind = cfg.scheduler
        self.inner: object | None = None
        if cfg.scheduler == "onecycle":
            # why: a short run learns most from a brief linear warm-up and a long linear decay to ~0;
            # one step more than the optimizer takes, since it is stepped after the last one too
            self.inner = torch.optim.lr_scheduler.OneCycleLR(
                optimizer,
                max_lr=cfg.lr,
                total_steps=cfg.epochs * steps_per_epoch + 1,
                pct_start=cfg.warmup_frac,
                anneal_strategy="linear",
                cycle_momentum=False,
                div_factor=5.0,
                final_div_factor=1e3,
            )
        elif cfg.scheduler == "cosine_warmup":
            # why: Summers & Dinneen's ResNet-14 recipe: a linear warm-up to the peak, then a cosine to 0, per step
            warm, total = round(cfg.warmup_epochs * steps_per_epoch), cfg.epochs * steps_per_epoch
            self.inner = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _warmup_cosine(step, warm, total))
        elif cfg.scheduler == "cosine":
            self.inner = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
        elif cfg.scheduler == "plateau":
            self.inner = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min", patience=cfg.plateau_patience, factor=cfg.plateau_factor, min_lr=cfg.min_lr
            )

    def batch_step(self) -> None:
        if self.kind in ("onecycle", "cosine_warmup"):
            self.inner.step()  # type: ignore[union-attr]

    def step(self, val_loss: float | None) -> None:
        if self.kind == "cosine":
            self.inner.step()  # type: ignore[union-attr]
        elif self.kind == "plateau":
            self.inner.step(val_loss)  # type: ignore[union-attr]

    def state_dict(self) -> dict:
        return self.inner.state_dict() if self.inner is not None else {}  # type: ignore[union-attr]

    def load_state_dict(self, state: dict) -> None:
        if self.inner is not None:
            self.inner.load_state_dict(state)  # type: ignore[union-attr]


def _warmup_cosine(step: int, warm: int, total: int) -> float:
    """The lr factor of optimizer step `step` (0-based): (step + 1) / warm while warming up, then a
    cosine from 1 to 0 over the remaining steps."""
    if step < warm:
        return (step + 1) / warm
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))
