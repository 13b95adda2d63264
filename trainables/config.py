"""One trial's settings, frozen, built from Ray Tune's config dict.

Tune hands every trial a plain dict (the same one it writes to params.json). A typo in a key or a
string where a number belongs would otherwise run for hours before anyone noticed, so the dict is
checked against this dataclass: unknown keys and wrong types are refused, naming the key.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass

from layout import ALL_SOURCES, ARMS, DETERMINISTIC, MODES, PAPER_NOISY, STREAMS

OPTIMIZERS = ("adam", "sgd")
SCHEDULERS = ("cosine", "plateau", "constant", "onecycle", "cosine_warmup")
PRECISIONS = ("fp32", "bf16")
METRICS = ("accuracy", "f1", "auc")
SELECTIONS = ("last", "best_val_loss", "best_val_auc")
AUGMENTS = (
    "none",
    "flip",
    "sdnet",
    "cbis",
)  # trainables.augment.PIPELINES (albumentations), named here without importing it
IN_MEMORY_MODELS = ("airbench_net",)  # models that initialise from the training images held in memory
MAX_SEED = 2**32 - 1  # NumPy's legacy seeding takes no more; every library the trial seeds takes this range


@dataclass(frozen=True)
class TrialConfig:
    # what is trained
    dataset: str  # dataset name the driver prepared (digits, cifar10, ...)
    data_dir: str  # absolute path the driver prepared; "" for data bundled with a package
    model: str  # a project model (trainables.models) or any timm model name
    # the grid axes: (seed, optimizer) is a configuration; mode and repeat make it a trial
    seed: int  # seeds Python, NumPy, torch, the data order and every augmentation draw
    optimizer: str  # adam | sgd
    mode: str  # deterministic | nondeterministic (the paper's two) | autotuner-only | kernels-only (trainables.determinism)
    repeat: int  # repeat index; deliberately feeds no RNG, so repeats differ only by CUDA
    # optimisation
    epochs: int  # passes over the training split
    batch_size: int  # examples per optimizer step
    lr: float  # initial learning rate
    momentum: float  # SGD momentum (unused by Adam)
    weight_decay: float  # L2 penalty added to the gradient (torch's coupled weight_decay)
    beta1: float  # Adam's first-moment decay (unused by SGD)
    beta2: float  # Adam's second-moment decay (unused by SGD)
    amsgrad: bool  # Adam's AMSGrad variant (unused by SGD)
    nesterov: bool  # SGD's Nesterov momentum (unused by Adam)
    scheduler: str  # cosine: per epoch, T_max = epochs | plateau: on val loss | constant | onecycle: per step, linear | cosine_warmup: per step, warmup_epochs linear, then cosine to 0
    warmup_frac: float  # onecycle: fraction of all steps spent rising from lr / 5 to lr, then falling to ~0
    plateau_patience: int  # epochs without val-loss improvement before the lr is cut
    plateau_factor: float  # lr multiplier on a plateau
    min_lr: float  # floor for the plateau scheduler's lr
    # data
    crop_padding: int  # RandomCrop padding in pixels; 0 turns the crop off
    hflip: bool  # random horizontal flip with probability 0.5
    alternate_flip: bool  # with hflip: epoch 1's random flips, then every image mirrored in alternate epochs
    drop_last: bool  # skip each epoch's last partial batch: one batch shape, so cudnn.benchmark tunes once
    mean: tuple[float, ...]  # per-channel normalisation mean, pixels scaled to [0, 1]
    std: tuple[float, ...]  # per-channel normalisation std, pixels scaled to [0, 1]
    image_size: tuple[int, int]  # (height, width) files are resized to; (0, 0) for in-memory sets (as stored)
    augment: str  # albumentations pipeline for file data sets: none | flip | sdnet (trainables.augment)
    num_workers: int  # DataLoader workers; 0 keeps an in-memory data set on the trial's device
    eval_batch_size: int  # examples per evaluation batch; changes no result
    eval_cache_mb: int  # file data sets: held-out splits stay in memory, decoded, after their first pass while together they fit in this many MB of uint8; changes no result
    # measurement
    loss: str  # ce: softmax cross-entropy | bce: one logit, BCE with pos_weight = negatives / positives
    label_smoothing: float  # ce only: weight of the uniform target, 0 for none
    tta: int  # test-time views averaged: 0 none | 1 + mirror | 2 + mirror and 1-pixel shifts (6 views)
    precision: str  # fp32 | bf16 (autocast for forward and loss; weights and optimizer stay fp32)
    channels_last: bool  # NHWC memory layout for model and inputs (faster convolutions in bf16)
    pretrained: bool  # start from the model's ImageNet weights (timm models)
    weights: str  # file with those weights ("" : timm's download); read as data (weights_only)
    drop_benign_without_callback: bool  # CBIS-DDSM: drop BENIGN_WITHOUT_CALLBACK images instead of counting them benign
    metrics: tuple[str, ...]  # reported on val and test each epoch: accuracy, f1, auc
    metric: str  # the primary test metric, reported as `metric`
    f1_average: str  # sklearn's average= for F1: macro (CIFAR-10) or weighted (SDNET)
    select: str  # which epoch's test score is the trial's: last | best_val_loss | best_val_auc
    conv_tf32: bool  # cuDNN convolutions may use TF32 (PyTorch's default); same in both modes
    matmul_tf32: bool  # matmuls may use TF32 (PyTorch's default is no); same in both modes
    det_warn_only: bool  # deterministic mode warns (and records) instead of failing on an op
    gpu_share: float  # fraction of a GPU this trial holds; apportions the GPU's energy counter
    digest_batches: int  # leading training batches whose pixels enter data_sha256
    # added after studies were first written: a params.json or study.json without the key means the
    # default, and presets leave it out at its default, so their studies keep their directory names
    # eval_every: evaluate every this many epochs and always the last (select=last only); changes no final result
    eval_every: int = 1
    # sources of randomness, one at a time (sweeps.grid builds the arms; DESIGN.md): each stream
    # draws from a seed of its own, which is the configuration's seed unless the trial's arm varies it
    arm: str = ""  # "": the trial's CUDA mode alone (the control when deterministic); else one of layout.ARMS, or the mode's name
    init_seed: int = -1  # initial weights; -1: the configuration's seed
    order_seed: int = -1  # the data order; -1: the seed
    augment_seed: int = -1  # every augmentation draw (crops, flips, albumentations); -1: the seed
    dropout_seed: int = -1  # the model's own training-time draws (dropout, drop-path); -1: the seed
    bitflip_seed: int = -1  # the bitflip arm: picks the one initial weight whose lowest mantissa bit flips; -1: none
    drop_rate: float = 0.0  # dropout before the classifier (small_cnn and timm models), probability
    drop_path_rate: float = 0.0  # stochastic depth of timm models that have it, probability
    warmup_epochs: float = 0.0  # cosine_warmup: epochs of linear warm-up from 0 to lr before the cosine
    # keyword arguments for a timm model's constructor, e.g. {"img_size": 32, "patch_size": 4} for a ViT on
    # CIFAR; JSON-like values only, so params.json holds them as given
    model_args: dict[str, object] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, config: typing.Mapping[str, object]) -> TrialConfig:
        """Build from Tune's dict, refusing unknown keys, missing keys and wrong types."""
        hints = typing.get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(config) - set(names))
        if unknown:
            raise ValueError(f"trial config: unknown key(s) {', '.join(unknown)}")
        defaults = _defaults(cls)
        missing = [n for n in names if n not in config and n not in defaults]
        if missing:
            raise ValueError(f"trial config: missing key(s) {', '.join(missing)}")
        values = {n: _coerce(n, config[n], hints[n]) if n in config else defaults[n] for n in names}
        cfg = cls(**values)
        cfg._check_choices()
        return cfg

    def stream_seed(self, stream: str) -> int:
        """The seed of one of layout.STREAMS: its own where the arm set one, else the configuration's."""
        own = getattr(self, f"{stream}_seed")
        return self.seed if own < 0 else own

    def arm_label(self) -> str:
        """The arm as the analysis names it: the arm, or the CUDA mode when the trial varies no stream."""
        return self.arm or self.mode

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-friendly dict (tuples become lists), as params.json stores it. A setting added
        later (one with a default) is left out at its default: the grid of a study defined before it
        existed, and so the study's default directory name, stay as they were."""
        defaults = _defaults(type(self))
        return {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(self).items()
            if not (k in defaults and v == defaults[k])
        }

    def _check_choices(self) -> None:
        """Every choice and range, in one place: the CLI runs this before Ray starts, each trial again."""
        for name, allowed in (
            ("mode", MODES),
            ("optimizer", OPTIMIZERS),
            ("scheduler", SCHEDULERS),
            ("loss", ("ce", "bce")),
            ("precision", PRECISIONS),
            ("metric", METRICS),
            ("select", SELECTIONS),
            ("f1_average", ("macro", "weighted", "binary")),
            ("augment", AUGMENTS),
        ):
            if getattr(self, name) not in allowed:
                raise FieldError(name, f"must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        for m in self.metrics:
            if m not in METRICS:
                raise FieldError("metrics", f"must name only {', '.join(METRICS)}, got {m!r}")
        if self.metric not in self.metrics:
            raise FieldError("metric", f"must be one of metrics {list(self.metrics)}, got {self.metric!r}")
        if len(self.mean) != len(self.std):
            raise FieldError("std", "must have one value per channel, as mean has")
        for name in ("epochs", "batch_size", "eval_batch_size", "eval_every"):
            if getattr(self, name) < 1:
                raise FieldError(name, f"must be at least 1, got {getattr(self, name)}")
        for name in ("num_workers", "crop_padding", "digest_batches", "eval_cache_mb", "plateau_patience"):
            if getattr(self, name) < 0:
                raise FieldError(name, f"must be >= 0, got {getattr(self, name)}")
        if self.eval_every > 1 and (self.select != "last" or self.scheduler == "plateau"):
            raise FieldError(
                "eval_every",
                f"must be 1 with select={self.select!r} and scheduler={self.scheduler!r}: they read the validation split every epoch",
            )
        if self.tta not in (0, 1, 2):
            raise FieldError("tta", f"must be 0, 1 or 2, got {self.tta}")
        if not 0 <= self.label_smoothing < 1:
            raise FieldError("label_smoothing", f"must be in [0, 1), got {self.label_smoothing}")
        self._check_numbers()
        self._check_arm()
        if self.scheduler == "cosine_warmup" and not 0 <= self.warmup_epochs < self.epochs:
            raise FieldError("warmup_epochs", f"must be in [0, epochs) for cosine_warmup, got {self.warmup_epochs:g}")
        if self.scheduler == "onecycle" and not 0 < self.warmup_frac < 1:
            raise FieldError("warmup_frac", f"must be in (0, 1) for the onecycle scheduler, got {self.warmup_frac}")

    def _check_arm(self) -> None:
        """An arm varies what it names and runs in the mode it names (sweeps.grid sets both)."""
        if self.arm not in ("", *ARMS, *MODES):
            raise FieldError("arm", f"must be one of {', '.join(ARMS)} (or a mode's name), got {self.arm!r}")
        if self.arm in MODES and self.arm != self.mode:
            raise FieldError("arm", f"{self.arm!r} names another mode than the trial's ({self.mode})")
        wanted = PAPER_NOISY if self.arm == ALL_SOURCES else DETERMINISTIC
        if self.arm in ARMS and self.mode != wanted:
            raise FieldError("mode", f"the {self.arm} arm runs in {wanted} mode, got {self.mode}")
        if (self.bitflip_seed >= 0) != (self.arm == "bitflip"):
            raise FieldError("bitflip_seed", "is set by the bitflip arm, and only there (--vary bitflip)")
        for name in [f"{s}_seed" for s in STREAMS] + ["bitflip_seed"]:
            if not -1 <= getattr(self, name) <= MAX_SEED:
                raise FieldError(
                    name, f"must be -1 (the configuration's seed) or in 0..{MAX_SEED}, got {getattr(self, name)}"
                )
        for name in ("drop_rate", "drop_path_rate"):
            if not 0 <= getattr(self, name) < 1:
                raise FieldError(name, f"must be in [0, 1), got {getattr(self, name):g}")

    def check_streamed(self) -> None:
        """What only in-memory data sets (digits, cifar10) support, refused for one streamed from files;
        the CLI checks it before Ray starts, each trial again."""
        if self.model in IN_MEMORY_MODELS:
            raise FieldError(
                "model",
                f"{self.model} initialises from in-memory images (digits, cifar10); {self.dataset} is streamed from files",
            )
        if self.alternate_flip:
            raise FieldError(
                "alternate_flip",
                f"applies to in-memory data sets (digits, cifar10); {self.dataset} augments through albumentations (--set augment=...)",
            )

    def _check_numbers(self) -> None:
        """Every number finite and in its range: a NaN learning rate otherwise trains NaN to the end."""
        for f in dataclasses.fields(self):
            values = getattr(self, f.name)
            for v in values if isinstance(values, tuple) else (values,):
                if isinstance(v, float) and not math.isfinite(v):
                    raise FieldError(f.name, f"must be a finite number, got {v}")
        if not self.lr > 0:
            raise FieldError("lr", f"must be positive, got {self.lr:g}")
        if not min(self.std) > 0:
            raise FieldError("std", f"must be positive in every channel, got {list(self.std)}")
        for name in ("momentum", "weight_decay", "min_lr", "gpu_share"):
            if getattr(self, name) < 0:
                raise FieldError(name, f"must be >= 0, got {getattr(self, name):g}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise FieldError(name, f"must be in [0, 1), got {getattr(self, name):g}")
        if not 0 < self.plateau_factor < 1:
            raise FieldError("plateau_factor", f"must be in (0, 1), got {self.plateau_factor:g}")
        if not (self.image_size == (0, 0) or min(self.image_size) > 0):
            raise FieldError(
                "image_size", f"must be two positive sizes (height, width), or [0, 0]; got {list(self.image_size)}"
            )
        if not 0 <= self.seed <= MAX_SEED:
            raise FieldError("seed", f"must be in 0..{MAX_SEED}, got {self.seed}")


def _defaults(cls: type) -> dict[str, object]:
    """The settings added after studies were first written, with the value their absence means."""
    return {
        f.name: f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        for f in dataclasses.fields(cls)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    }


class FieldError(ValueError):
    """A setting refused by name: `field` is the TrialConfig field, `reason` says why; the CLI turns
    it into one line naming the flag that set it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"trial config: {field} {reason}")
        self.field, self.reason = field, reason


class FieldTypeError(FieldError, TypeError):
    """A setting of the wrong type (a string where a number belongs)."""


def _coerce(name: str, value: object, hint: object) -> object:
    """Check `value` against a field's type; ints pass for floats, lists for tuples."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise FieldTypeError(name, f"must be a list, got {type(value).__name__}")
        item = args[0]
        if not (len(args) == 2 and args[1] is Ellipsis) and len(value) != len(args):
            raise FieldTypeError(name, f"must have {len(args)} items, got {len(value)}")
        return tuple(_coerce(name, v, item) for v in value)
    if origin is dict:
        if not (isinstance(value, dict) and all(isinstance(k, str) for k in value)):
            raise FieldTypeError(name, f"must be a mapping of names to values, got {type(value).__name__} {value!r}")
        return dict(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, bool):
        raise FieldTypeError(name, "must be int, got bool")
    if not isinstance(value, hint):  # type: ignore[arg-type]
        raise FieldTypeError(name, f"must be {hint.__name__}, got {type(value).__name__} {value!r}")  # type: ignore[union-attr]
    return value
