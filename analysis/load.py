"""An experiment directory (Ray Tune's layout) -> two DataFrames, reading the files directly.

trials: one row per trial: every params.json key, status, final and best metric, runtime, digests,
energy, where start-up went (startup_*_s) and environment (env_*). epochs: one row per trial and
epoch. Works on a directory copied from another machine, with no Ray running; survives errored
trials, trials still running and a truncated last line, and says what it skipped. A trials.csv
(the report writes one) stands in for a directory whose trial folders are gone: every statistic of
the scores reads from it; per-epoch rows and per-trial files are then absent, and said so.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from layout import FINISHED_KEY, TRIAL_KEYS, arm_of

KEYS = list(TRIAL_KEYS)
FINAL_KEYS = (
    "final_metric",
    "final_epoch",
    "weights_sha256",
    "init_sha256",
    "data_sha256",
    "order_sha256",
    "augment_sha256",
    "dropout_sha256",
    "runtime_s",
    "started_at",
    "startup_s",
    "energy_j",
    "gpu_energy_j",
    "nondeterministic_ops",
    "restarts",
    "restart_epochs",
)


TRIALS_CSV = "trials.csv"


@dataclass
class Experiment:
    path: Path  # the experiment directory (for a trials.csv: the folder holding it)
    trials: pd.DataFrame
    epochs: pd.DataFrame
    skipped: list[str] = field(default_factory=list)
    name: str = ""  # the study's name: its directory's, unless read from a trials.csv elsewhere

    def __post_init__(self) -> None:
        self.name = self.name or self.path.name


def trials_table(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials as the report writes them to trials.csv: every column, one row per trial, in
    name order, so that load_experiment(trials.csv) gives the statistics back."""
    return trials.sort_values("trial", kind="stable")


def load_trials_csv(path: Path) -> Experiment:
    """A trials.csv (trials_table's, or any with trial, optimizer, seed, mode, repeat and
    final_metric) as an Experiment without per-epoch rows; status is read from the digests where
    the file has none, as load_experiment reads it from a last result."""
    trials = pd.read_csv(path)
    lacking = [k for k in ("trial", *KEYS, "final_metric") if k not in trials]
    if lacking:
        raise FileNotFoundError(f"{path}: not a trials table (lacks {', '.join(lacking)})")
    if "status" not in trials:
        trials["status"] = trials[FINISHED_KEY].notna().map({True: "finished", False: "running"})
    if "arm" not in trials:
        trials["arm"] = trials["mode"]
    trials["arm"] = trials["arm"].fillna("").where(trials["arm"].fillna("") != "", trials["mode"])
    if "final_metric_reported" not in trials:
        trials["final_metric_reported"] = trials["final_metric"].notna()
    skipped = [
        f"{path.name}: read from the trials table, which holds one row per trial: tables that need per-epoch "
        "results, predictions.npz or last_layer.npz (epoch times, churn, similarity) need the experiment directory"
    ]
    epochs = pd.DataFrame(columns=["trial", "epoch"])
    return Experiment(path.parent, trials, epochs, skipped, name=path.parent.name)


def _parse_line(line: str) -> dict:
    """One result.json line without its (repeated, bulky) config; keys Tune writes after the
    config are kept. A line that is JSON but not an object raises ValueError like a broken one."""
    result = json.loads(line)
    if not isinstance(result, dict):
        raise ValueError("not a JSON object")
    result.pop("config", None)
    return result


def _read_results(path: Path, skipped: list[str]) -> list[dict]:
    """Every line of a result.json (the slow path: used when progress.csv cannot be trusted)."""
    if not path.is_file():
        return []
    lines = path.read_text(errors="replace").splitlines()
    results = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            results.append(_parse_line(line))
        except ValueError:
            where = "its last line (truncated)" if i == len(lines) - 1 else f"line {i + 1} (not JSON)"
            skipped.append(f"{path}: skipped {where}")
    return results


def _last_result(path: Path, skipped: list[str]) -> dict:
    """The last whole line of result.json, read from the end of the file (it can be hundreds of MB)."""
    if not path.is_file():
        return {}
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        chunk = 1 << 16
        while True:
            f.seek(max(0, size - chunk))
            tail = f.read()
            lines = tail.splitlines()
            if chunk >= size or len(lines) > 2:
                break
            chunk *= 4
    if chunk < size:
        lines = lines[1:]  # the first line of a partial read may start mid-line
    for raw in reversed(lines):
        if raw.strip():
            try:
                return _parse_line(raw.decode(errors="replace"))
            except ValueError:
                skipped.append(f"{path}: skipped its last line (truncated)")
    return {}


