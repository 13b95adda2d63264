"""Command line -> a validated Study, or one line on stderr and exit code 2.

Everything that can be checked without Ray is checked here, before any work starts.
"""

from __future__ import annotations

import argparse
import math
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from layout import ARMS, DETERMINISTIC, MODES, PAPER_MODES
from sweeps.grid import GridSpec, build_trials
from sweeps.presets import PRESETS
from trainables.config import MAX_SEED, OPTIMIZERS, FieldError, TrialConfig

MAX_REPEATS = 1000  # per configuration and mode: far beyond any study's need, and the grid stays in memory
MAX_TRIALS = 100_000  # the whole grid


class UsageError(Exception):
    """Bad input; the message is one line naming the flag."""


@dataclass(frozen=True)
class Study:
    preset: str  # the --dataset preset (cifar10-fast, say); names the experiment
    dataset: str  # the data set it reads (cifar10)
    data_dir: Path
    trials: tuple[dict, ...]
    gpus_per_trial: float | None  # None: the preset's share if the cluster has GPUs, else 0
    cpus_per_trial: float
    cpus_from_preset: bool  # no --cpus-per-trial: the preset's, lowered to what the machine has
    pin_cpus: bool  # --pin-cpus: each trial's process on cores of its own (trainables/placement.py)
    max_concurrent: int  # 0: as many as resources allow
    storage_path: Path
    name: str | None  # None: derived from the dataset and the study's definition
    address: str | None
    max_failures: int  # retries of a failed trial, each from its last checkpoint
    keep_checkpoints: int  # newest checkpoints kept per trial
    dashboard: bool
    dry_run: bool
    preset_gpus_per_trial: float
    preset_gpu_memory_gib: float | None  # a trial's measured GPU-memory peak on an H200; None: not measured


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not argparse's usage block
        raise UsageError(message)


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where there is a fixed one; preset defaults are in the help text."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False, []) or action.default is argparse.SUPPRESS:
            return action.help or ""
        return super()._get_help_string(action)


PRESET_DEFAULT = "default: the preset's (table below)"
DOCS = "docs/running.md"  # where each flag is explained, grouped as the parser groups them


