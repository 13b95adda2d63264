"""One trial from seed to final digest, with no Ray in sight: `run_trial(cfg, report, directory)`.

`report` receives one metrics dict per epoch (the last one carrying the digests, timings, energy
and environment); trainables.tune_entry passes tune.report, tests pass list.append.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from datasets import get_dataset
from trainables import determinism
from trainables.artifacts import append_last_layer, save_predictions
from trainables.batches import TrainStream, eval_batches
from trainables.config import TrialConfig
from trainables.digests import StreamDigest, state_sha256
from trainables.environment import EnergyMeter, describe
from trainables.metrics import scores
from trainables.models import classifier_of, create_model
from trainables.optim import Schedule, build_optimizer

Report = Callable[[dict], None]


@dataclass
class Evaluation:
    loss: float
    scores: dict[str, float]
    labels: np.ndarray
    probs: np.ndarray


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Forward, backward, step, zero_grad; returns the loss without forcing a device sync."""
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


@torch.no_grad()
def evaluate(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, normalize: Callable,
             cfg: TrialConfig, device: torch.device) -> Evaluation:
    model.eval()
    logits = torch.cat([model(normalize(x)) for x, _ in eval_batches(images, labels, cfg.eval_batch_size, device)])
    y = labels.to(logits.device)
    loss = float(F.cross_entropy(logits, y, reduction="mean"))
    probs = torch.softmax(logits.float(), 1).cpu().numpy()
    y_np = labels.cpu().numpy()
    return Evaluation(loss, scores(y_np, probs, cfg.metrics, cfg.f1_average), y_np, probs)


def _select_key(cfg: TrialConfig) -> Optional[Callable[[Evaluation], float]]:
    """Lower is better; None means 'the last epoch'."""
    if cfg.select == "best_val_loss":
        return lambda ev: ev.loss
    if cfg.select == "best_val_auc":
        return lambda ev: -ev.scores["auc"]
    return None


def default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def run_trial(cfg: TrialConfig, report: Report, directory: Path, device: Optional[torch.device] = None) -> dict:
    """Train one trial, reporting each epoch; returns the last report."""
    started = time.perf_counter()
    determinism.apply(cfg.mode, cfg.seed, cfg.conv_tf32, cfg.matmul_tf32, cfg.det_warn_only)  # before any CUDA work
    device = device or default_device()
    data = get_dataset(cfg.dataset).load(Path(cfg.data_dir))
    if data.val is None and (cfg.select != "last" or cfg.scheduler == "plateau"):
        raise ValueError(f"{cfg.dataset} has no validation split, so select={cfg.select!r} / scheduler={cfg.scheduler!r} cannot work")
    if len(cfg.mean) != data.in_chans:
        raise ValueError(f"mean/std have {len(cfg.mean)} channels but {cfg.dataset} images have {data.in_chans}")

    model = create_model(cfg.model, len(data.classes), data.in_chans)  # on the CPU: same init anywhere
    init_sha256 = state_sha256(model.state_dict())
    model.to(device)
    optimizer = build_optimizer(cfg, model.parameters())
    schedule = Schedule(cfg, optimizer)
    stream = TrainStream(data.train.images, data.train.labels, batch_size=cfg.batch_size, seed=cfg.seed,
                         crop_padding=cfg.crop_padding, hflip=cfg.hflip, num_workers=cfg.num_workers, device=device)
    home = device if cfg.num_workers == 0 else torch.device("cpu")
    held = {name: (torch.from_numpy(s.images).to(home), torch.from_numpy(s.labels).to(home))
            for name, s in (("val", data.val), ("test", data.test)) if s is not None}
    mean = torch.tensor(cfg.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(cfg.std, device=device).view(1, -1, 1, 1)
    normalize = lambda x: (x.float() / 255 - mean) / std  # noqa: E731

    energy = EnergyMeter(device)
    data_digest = StreamDigest()
    better = _select_key(cfg)
    chosen: Optional[tuple[int, Evaluation]] = None
    best_key = float("inf")
    first_step_s: Optional[float] = None
    # why: only --det-warn-only lets a non-deterministic op through; then each one is recorded
    ops = determinism.NondeterministicOpLog() if cfg.det_warn_only else None
    with ops or contextlib.nullcontext():
        for epoch in range(1, cfg.epochs + 1):
            epoch_start = time.perf_counter()
            model.train()
            plan = stream.plan(epoch)
            if epoch == 1:
                data_digest.update(*plan.digest_parts())
            loss_sum, seen = torch.zeros((), device=device), 0
            for k, (x, y, idx) in enumerate(stream.epoch(epoch, plan)):
                if epoch == 1 and k < cfg.digest_batches:
                    data_digest.update(idx, x, y)
                loss_sum += train_step(model, optimizer, normalize(x), y) * len(y)
                seen += len(y)
                if first_step_s is None:
                    first_step_s = time.perf_counter() - started
            train_loss = float(loss_sum) / seen  # the epoch's one host-device sync
            train_time = time.perf_counter() - epoch_start
            evals = {name: evaluate(model, *held[name], normalize, cfg, device) for name in held}
            lr = optimizer.param_groups[0]["lr"]
            schedule.step(evals["val"].loss if "val" in evals else None)
            append_last_layer(directory, epoch, classifier_of(model))

            test = evals["test"]
            if better is None:
                chosen = (epoch, test)
            elif better(evals["val"]) < best_key:
                best_key, chosen = better(evals["val"]), (epoch, test)
            metrics: dict[str, object] = {"epoch": epoch, "train_loss": train_loss}
            for name, ev in evals.items():
                metrics[f"{name}_loss"] = ev.loss
                metrics.update({f"{name}_{m}": v for m, v in ev.scores.items()})
            metrics.update(metric=test.scores[cfg.metric], lr=lr, train_time_s=train_time,
                           epoch_time_s=time.perf_counter() - epoch_start, samples_per_s=seen / train_time)
            if epoch == cfg.epochs:
                assert chosen is not None
                save_predictions(directory, chosen[1].labels, chosen[1].probs, chosen[0])
                gpu_joules = energy.joules()
                metrics.update(
                    final_metric=chosen[1].scores[cfg.metric], final_epoch=chosen[0],
                    weights_sha256=state_sha256(model.state_dict()), init_sha256=init_sha256,
                    data_sha256=data_digest.hexdigest(), runtime_s=time.perf_counter() - started,
                    startup_s=first_step_s, gpu_energy_j=gpu_joules,
                    energy_j=None if gpu_joules is None else gpu_joules * min(cfg.gpu_share, 1.0),
                    nondeterministic_ops=list(ops.ops) if ops else [], env=describe(device))
            report(metrics)
    return metrics