def _progress_body(path: Path, skipped: list[str]) -> tuple[bytes, bytes] | None:
    """(header, rows) of a progress.csv, a truncated last row dropped; None if there is none."""
    if not path.is_file():
        return None
    data = path.read_bytes()
    header, sep, body = data.partition(b"\n")
    if not sep or not body:
        return None
    if not body.endswith(b"\n"):
        body = body[: body.rfind(b"\n") + 1]
        skipped.append(f"{path}: skipped its last row (truncated)")
    return header, body


EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*: \S")  # "OSError: ...", "cv2.error: ...": a name, a colon, a message
WRAPPER = "Traceback (most recent call last):"  # a forked trial's error re-raised with the child's traceback as text


def error_line(path: Path) -> str | None:
    """The exception line of an error file Tune wrote ('RuntimeError: ...'), None if there is none:
    the last line that names an exception, whatever its class is called, and not the wrapper that
    carried a forked trial's traceback."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", ln).rstrip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if EXCEPTION_LINE.match(ln) and not ln.endswith(WRAPPER)]
    return (errors or [ln.strip() for ln in lines] or ["(empty error.txt)"])[-1]


def _csv_epochs(parts: dict[bytes, list[tuple[int, bytes]]]) -> tuple[list[pd.DataFrame], list[int]]:
    """One pyarrow parse per distinct header over every trial's rows, each row prefixed with its
    trial; returns the frames and the trials of any group pyarrow could not parse."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    frames, failed = [], []
    for header, bodies in parts.items():
        chunks = [b"__trial," + header + b"\n"]
        for index, body in bodies:
            prefix = str(index).encode() + b","
            chunks.append(prefix + body[:-1].replace(b"\n", b"\n" + prefix) + b"\n")
        try:
            frames.append(pacsv.read_csv(io.BytesIO(b"".join(chunks))).to_pandas())
        except pa.ArrowInvalid:  # a malformed row somewhere: read these trials' result.json instead
            failed += [index for index, _ in bodies]
    return frames, failed


def _json_epochs(trial_dir: Path, index: int, skipped: list[str]) -> pd.DataFrame:
    notes: list[str] = []
    results = _read_results(trial_dir / "result.json", notes)
    skipped += [n for n in notes if n not in skipped]  # the truncated last line is already noted
    frame = pd.DataFrame.from_records(
        [{k: v for k, v in r.items() if not isinstance(v, (dict, list))} for r in results]
    )
    frame.insert(0, "__trial", index)
    return frame