def _preset_value(preset: dict, key: str) -> str:
    value = preset["study"].get(key, preset["trial"].get(key))
    if value is None and key == "lr":
        return "/".join(f"{o} {preset['optimizers'][o]['lr']:g}" for o in preset["optimizers"])
    if value is None and key == "vary":
        return "none"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def preset_table() -> str:
    """Every preset's defaults for the flags that take the preset's, as --help's closing table."""
    columns = ("seeds", "optimizers", "repeats", "det_repeats", "epochs", "batch_size", "lr", "gpus_per_trial", "vary")
    heads = ("seeds", "optimizers", "R", "D", "epochs", "batch", "lr", "GPU", "vary")
    rows = [("preset", *heads)] + [(name, *(_preset_value(p, c) for c in columns)) for name, p in PRESETS.items()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(heads) + 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return (
        f"preset defaults (R: --repeats, D: --det-repeats, GPU: --gpus-per-trial; {DOCS}#presets):\n  "
        + "\n  ".join(lines)
    )


class _Formatter(argparse.RawDescriptionHelpFormatter, _DefaultsFormatter):
    """The closing table keeps its columns; defaults as _DefaultsFormatter shows them."""


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python sweeps/run.py",
        formatter_class=_Formatter,
        description=textwrap.fill(
            "Measure how much non-deterministic CUDA kernels alone, or any other source of randomness, move a "
            "model's scores: every (seed, optimizer) configuration is trained R times in each noisy mode and arm and D "
            f"times deterministically, everything else held fixed. The manual: {DOCS}.",
            width=79,
        ),
        epilog=preset_table(),
    )
    study = p.add_argument_group("study: what is trained, and how often")
    study.add_argument(
        "--dataset",
        default="digits",
        help=f"preset: {', '.join(d for d in PRESETS if d != 'folder')}, or folder:PATH for one sub-folder of images "
        "per class (docs/data.md)",
    )
    study.add_argument("--seeds", help=f"comma-separated integer seeds; {PRESET_DEFAULT}")
    study.add_argument("--optimizers", help=f"comma-separated, of {', '.join(OPTIMIZERS)}; {PRESET_DEFAULT}")
    study.add_argument(
        "--modes",
        default=",".join(PAPER_MODES),
        help="comma-separated CUDA modes, deterministic among them, or all: deterministic, nondeterministic (the "
        f"paper's two), autotuner-only, kernels-only ({DOCS}#what-a-study-is)",
    )
    study.add_argument(
        "--vary",
        metavar="ARMS",
        help="comma-separated sources to add as arms, each varied alone in deterministic mode: init, order, augment, "
        "dropout, bitflip, and all (every stream, non-deterministic CUDA); every: all of them and --modes all; none. "
        f"{PRESET_DEFAULT}",
    )
    study.add_argument(
        "--repeats",
        type=int,
        help=f"runs per configuration of each mode but deterministic, and of each arm; {PRESET_DEFAULT}",
    )
    study.add_argument(
        "--det-repeats",
        type=int,
        help=f"deterministic runs per configuration; 2 or more prove bitwise reproducibility; {PRESET_DEFAULT}",
    )
    study.add_argument("--dry-run", action="store_true", help="print the grid and exit")
    training = p.add_argument_group("training: the recipe each trial follows")
    training.add_argument("--epochs", type=int, help=f"training epochs per trial; {PRESET_DEFAULT}")
    training.add_argument("--batch-size", type=int, help=f"examples per step; {PRESET_DEFAULT}")
    training.add_argument("--lr", type=float, help=f"initial learning rate for every optimizer; {PRESET_DEFAULT}")
    training.add_argument(
        "--model",
        help="a project model (resnet14, preactresnet18, preactresnet34, airbench_net, small_cnn) or any timm model "
        f"name; default: the preset's ({DOCS}#any-model)",
    )
    training.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any trial setting, e.g. --set weight_decay=0 --set model_args='{\"img_size\": 32}' "
        f"(repeatable; {DOCS}#any-model)",
    )
    training.add_argument(
        "--no-pretrained", action="store_true", help="train a preset's pretrained model (cbis) from scratch instead"
    )
    training.add_argument(
        "--weights",
        help="file with the pretrained weights (a state dict, .pth or .safetensors) instead of timm's download",
    )
    training.add_argument(
        "--det-warn-only",
        action="store_true",
        help="deterministic trials warn about (and record) ops without a deterministic kernel instead of failing",
    )
    data = p.add_argument_group("data")
    data.add_argument("--data-dir", default="data", help="where the data set lives or is downloaded to (docs/data.md)")
    data.add_argument(
        "--num-workers", type=int, help=f"DataLoader workers per trial (0 keeps the data on the GPU); {PRESET_DEFAULT}"
    )
    resources = p.add_argument_group("resources: where trials run (docs/running.md#one-gpu-a-multi-gpu-box-a-cluster)")
    resources.add_argument(
        "--gpus-per-trial",
        type=float,
        help="GPUs per trial, fractions pack trials onto one GPU; 0 where Ray sees no GPU; fewer per GPU than the "
        f"preset's where the local GPUs are too small for its packing (measured on H200s); {PRESET_DEFAULT}",
    )
    resources.add_argument(
        "--cpus-per-trial", type=float, help="CPUs Ray reserves per trial; default: the preset's, at most the machine's"
    )
    resources.add_argument(
        "--pin-cpus",
        action="store_true",
        help="pin each trial's process to as many free cores as it reserves, with as many threads (Linux; off by "
        "default: it slowed packed trials on an H200)",
    )
    resources.add_argument(
        "--max-concurrent", type=int, default=0, help="most trials at once; 0: as many as resources allow"
    )
    resources.add_argument(
        "--address", help="join this Ray cluster (e.g. auto or HOST:6379) instead of starting Ray locally"
    )
    resources.add_argument(
        "--dashboard", action="store_true", help="start Ray's dashboard, bound to 127.0.0.1 (off by default)"
    )
    storage = p.add_argument_group("storage: where the study is kept (docs/reliability.md)")
    storage.add_argument("--storage-path", default="experiments", help="experiment root; shared storage on a cluster")
    storage.add_argument(
        "--name", help="experiment name; default: DATASET-<hash of the study>, so the same command resumes"
    )
    storage.add_argument(
        "--keep-checkpoints",
        type=int,
        default=1,
        help="checkpoints kept per trial (one per epoch is written; older ones are deleted)",
    )
    storage.add_argument(
        "--max-failures",
        type=int,
        default=2,
        help="retry a failed trial (CUDA out of memory included) this many times, each from its last checkpoint",
    )
    return p


