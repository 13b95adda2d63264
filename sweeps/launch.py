"""Ray start-up and Tuner.fit / restore: the only part of the driver that talks to Ray."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import socket
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from datasets.image_folder import MAX_IMAGE_PIXELS, MAX_PIXELS_ENV, SPLITS_DIR_ENV
from datasets.registry import BUNDLED
from sweeps.cli import Study, UsageError
from sweeps.grid import trial_label
from trainables.determinism import CUBLAS_WORKSPACE
from trainables.environment import GIT_COMMIT_ENV
from trainables.placement import PIN_CPUS_ENV

REPO_ROOT = Path(__file__).resolve().parent.parent
STUDY_FILE = "study.json"  # the trial grid this experiment directory was made for
DRIVER_LOG = "driver.log"  # Ray's and Tune's own messages, kept out of the terminal
# why: the presets' packing was measured on 141-GB H200s; 10% of a GPU is kept free on top of the
# measured peaks
MEMORY_MARGIN = 0.9
# what a cluster's workers need of the repository (Ray uploads the rest as the working directory)
UPLOAD_EXCLUDES = [".git", ".venv", ".devbundle", "experiments", "data", "**/__pycache__"]


def identity(trial: dict) -> dict:
    """What makes a trial the trial it is: every setting but where its data lies. A data directory
    does not change what is computed, its data does; so the same command typed elsewhere (or with
    the directory spelled otherwise) is the same study, and a study whose data moved is said so."""
    return {k: v for k, v in trial.items() if k != "data_dir"}


def _name(study: Study, trials: list[dict]) -> str:
    return f"{study.preset}-{hashlib.sha256(json.dumps(trials, sort_keys=True).encode()).hexdigest()[:8]}"


def experiment_name(study: Study) -> str:
    """The given name, or PRESET-<hash of the grid's identity>: the same command finds the same
    directory from anywhere. A study named before the data directory left the identity keeps its name."""
    if study.name:
        return study.name
    name, legacy = _name(study, [identity(t) for t in study.trials]), _name(study, list(study.trials))
    return legacy if (study.storage_path / legacy).is_dir() and not (study.storage_path / name).is_dir() else name


def check_existing(experiment: Path, trials: list[dict], flag: str = "--data-dir") -> bool:
    """True if `experiment` holds this very study (so it is resumed); refuses a different one, and
    names a data directory that changed for a data set that reads one."""
    path = experiment / STUDY_FILE
    if not path.exists():
        return False
    try:
        saved = json.loads(path.read_text())["trials"]
    except (ValueError, KeyError, TypeError, OSError) as exc:
        reason = f"lacks {exc}" if isinstance(exc, KeyError) else str(exc)
        raise UsageError(
            f"--name: {path} cannot be read ({reason}); move {experiment} aside or choose another --name"
        ) from None
    if [identity(t) for t in saved] != [identity(t) for t in trials]:
        raise UsageError(f"--name: {experiment} holds a different study ({path}); choose another --name")
    before, now = saved[0].get("data_dir"), trials[0].get("data_dir")
    if before != now and trials[0]["dataset"] not in BUNDLED:
        raise UsageError(
            f"{flag}: {experiment} ran on the data in {before}, and this command names {now}; "
            f"pass {before} to resume it, or --name to start another study"
        )
    return True


def write_study(experiment: Path, trials: list[dict]) -> None:
    """study.json, written whole or not at all (a kill mid-write would leave a study that never resumes)."""
    partial = experiment / f".{STUDY_FILE}.partial"
    partial.write_text(json.dumps({"trials": trials}, indent=1))
    os.replace(partial, experiment / STUDY_FILE)


RAY_SOCKET_PATH_MAX = 107  # bytes in an AF_UNIX socket path, which Ray's sockets live under
RAY_SOCKET_TAIL = len("/ray/session_2026-12-03_15-57-46_045176_4194304/sockets/plasma_store")


def check_tmpdir() -> None:
    """Ray keeps its sockets and logs under RAY_TMPDIR, else TMPDIR, else /tmp; one it cannot write,
    or so long that its socket paths would not fit, is said in one line here, before anything is
    written, instead of in Ray's traceback."""
    variable = "RAY_TMPDIR" if "RAY_TMPDIR" in os.environ else "TMPDIR" if "TMPDIR" in os.environ else None
    where = Path(os.environ[variable]) if variable else Path("/tmp")
    flag = variable or "TMPDIR"
    try:
        with tempfile.TemporaryFile(dir=where):
            pass
    except OSError as exc:
        raise UsageError(
            f"{flag}: cannot write {where} ({exc.strerror}); Ray keeps its sockets there: set {flag} to a writable folder"
        ) from None
    if len(str(where)) + RAY_SOCKET_TAIL > RAY_SOCKET_PATH_MAX:
        raise UsageError(
            f"{flag}: {where} is too long for Ray's sockets ({len(str(where))} characters, at most "
            f"{RAY_SOCKET_PATH_MAX - RAY_SOCKET_TAIL}): set {flag} to a shorter folder, /tmp for one"
        )