def load_experiment(path: str | Path) -> Experiment:
    """Read every trial folder (one holding params.json) under `path`, or a trials.csv.

    Per-epoch rows come from progress.csv (parsed by pyarrow in one pass, the fast path) and the
    final keys from the last line of result.json; a trial whose progress.csv is missing or ends at
    another epoch than its result.json is read from result.json line by line instead.
    """
    path = Path(path)
    if path.is_file() and path.suffix == ".csv":
        return load_trials_csv(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such experiment directory")
    skipped: list[str] = []
    trial_rows: list[dict] = []
    csv_parts: dict[bytes, list[tuple[int, bytes]]] = {}
    json_frames: list[pd.DataFrame] = []
    for params_file in sorted(path.glob("*/params.json")):
        trial_dir = params_file.parent
        try:
            params = json.loads(params_file.read_text())
        except (ValueError, OSError) as exc:
            skipped.append(
                f"{params_file}: {'not JSON' if isinstance(exc, ValueError) else exc.strerror}, trial skipped"
            )
            continue
        lacking = [k for k in KEYS if not isinstance(params, dict) or k not in params]
        if lacking:
            what = "not a JSON object" if not isinstance(params, dict) else f"lacks {', '.join(lacking)}"
            skipped.append(f"{params_file}: {what}, trial skipped")
            continue
        last = _last_result(trial_dir / "result.json", skipped)
        error = error_line(trial_dir / "error.txt")
        progress = _progress_body(trial_dir / "progress.csv", skipped)
        index = len(trial_rows)
        if progress is not None and last and _last_csv_epoch(progress) == last.get("epoch"):
            csv_parts.setdefault(progress[0], []).append((index, progress[1]))
        elif last:
            json_frames.append(_json_epochs(trial_dir, index, skipped))
        # a trial that failed and then finished on a retry keeps its error.txt: finished wins
        status = "finished" if FINISHED_KEY in last else "errored" if error else "running"
        row = {
            "trial": trial_dir.name,
            **{k: v for k, v in params.items() if not isinstance(v, (list, dict))},
            **{k: json.dumps(v) for k, v in params.items() if isinstance(v, (list, dict))},
            "arm": arm_of(params),
            "status": status,
            "error": error,
            "epochs_done": int(last.get("epoch", 0)),
            "last_metric": last.get("metric"),
            "final_metric_reported": "final_metric" in last,
        }
        for key in FINAL_KEYS:
            value = last.get(key)
            row[key] = json.dumps(value) if isinstance(value, list) else value
        # env_gpu, startup_imports_s, bitflip_parameter, ...
        for nested, prefix in (("env", "env_"), ("startup_parts", "startup_"), ("bitflip", "bitflip_")):
            row.update({prefix + key: value for key, value in (last.get(nested) or {}).items()})
        trial_rows.append(row)

    # why: a study stopped before its first trial wrote anything is still a study, with no rows
    empty = ["trial", *KEYS, "arm", "status", "error", *FINAL_KEYS]
    trials = pd.DataFrame(trial_rows, columns=None if trial_rows else empty)
    csv_frames, unparsed = _csv_epochs(csv_parts)
    frames = csv_frames + json_frames + [_json_epochs(path / trials["trial"].iloc[i], i, skipped) for i in unparsed]
    if not frames:
        return Experiment(path, trials, pd.DataFrame(columns=["trial", "epoch"]), skipped)
    epochs = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if len(frames) > 1:  # why: trials read by different paths come back grouped by path
        epochs = epochs.sort_values(["__trial", "epoch"], kind="stable", ignore_index=True)
    epochs = epochs.drop(columns=[c for c in FINAL_KEYS if c in epochs.columns])
    rerun = epochs.duplicated(["__trial", "epoch"], keep="last")
    if rerun.any():  # why: after a restart Tune may log an epoch again; the later run led to the result
        for i, group in epochs[rerun].groupby("__trial"):
            skipped.append(
                f"{trials['trial'].iloc[i]}: epochs {sorted(set(group['epoch']))} ran twice (a restart); the later run is kept"
            )
        epochs = epochs[~rerun].reset_index(drop=True)
    _numeric_columns(epochs, trials, skipped)
    index = epochs.pop("__trial").to_numpy()
    epochs.insert(0, "trial", trials["trial"].to_numpy()[index])
    for key in (k for k in KEYS if k in trials.columns):
        epochs[key] = trials[key].to_numpy()[index]
    if "metric" in epochs:
        trials["best_metric"] = trials["trial"].map(epochs.groupby("trial")["metric"].max())
    return Experiment(path, trials, epochs, skipped)


NUMERIC = ("epoch", "train_loss", "metric", "lr", "epoch_time_s", "train_time_s", "samples_per_s")


def _numeric_columns(epochs: pd.DataFrame, trials: pd.DataFrame, skipped: list[str]) -> None:
    """Text where a number belongs (a garbled progress.csv) becomes missing, one note per trial."""
    for column in [c for c in epochs.columns if c in NUMERIC or c.startswith(("val_", "test_"))]:
        if pd.api.types.is_numeric_dtype(epochs[column]):
            continue
        numbers = pd.to_numeric(epochs[column], errors="coerce")
        bad = numbers.isna() & epochs[column].notna()
        for i in sorted(set(epochs.loc[bad, "__trial"])):
            note = (
                f"{trials['trial'].iloc[i]}: text where numbers belong in its results (e.g. {column}); read as missing"
            )
            if not any(n.startswith(f"{trials['trial'].iloc[i]}: text where") for n in skipped):
                skipped.append(note)
        epochs[column] = numbers
    if epochs["epoch"].isna().any():
        epochs.dropna(subset=["epoch"], inplace=True)
        epochs["epoch"] = epochs["epoch"].astype(int)


def _last_csv_epoch(progress: tuple[bytes, bytes]) -> int | None:
    header, body = progress
    columns = header.split(b",")
    if b"epoch" not in columns or not body:
        return None
    last_row = body[body.rstrip(b"\n").rfind(b"\n") + 1 :].rstrip(b"\n").split(b",")
    try:
        return int(float(last_row[columns.index(b"epoch")]))
    except (ValueError, IndexError):
        return None