def _seeds(flag: str, text: str) -> tuple[int, ...]:
    values = []
    for part in text.split(","):
        try:
            value = int(part.strip())
        except ValueError:
            raise UsageError(f"{flag}: {part.strip()!r} is not an integer") from None
        if not 0 <= value <= MAX_SEED:
            raise UsageError(f"{flag}: {value} is outside 0..{MAX_SEED}, the range every seeded library takes")
        values.append(value)
    if len(set(values)) != len(values):
        raise UsageError(f"{flag}: {text!r} lists a seed twice")
    return tuple(values)


def _arms(text: str) -> tuple[str, ...]:
    """--vary: names of layout.ARMS, every, or none, in ARMS' order."""
    if text.strip() in ("", "none"):
        return ()
    names = list(ARMS) if text.strip() == "every" else [a.strip() for a in text.split(",")]
    for name in names:
        if name not in ARMS:
            raise UsageError(f"--vary: unknown {name!r}; known: {', '.join(ARMS)}, or every")
    if len(set(names)) != len(names):
        raise UsageError(f"--vary: {text!r} lists an arm twice")
    return tuple(a for a in ARMS if a in names)


def _modes(text: str) -> tuple[str, ...]:
    """--modes: 'all', or names of MODES with deterministic among them, in MODES' order."""
    names = [m.strip() for m in text.split(",")] if text.strip() != "all" else list(MODES)
    for name in names:
        if name not in MODES:
            raise UsageError(f"--modes: unknown {name!r}; known: {', '.join(MODES)}, or all")
    if len(set(names)) != len(names):
        raise UsageError(f"--modes: {text!r} lists a mode twice")
    if DETERMINISTIC not in names or len(names) < 2:
        raise UsageError("--modes: needs deterministic (the reference) and at least one other mode")
    return tuple(m for m in MODES if m in names)


def parse_value(text: str) -> object:
    """--set value: JSON-like literals (numbers, true/false, lists), else the string itself."""
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text


FIELD_FLAGS = {  # TrialConfig fields with a flag of their own; every other field is set with --set KEY=VALUE
    "epochs": "--epochs",
    "batch_size": "--batch-size",
    "lr": "--lr",
    "model": "--model",
    "num_workers": "--num-workers",
}
GRID_KEYS = (
    "seed",
    "optimizer",
    "mode",
    "repeat",
    "data_dir",
    "gpu_share",
    "dataset",
    "arm",
    "bitflip_seed",
)  # flags or grid


def parse(argv: Sequence[str]) -> Study:
    """The command line as a checked Study: the preset, the grid's axes, the trial settings, the resources."""
    args = build_parser().parse_args(argv)
    name, folder, preset = _preset(args)
    seeds, optimizers, modes, arms, repeats, det_repeats = _axes(args, preset["study"], preset["optimizers"])
    data_dir = Path(folder or args.data_dir).expanduser().resolve()
    overrides, from_set = _overrides(args, folder, data_dir)
    spec = GridSpec(
        seeds, optimizers, repeats, det_repeats, preset["trial"], preset["optimizers"], overrides, modes, arms
    )
    try:
        trials = build_trials(spec)
    except FieldError as exc:  # the one place ranges and choices are checked: TrialConfig
        raise UsageError(f"{_flag(exc.field, from_set)}: {exc.reason}") from None
    except (TypeError, ValueError) as exc:
        raise UsageError(f"--set: {exc}") from None
    _check_model(trials[0], _flag("model", from_set))
    if "dropout" in arms:
        trials = _dropout_arm(trials, args.vary is not None and args.vary.strip() != "every")
    _check_streamed(preset["trial"]["dataset"], trials[0], from_set)
    gpus, cpus = _resources(args, preset["study"])
    return Study(
        preset=name,
        dataset=preset["trial"]["dataset"],
        data_dir=data_dir,
        trials=tuple(trials),
        gpus_per_trial=gpus,
        cpus_per_trial=cpus,
        cpus_from_preset=args.cpus_per_trial is None,
        pin_cpus=args.pin_cpus,
        max_concurrent=args.max_concurrent,
        storage_path=Path(args.storage_path).expanduser().resolve(),
        name=args.name,
        address=args.address,
        max_failures=args.max_failures,
        keep_checkpoints=args.keep_checkpoints,
        dashboard=args.dashboard,
        dry_run=args.dry_run,
        preset_gpus_per_trial=preset["study"]["gpus_per_trial"],
        preset_gpu_memory_gib=preset["study"].get("gpu_memory_gib"),
    )