def git_commit() -> str | None:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return sha + ("-dirty" if dirty else "")


def check_pretrained(trial: dict) -> None:
    """Fetch (or read) the pretrained weights once in the driver, so the trials find them cached and
    a machine with no internet hears so before any trial starts."""
    if not trial["pretrained"]:
        return
    from trainables.models import create_model

    try:
        create_model(trial["model"], 2, 3, pretrained=True, weights=trial["weights"])
    except Exception as exc:  # a download or file failure, whatever its type
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        source = trial["weights"] or "timm's download"
        raise UsageError(
            f"--weights: the pretrained weights of {trial['model']} cannot be loaded from {source} ({reason}); "
            "pass --no-pretrained to train from scratch, or --weights FILE"
        ) from None


def local_resources() -> tuple[float, float]:
    """CPUs and GPUs a locally started Ray would see, without starting it."""
    import torch

    return float(os.cpu_count() or 1), float(torch.cuda.device_count())


def local_gpu_memory_gib() -> float | None:
    """The smallest visible GPU's memory, from nvidia-smi; None where it cannot be read.

    Why nvidia-smi and not torch: asking CUDA would open a context in the driver, which would then
    hold memory on GPU 0 for the whole study."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,uuid,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    chosen = None if visible is None else {v.strip() for v in visible.split(",")}
    sizes = []
    for line in out.strip().splitlines():
        index, uuid, mib = (field.strip() for field in line.split(","))
        if chosen is None or index in chosen or uuid in chosen:
            sizes.append(float(mib) / 1024)
    return min(sizes) if sizes else None


def packed_share(study: Study, read_gpu_memory: Callable[[], float | None], where: str) -> float:
    """The preset's GPUs per trial, or fewer trials per GPU where the preset's packing, measured on
    H200s, would not fit these GPUs: out-of-memory failures would cost more than the packing gains.
    The margin leaves room for the caching allocator and cuDNN's workspaces. The GPUs' memory is
    read only where a packed preset has a measured need."""
    share, need = study.preset_gpus_per_trial, study.preset_gpu_memory_gib
    if share >= 1 or need is None:
        return share
    gpu_memory_gib = read_gpu_memory()
    if gpu_memory_gib is None:
        return share
    packed = round(1 / share)
    fit = max(1, int(MEMORY_MARGIN * gpu_memory_gib // need))
    if fit >= packed:
        return share
    lowered = round(1 / fit, 4)
    print(
        f"GPUs per trial: {lowered:g}, {fit} per GPU: the preset packs {packed}, a {study.preset} trial took "
        f"{need:g} GiB, and {where} GPUs of {gpu_memory_gib:.0f} GiB (--gpus-per-trial sets it)"
    )
    return lowered


def _unknown_memory() -> None:
    """A cluster's GPUs, which the driver cannot see: the preset's packing stands."""
    return None


def resolve_gpus(
    study: Study,
    cpus: float,
    gpus: float,
    where: str = "this Ray cluster has",
    read_gpu_memory: Callable[[], float | None] = _unknown_memory,
) -> float:
    """GPUs per trial: the flag, else the preset's share (fewer per GPU where memory asks) where there
    are GPUs; checked against the cluster."""
    if study.gpus_per_trial is not None:
        per_trial = study.gpus_per_trial
    else:
        per_trial = packed_share(study, read_gpu_memory, where) if gpus > 0 else 0.0
    if per_trial > gpus:
        raise UsageError(f"--gpus-per-trial: {per_trial:g} GPU(s) per trial, but {where} {gpus:g}")
    return per_trial


def fit_cpus(study: Study, cpus: float, where: str = "this Ray cluster has") -> Study:
    """The study with CPUs per trial that fit: a preset's default is lowered to what there is (said
    in one line); a --cpus-per-trial that cannot fit is refused."""
    if study.cpus_per_trial <= cpus:
        return study
    if not study.cpus_from_preset:
        raise UsageError(f"--cpus-per-trial: {study.cpus_per_trial:g} CPUs per trial, but {where} {cpus:g}")
    print(
        f"CPUs per trial: {cpus:g}, all that {where.split(' has')[0]} has (the preset asks for {study.cpus_per_trial:g}; "
        "--cpus-per-trial sets it)"
    )
    return dataclasses.replace(study, cpus_per_trial=cpus)


def check_address(address: str, timeout: float = 5.0) -> None:
    """Refuse an address where no Ray cluster answers, in seconds and before anything is written
    (ray.init waits minutes on a closed port and does not stop on SIGTERM meanwhile)."""
    flag = f"--address {address}"
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS", "")
        current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
        if not address and current.is_file():
            address = current.read_text().strip()
        if not address:
            raise UsageError(
                f"{flag}: no Ray cluster runs on this machine (start one with `ray start --head`), "
                "or leave --address out to start Ray for this study alone"
            )
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit() or any(c.isspace() for c in host):
        raise UsageError(f"{flag}: not HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise UsageError(f"{flag}: no Ray cluster answers at {host}:{port} ({exc.strerror or exc})") from None


def start_ray(study: Study, log_file: Path) -> None:
    import ray

    env_vars = {
        "CUBLAS_WORKSPACE_CONFIG": CUBLAS_WORKSPACE,
        GIT_COMMIT_ENV: git_commit() or "",
        SPLITS_DIR_ENV: os.environ.get(SPLITS_DIR_ENV, str(study.storage_path / ".splits")),
        MAX_PIXELS_ENV: str(MAX_IMAGE_PIXELS),
        PIN_CPUS_ENV: "1" if study.pin_cpus else "0",
    }
    runtime_env: dict = {"env_vars": env_vars}
    if study.address:
        runtime_env.update(working_dir=str(REPO_ROOT), excludes=UPLOAD_EXCLUDES)
    else:
        env_vars["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    # why: the dashboard serves job control over HTTP; off unless asked for, and then local only.
    # Ray would also start one idle worker per CPU and wait for them (64 on a 4-GPU host, ~1 s of
    # its start and ~70 MB each) that no trial uses: the slots need workers with this runtime_env
    local = (
        {}
        if study.address
        else {
            "include_dashboard": study.dashboard,
            "dashboard_host": "127.0.0.1",
            "_system_config": {"prestart_worker_first_driver": False},
        }
    )
    # why: "local" starts this study's own Ray even when a cluster already runs on the machine (None would join it)
    ray.init(
        address=study.address or "local",
        runtime_env=runtime_env,
        log_to_driver=False,
        logging_level=logging.ERROR,
        **local,
    )
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    ray_logger = logging.getLogger("ray")
    for h in list(ray_logger.handlers):
        ray_logger.removeHandler(h)
    ray_logger.addHandler(handler)
    ray_logger.propagate = False


def cluster_resources() -> tuple[float, float]:
    import ray

    total = ray.cluster_resources()
    return float(total.get("CPU", 0)), float(total.get("GPU", 0))


def fit(study: Study, trials: list[dict], experiment: Path, resume: bool, gpus_per_trial: float) -> None:
    """Run (or continue) the study; its results are in the experiment directory."""
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from sweeps.progress import StudyProgress
    from sweeps.pruning import CheckpointPruner, state_period_s
    from trainables.tune_entry import REUSE_ACTORS, train

    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"  # why: the new engine prints its tables whatever `verbose` says
    grace_s = 3 * state_period_s()  # sets the state period for Tune too, before it reads it
    trainable = tune.with_resources(train, {"cpu": study.cpus_per_trial, "gpu": gpus_per_trial})
    tuner = None
    if resume:
        tuner, trials = _restore(tune, trainable, experiment, trials)
    progress = StudyProgress(len(trials), int(trials[0]["epochs"]), trials[0]["metric"])
    if tuner is None:
        tuner = tune.Tuner(
            trainable,
            param_space=param_space(trials),
            tune_config=tune.TuneConfig(
                # why: the grid is an explicit list (repeats differ between modes), so each trial is
                # a preset point; num_samples = one sample per point
                search_alg=BasicVariantGenerator(
                    points_to_evaluate=preset_points(trials), max_concurrent=study.max_concurrent
                ),
                # why: a slot's process is kept and forks a fresh process for each trial
                # (trainables/forked.py); where it cannot fork, each trial gets a new actor
                num_samples=len(trials),
                reuse_actors=REUSE_ACTORS,
                trial_name_creator=lambda t: trial_label(t.config),
                trial_dirname_creator=lambda t: f"{trial_label(t.config)}_{t.trial_id}",
            ),
            run_config=tune.RunConfig(
                name=experiment.name,
                storage_path=str(experiment.parent),
                verbose=0,
                # why: old checkpoints are deleted by CheckpointPruner, not by Tune (see sweeps/pruning.py)
                callbacks=[progress, CheckpointPruner(study.keep_checkpoints, grace_s)],
                # why: last-layer weights and predictions must reach the storage from any node
                sync_config=tune.SyncConfig(sync_artifacts=True),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
                failure_config=tune.FailureConfig(max_failures=study.max_failures),
            ),
        )
    tuner.fit()


def _restore(tune, trainable, experiment: Path, trials: list[dict]):  # noqa: ANN001, ANN202 (Ray's module and types)
    """Tune's own restore when its saved state reads (finished trials kept, interrupted ones
    continue, failed ones start again); else (None, the trials not finished on disk), which start
    again. Returns (tuner or None, the trials a new Tuner must run)."""
    from analysis import load_experiment
    from sweeps import storage
    from sweeps.summary import summary_rows

    for note in storage.set_aside_broken_states(experiment):
        print(note)
    why = "no intact experiment_state-*.json and tuner.pkl"
    if tune.Tuner.can_restore(str(experiment)) and storage.intact_state(experiment):
        try:
            return tune.Tuner.restore(
                str(experiment), trainable=trainable, resume_unfinished=True, restart_errored=True
            ), trials
        except Exception as exc:  # a cut-off tuner.pkl raises whatever unpickling meets
            why = f"tuner.pkl: {type(exc).__name__}"
    rows = summary_rows(load_experiment(experiment).trials)
    remaining = storage.supersede_unfinished(experiment, trials, set(rows.loc[rows["status"] == "finished", "label"]))
    print(
        f"Tune's saved state could not be read ({why}); the {len(remaining)} trial(s) not finished on disk start again, "
        f"earlier partial runs kept in {experiment / storage.SUPERSEDED}"
    )
    return None, remaining


def varying_keys(trials: list[dict]) -> list[str]:
    return [k for k in trials[0] if any(t[k] != trials[0][k] for t in trials)]


def param_space(trials: list[dict]) -> dict:
    """Keys equal in every trial are constants; a varying key is a choice over the grid's values.

    Each trial is a preset point that sets every varying key, so nothing is ever sampled; Tune
    only checks the points against these choices.
    """
    from ray import tune

    space = dict(trials[0])
    for key in varying_keys(trials):
        values: list = []
        for t in trials:
            if isinstance(t[key], list):  # why: Tune flattens list values of preset points
                raise UsageError(f"--set: {key} is a list that differs between trials; the grid cannot vary it")
            if t[key] not in values:
                values.append(t[key])
        space[key] = tune.choice(values)
    return space


def preset_points(trials: list[dict]) -> list[dict]:
    keys = varying_keys(trials)
    return [{k: t[k] for k in keys} for t in trials]
