"""One trial from seed to final digest, with no Ray in sight: `run_trial(cfg, report, directory)`.

`report` receives one metrics dict per epoch (the last one carrying the digests, timings, energy
and environment) and the state to checkpoint; trainables.tune_entry hands both to Tune, tests keep
them in a list.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from datasets import ImageSplits, get_dataset, reader_options
from datasets.image_folder import FileSplits
from datasets.registry import STREAMED
from metrics import scores
from trainables import determinism, streams
from trainables.artifacts import append_last_layer, save_predictions, write_last_layers
from trainables.batches import batch_count
from trainables.bitflip import flip_one_bit
from trainables.config import TrialConfig
from trainables.digests import StreamDigest, rng_sha256, state_sha256
from trainables.environment import EnergyMeter, describe
from trainables.losses import Loss
from trainables.models import classifier_of, create_model
from trainables.optim import Schedule, build_optimizer
from trainables.placement import Placement, pin
from trainables.trial_state import Tracking, capture_rng, restore_rng

Report = Callable[[dict, dict], None]  # (metrics, state to checkpoint)


@dataclass
class Evaluation:
    loss: float
    scores: dict[str, float]
    labels: np.ndarray
    probs: np.ndarray


def autocast(cfg: TrialConfig, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast for forward and loss when the preset asks for it; identical in both modes."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Loss,
    x: torch.Tensor,
    y: torch.Tensor,
    precision: contextlib.AbstractContextManager,
) -> torch.Tensor:
    """Forward, backward, step, zero_grad; returns the loss without forcing a device sync."""
    with precision:
        loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def predict(model: torch.nn.Module, x: torch.Tensor, tta: int) -> torch.Tensor:
    """Logits averaged over test-time views (TrialConfig.tta): the image and its mirror, then the
    pair shifted one pixel up-left and down-right (edges reflected), weighted half, quarter, quarter."""
    logits = model(x)
    if tta == 0:
        return logits
    logits = (logits + model(x.flip(3))) / 2
    if tta == 1:
        return logits
    h, w = x.shape[2:]
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = [padded[:, :, dy : dy + h, dx : dx + w] for dy, dx in ((0, 0), (2, 2))]
    return logits / 2 + sum((model(s) + model(s.flip(3))) / 8 for s in shifted)


def _full_batch_predict(model: torch.nn.Module, x: torch.Tensor, tta: int, size: int) -> torch.Tensor:
    """predict() on a GPU with a short last batch padded to `size` rows: one batch shape, so that
    cudnn.benchmark tunes the evaluation once (in eval mode no example sees another)."""
    n = len(x)
    if x.is_cuda and n < size:
        x = torch.cat([x, x.new_zeros(size - n, *x.shape[1:])])
    return predict(model, x, tta)[:n]


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    normalize: Callable,
    cfg: TrialConfig,
    loss_fn: Loss,
    precision: contextlib.AbstractContextManager,
) -> Evaluation:
    model.eval()
    with precision:
        outputs = [
            (_full_batch_predict(model, normalize(x), cfg.tta, cfg.eval_batch_size).float(), y) for x, y in batches
        ]
    logits, y = torch.cat([o[0] for o in outputs]), torch.cat([o[1] for o in outputs]).to(outputs[0][0].device)
    loss = float(loss_fn(logits, y))
    probs = loss_fn.probabilities(logits).cpu().numpy()
    y_np = y.cpu().numpy()
    return Evaluation(loss, scores(y_np, probs, cfg.metrics, cfg.f1_average), y_np, probs)


def _select_key(cfg: TrialConfig) -> Callable[[Evaluation], float] | None:
    """Lower is better; None means 'the last epoch'."""
    if cfg.select == "best_val_loss":
        return lambda ev: ev.loss
    if cfg.select == "best_val_auc":
        return lambda ev: -ev.scores["auc"]
    return None


def default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def normalizer(cfg: TrialConfig, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 images -> normalised float32, in the memory layout the model runs in."""
    mean = torch.tensor(cfg.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(cfg.std, device=device).view(1, -1, 1, 1)
    layout = torch.channels_last if cfg.channels_last else torch.contiguous_format
    return lambda x: ((x.float() / 255 - mean) / std).contiguous(memory_format=layout)


def build_model(cfg: TrialConfig, data: ImageSplits | FileSplits, outputs: int) -> torch.nn.Module:
    """The trial's model on the CPU, from the seeded RNG: the same initial weights on any device.
    A model that initialises from the data (airbench_net's whitening layer) sees the first 1,000
    training images, the same ones in every trial."""
    model = create_model(
        cfg.model,
        outputs,
        data.in_chans,
        cfg.pretrained,
        cfg.weights,
        cfg.drop_rate,
        cfg.drop_path_rate,
        cfg.model_args,
    )
    if hasattr(model, "init_from_data"):  # only in-memory data: cfg.check_streamed() refused the rest
        model.init_from_data(normalizer(cfg, torch.device("cpu"))(torch.from_numpy(data.train.images[:1000])))
    return model


class StartupClock:
    """Where a trial's start-up goes: imports (from `loaded_at`: its fork, or the slot's own start)
    and, from the call of run_trial, setup, data, model and the first training step."""

    def __init__(self, loaded_at: float | None) -> None:
        self.started = time.perf_counter()
        self.started_at = time.time() if loaded_at is None else loaded_at  # why: places the trial on the study's clock
        self.marks = {"imports": 0.0 if loaded_at is None else time.time() - loaded_at}

    def mark(self, name: str) -> None:
        self.marks[name] = time.perf_counter() - self.started

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def parts(self) -> dict[str, float]:
        m = self.marks
        return {
            "imports_s": m["imports"],
            "setup_s": m["setup"],
            "data_s": m["data"] - m["setup"],
            "model_s": m["model"] - m["data"],
            "first_step_s": m["first_step"] - m["model"],
        }


@dataclass
class Trial:
    """Everything one trial trains with, built by setup()."""

    cfg: TrialConfig
    device: torch.device
    directory: Path
    data: ImageSplits | FileSplits
    loss_fn: Loss
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    init_sha256: str
    placement: Placement
    dropout_sha256: str  # the training-time draws' generator as seeded: which dropout stream the trial drew from
    bitflip: dict | None  # what the bitflip arm changed (trainables.bitflip), or None


def setup(cfg: TrialConfig, device: torch.device, directory: Path, clock: StartupClock, placement: Placement) -> Trial:
    """Data, the checks it allows, then model, optimizer and schedule: in this order, since the
    model's initial weights are drawn from the RNG the determinism flags seeded."""
    data = get_dataset(cfg.dataset).load(Path(cfg.data_dir), **reader_options(cfg.dataset, cfg.to_dict()))
    clock.mark("data")
    if data.val is None and (cfg.select != "last" or cfg.scheduler == "plateau"):
        raise ValueError(
            f"{cfg.dataset} has no validation split, so select={cfg.select!r} / scheduler={cfg.scheduler!r} cannot work"
        )
    if len(cfg.mean) != data.in_chans:
        raise ValueError(f"mean/std have {len(cfg.mean)} channels but {cfg.dataset} images have {data.in_chans}")
    if cfg.dataset in STREAMED:
        cfg.check_streamed()
    loss_fn = Loss(cfg.loss, data.train.labels, device, cfg.label_smoothing)
    # why: the weights draw from the init stream alone: the host generator, reseeded right before them
    torch.random.default_generator.manual_seed(cfg.stream_seed("init"))
    model = build_model(cfg, data, loss_fn.outputs(len(data.classes)))
    flipped = flip_one_bit(model, cfg.bitflip_seed) if cfg.bitflip_seed >= 0 else None
    init_sha256 = state_sha256(model.state_dict())
    # why: from here on torch's generators serve only the model's own draws (dropout, drop-path): the
    # dropout stream. A default trial seeds them as determinism.apply did, and had drawn nothing since
    torch.manual_seed(cfg.stream_seed("dropout"))
    dropout_sha256 = rng_sha256()
    model.to(device, memory_format=torch.channels_last if cfg.channels_last else torch.preserve_format)
    optimizer = build_optimizer(cfg, model.parameters())
    schedule = Schedule(
        cfg, optimizer, steps_per_epoch=batch_count(len(data.train.labels), cfg.batch_size, cfg.drop_last)
    )
    clock.mark("model")
    return Trial(
        cfg,
        device,
        directory,
        data,
        loss_fn,
        model,
        optimizer,
        schedule,
        init_sha256,
        placement,
        dropout_sha256,
        flipped,
    )


def resume(trial: Trial, restore: dict | None) -> tuple[Tracking, int]:
    """The bookkeeping and the first epoch to train: 1, or the one after the restored checkpoint."""
    if restore is None:
        write_last_layers(
            trial.directory, {}
        )  # why: a trial started again from scratch must not keep a failed attempt's epochs
        return Tracking(), 1
    trial.model.load_state_dict(restore["model"])
    trial.optimizer.load_state_dict(restore["optimizer"])
    trial.schedule.load_state_dict(restore["schedule"])
    restore_rng(restore["rng"])
    track = Tracking.from_state(restore["tracking"])
    track.restart_epochs.append(restore["epoch"])
    write_last_layers(trial.directory, track.last_layer)  # this attempt's folder may be a new one
    return track, restore["epoch"] + 1


def train_epoch(
    trial: Trial, stream, epoch: int, normalize, precision, track: Tracking, digest: StreamDigest, clock: StartupClock
) -> tuple[float, int]:  # noqa: ANN001 (a Stream, a normalizer, an autocast)
    """One pass over the training stream: (mean training loss, examples seen). Epoch 1 also feeds
    the data digest; the very first step also ends the start-up clock."""
    cfg, device = trial.cfg, trial.device
    trial.model.train()
    if epoch == 1:
        digest.update(*stream.plan(epoch).digest_parts())
        track.order_sha256 = StreamDigest.of(stream.plan(epoch).order)
        track.augment_sha256 = StreamDigest.of(*stream.augment_draws(epoch))
    loss_sum, seen = torch.zeros((), device=device), 0
    for k, (x, y, idx) in enumerate(stream.epoch(epoch)):
        if epoch == 1 and k < cfg.digest_batches:
            digest.update(idx, x, y)
        loss_sum += train_step(trial.model, trial.optimizer, trial.loss_fn, normalize(x), y, precision) * len(y)
        trial.schedule.batch_step()
        seen += len(y)
        if track.first_step_s is None:
            if device.type == "cuda":
                torch.cuda.synchronize(device)  # why: once, so that start-up includes the first step's kernels
            clock.mark("first_step")
            track.first_step_s = clock.marks["imports"] + clock.marks["first_step"]
            track.startup_parts = clock.parts()
    train_loss = float(loss_sum) / seen  # the epoch's one host-device sync
    if not math.isfinite(train_loss):  # why: a diverged run would otherwise finish with a score and a digest
        raise RuntimeError(
            f"epoch {epoch}: the training loss is {train_loss}: training diverged (lr {cfg.lr:g} too high?)"
        )
    if epoch == 1:
        track.data_sha256 = digest.hexdigest()
    return train_loss, seen


def select(track: Tracking, evals: dict[str, Evaluation], selection_score, epoch: int) -> None:  # noqa: ANN001
    """Keep this epoch's test result as the trial's if it is the best so far by the validation
    score (lower is better), or if the trial takes the last epoch."""
    test = evals["test"]
    key = selection_score(evals["val"]) if selection_score is not None else None
    if key is None or key < track.best_key:  # select="last" takes every epoch in turn
        if key is not None:
            track.best_key = key
        track.chosen_epoch, track.chosen_scores = epoch, test.scores
        track.chosen_labels, track.chosen_probs = torch.from_numpy(test.labels), torch.from_numpy(test.probs)


def epoch_row(
    cfg: TrialConfig,
    epoch: int,
    train_loss: float,
    evals: dict[str, Evaluation | None],
    lr: float,
    seen: int,
    train_time: float,
    epoch_time: float,
) -> dict[str, object]:
    """What every epoch reports: losses and scores per split (NaN where the epoch was not evaluated,
    so that every row has the same keys, as progress.csv needs), the primary metric, lr and speed."""
    row: dict[str, object] = {"epoch": epoch, "train_loss": train_loss}
    for name, ev in evals.items():
        row[f"{name}_loss"] = math.nan if ev is None else ev.loss
        row.update({f"{name}_{m}": math.nan if ev is None else ev.scores[m] for m in cfg.metrics})
    test = evals["test"]
    row.update(
        metric=math.nan if test is None else test.scores[cfg.metric],
        lr=lr,
        train_time_s=train_time,
        epoch_time_s=epoch_time,
        samples_per_s=seen / train_time,
    )
    return row


def final_row(trial: Trial, track: Tracking, clock: StartupClock, total_joules: float | None) -> dict[str, object]:
    """What the last epoch adds: the selected score, every digest, runtime, energy, environment;
    the selected epoch's predictions go beside the results."""
    cfg = trial.cfg
    final = track.chosen_scores[cfg.metric]
    if not math.isfinite(final):
        raise RuntimeError(
            f"the selected epoch's test {cfg.metric} is {final}"
            + (": AUC needs both classes in the test split" if cfg.metric == "auc" else "")
        )
    save_predictions(trial.directory, track.chosen_labels.numpy(), track.chosen_probs.numpy(), track.chosen_epoch)
    return dict(
        final_metric=final,
        final_epoch=track.chosen_epoch,
        weights_sha256=state_sha256(trial.model.state_dict()),
        init_sha256=trial.init_sha256,
        data_sha256=track.data_sha256,
        # why: one digest per seed stream, so that a study shows which stream each arm moved
        order_sha256=track.order_sha256,
        augment_sha256=track.augment_sha256,
        dropout_sha256=trial.dropout_sha256,
        bitflip=trial.bitflip,
        runtime_s=track.elapsed_s + clock.elapsed(),
        started_at=clock.started_at,
        startup_s=track.first_step_s,
        startup_parts=dict(track.startup_parts),
        gpu_energy_j=total_joules,
        energy_j=None if total_joules is None else total_joules * min(cfg.gpu_share, 1.0),
        nondeterministic_ops=list(track.ops),
        restarts=len(track.restart_epochs),
        restart_epochs=list(track.restart_epochs),
        # why: the switches and the cores as this process ran with them
        env={**describe(trial.device), **trial.placement.describe(), **determinism.current()._asdict()},
    )


def checkpoint(trial: Trial, epoch: int, track: Tracking, clock: StartupClock, total_joules: float | None) -> dict:
    """The state a restart continues from: weights, optimizer, schedule, every RNG, bookkeeping."""
    tracking = {**track.to_state(), "elapsed_s": track.elapsed_s + clock.elapsed(), "gpu_joules": total_joules}
    return {
        "epoch": epoch,
        "model": trial.model.state_dict(),
        "optimizer": trial.optimizer.state_dict(),
        "schedule": trial.schedule.state_dict(),
        "rng": capture_rng(),
        "tracking": tracking,
    }


def run_trial(
    cfg: TrialConfig,
    report: Report,
    directory: Path,
    device: torch.device | None = None,
    restore: dict | None = None,
    loaded_at: float | None = None,
    on_epoch_start: Callable[[int, Tracking], None] | None = None,
    cores: int = 0,
) -> None:
    """Train one trial, reporting each epoch with the state to checkpoint; `restore` is such a state,
    to continue after it; `loaded_at` is the time.time() at which the trial's process started (was
    forked, or began loading this code), so that start-up is measured from there; `on_epoch_start`
    lets tests fail a trial at a chosen epoch; `cores` > 0 pins this process to that many free cores,
    as a trial's own process is pinned to what Ray reserved for it."""
    clock = StartupClock(loaded_at)
    placement = pin(cores)  # why: first, so that every thread the trial starts (workers too) stays on its cores
    determinism.apply(cfg.mode, cfg.seed, cfg.conv_tf32, cfg.matmul_tf32, cfg.det_warn_only)  # before any CUDA work
    device = device or default_device()
    if device.type == "cuda":
        torch.cuda.init()  # why: counted with the flags (setup_s), not hidden in the data or model part
    clock.mark("setup")
    trial = setup(cfg, device, directory, clock, placement)
    track, first_epoch = resume(trial, restore)
    if first_epoch > cfg.epochs:  # finished before the study stopped; its final result is recorded
        return
    stream, held = streams.build(cfg, trial.data, device)
    normalize, precision = normalizer(cfg, device), autocast(cfg, device)
    energy, digest, selection_score = EnergyMeter(device), StreamDigest(), _select_key(cfg)
    # why: only --det-warn-only lets a non-deterministic op through; then each one is recorded
    ops = determinism.NondeterministicOpLog() if cfg.det_warn_only else None
    with ops or contextlib.nullcontext():
        for epoch in range(first_epoch, cfg.epochs + 1):
            if on_epoch_start is not None:
                on_epoch_start(epoch, track)
            epoch_start = time.perf_counter()
            train_loss, seen = train_epoch(trial, stream, epoch, normalize, precision, track, digest, clock)
            train_time = time.perf_counter() - epoch_start
            evaluated = epoch % cfg.eval_every == 0 or epoch == cfg.epochs
            evals = {
                name: evaluate(trial.model, batches(), normalize, cfg, trial.loss_fn, precision) if evaluated else None
                for name, batches in held.items()
            }
            lr = trial.optimizer.param_groups[0]["lr"]
            trial.schedule.step(evals["val"].loss if evals.get("val") is not None else None)
            track.last_layer.update(append_last_layer(directory, epoch, classifier_of(trial.model)))
            if evaluated:  # why: eval_every > 1 needs select=last (TrialConfig), so the last epoch is chosen
                select(track, evals, selection_score, epoch)
            row = epoch_row(cfg, epoch, train_loss, evals, lr, seen, train_time, time.perf_counter() - epoch_start)
            if ops:
                track.ops += [op for op in ops.ops if op not in track.ops]
            joules = energy.joules()
            total_joules = None if joules is None else joules + (track.gpu_joules or 0.0)
            if epoch == cfg.epochs:
                row.update(final_row(trial, track, clock, total_joules))
            report(row, checkpoint(trial, epoch, track, clock, total_joules))


def fail_once_at(epoch: int) -> Callable[[int, Tracking], None]:
    """An on_epoch_start hook for tests: fail at `epoch` in a first attempt, pass after a restart."""

    def hook(current: int, track: Tracking) -> None:
        if current == epoch and not track.restart_epochs:
            raise RuntimeError(f"failure injected at epoch {epoch} (tests only)")

    return hook