def _preset(args: argparse.Namespace) -> tuple[str, str, dict]:
    """(preset name, folder path or "", the preset) from --dataset."""
    dataset, _, folder = args.dataset.partition(":")
    if dataset == "folder" and not folder:
        raise UsageError("--dataset: folder needs a path: folder:PATH (one sub-folder of images per class)")
    if dataset not in PRESETS or (folder and dataset != "folder"):
        known = ", ".join(d for d in PRESETS if d != "folder")
        raise UsageError(f"--dataset: unknown {args.dataset!r}; known: {known}, folder:PATH")
    return dataset, folder, PRESETS[dataset]


def _axes(
    args: argparse.Namespace, study: dict, optimizer_recipes: dict
) -> tuple[tuple[int, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...], int, int]:
    """The grid's axes: seeds, optimizers, modes, arms and repeats, with the grid's size bounded."""
    seeds = _seeds("--seeds", args.seeds) if args.seeds is not None else study["seeds"]
    optimizers = (
        tuple(o.strip() for o in args.optimizers.split(",")) if args.optimizers is not None else study["optimizers"]
    )
    for o in optimizers:
        if o not in OPTIMIZERS:
            raise UsageError(f"--optimizers: unknown {o!r}; known: {', '.join(OPTIMIZERS)}")
        if o not in optimizer_recipes:
            raise UsageError(f"--optimizers: the preset has a recipe for {', '.join(optimizer_recipes)} only, not {o}")
    if len(set(optimizers)) != len(optimizers):
        raise UsageError(f"--optimizers: {args.optimizers!r} lists an optimizer twice")
    vary = study.get("vary", "none") if args.vary is None else args.vary
    arms = _arms(vary)
    modes = _modes("all" if vary.strip() == "every" else args.modes)
    repeats = study["repeats"] if args.repeats is None else args.repeats
    det_repeats = study["det_repeats"] if args.det_repeats is None else args.det_repeats
    for flag, value in (("--repeats", repeats), ("--det-repeats", det_repeats)):
        if not 1 <= value <= MAX_REPEATS:
            raise UsageError(f"{flag}: must be between 1 and {MAX_REPEATS}, got {value}")
    size = len(seeds) * len(optimizers) * (det_repeats + repeats * (len(modes) - 1 + len(arms)))
    if size > MAX_TRIALS:
        raise UsageError(f"--repeats: the grid would hold {size:,} trials; at most {MAX_TRIALS:,}")
    return seeds, optimizers, modes, arms, repeats, det_repeats


def _overrides(args: argparse.Namespace, folder: str, data_dir: Path) -> tuple[dict[str, object], set[str]]:
    """Trial settings from the flags and --set (checked by TrialConfig), and the keys --set gave."""
    overrides: dict[str, object] = {"data_dir": str(data_dir), "gpu_share": 0.0, "det_warn_only": args.det_warn_only}
    if folder:  # the metric follows the number of classes: AUC for two, accuracy for more
        from datasets import DataError
        from datasets.folder import num_classes

        try:
            overrides["metric"] = "auc" if num_classes(data_dir) == 2 else "accuracy"
        except DataError as exc:
            raise UsageError(f"--dataset: {exc}") from None
    overrides.update({key: getattr(args, key) for key in FIELD_FLAGS if getattr(args, key) is not None})
    if args.no_pretrained:
        overrides["pretrained"] = False
    if args.weights:
        if args.no_pretrained:
            raise UsageError("--weights: cannot be combined with --no-pretrained")
        weights = Path(args.weights).expanduser().resolve()
        if not weights.is_file():
            raise UsageError(f"--weights: {weights} is not a file")
        overrides.update(pretrained=True, weights=str(weights))
    from_set = set()
    for item in args.set:
        key, sep, text = item.partition("=")
        if not sep:
            raise UsageError(f"--set: {item!r} is not KEY=VALUE")
        if key in GRID_KEYS:
            raise UsageError(f"--set: {key} is set by its own flag or by the grid, not by --set")
        overrides[key] = parse_value(text)
        from_set.add(key)
    return overrides, from_set


def _dropout_arm(trials: list[dict], asked: bool) -> list[dict]:
    """The dropout arm varies the model's own training-time draws; a model that makes none would
    give the control's run again, so `every` leaves it out and --vary dropout is refused."""
    from trainables.models import draws_at_training

    t = trials[0]
    if draws_at_training(t["model"], t.get("drop_rate", 0.0), t.get("drop_path_rate", 0.0), t.get("model_args")):
        return trials
    if asked:
        raise UsageError(
            f"--vary: {t['model']} makes no random draws while it trains, so the dropout arm would repeat the "
            "control; give it some (--set drop_rate=0.1) or leave dropout out"
        )
    return [x for x in trials if x.get("arm") != "dropout"]


def _check_model(trial: dict, flag: str) -> None:
    from trainables.models import is_known_model, model_refusal, unknown_model_message

    if not is_known_model(trial["model"]):
        raise UsageError(f"{flag}: {unknown_model_message(trial['model'])}")
    args = trial.get("model_args") or {}
    refusal = model_refusal(trial["model"], trial.get("drop_rate", 0.0), trial.get("drop_path_rate", 0.0), args)
    if refusal:
        raise UsageError(f"--set {refusal[0]}: {refusal[1]}")
    if args:
        _check_model_args(trial["model"], args)


def _check_model_args(name: str, args: dict) -> None:
    """A constructor argument timm refuses fails here, in one line, not in every trial after Ray starts:
    the model is built on the meta device (shapes only, nothing downloaded)."""
    import torch

    from trainables.models import create_model

    try:
        with torch.device("meta"):
            create_model(name, 10, 3, model_args=args)
    except (TypeError, ValueError, AssertionError) as exc:
        raise UsageError(f"--set model_args: {name} refused {args}: {exc}") from None


def _resources(args: argparse.Namespace, study: dict) -> tuple[float | None, float]:
    """GPUs and CPUs per trial, and the flags that are not trial settings."""
    gpus = args.gpus_per_trial
    if gpus is not None and (not math.isfinite(gpus) or gpus < 0 or (gpus > 1 and not float(gpus).is_integer())):
        raise UsageError(f"--gpus-per-trial: must be >= 0, and a whole number above 1; got {gpus:g}")
    cpus = study["cpus_per_trial"] if args.cpus_per_trial is None else args.cpus_per_trial
    if not (cpus > 0 and math.isfinite(cpus)):
        raise UsageError(f"--cpus-per-trial: must be a positive number, got {cpus:g}")
    if args.name is not None and (Path(args.name).name != args.name or args.name in ("", ".", "..")):
        raise UsageError(
            f"--name: {args.name!r} must be one folder name (no / and not . or ..): it names a folder of --storage-path"
        )
    for flag, value, least in (
        ("--max-failures", args.max_failures, 0),
        ("--keep-checkpoints", args.keep_checkpoints, 1),
        ("--max-concurrent", args.max_concurrent, 0),
    ):
        if value < least:
            raise UsageError(f"{flag}: must be at least {least}, got {value}")
    return gpus, cpus


def _check_streamed(dataset: str, trial: dict, from_set: set[str]) -> None:
    """What only in-memory data sets support, refused here rather than in every trial."""
    from datasets.registry import STREAMED

    if dataset in STREAMED:
        try:
            TrialConfig.from_dict(trial).check_streamed()
        except FieldError as exc:
            raise UsageError(f"{_flag(exc.field, from_set)}: {exc.reason}") from None


def _flag(field: str, from_set: set[str]) -> str:
    """The flag that set a TrialConfig field: its own (--lr), else --set KEY."""
    return f"--set {field}" if field in from_set or field not in FIELD_FLAGS else FIELD_FLAGS[field]


def fail(message: str, code: int = 2) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)
