"""CUDA's Multi-Process Service (MPS) for trials packed on one GPU.

Packed trials are separate processes; without MPS the GPU time-slices between their contexts, so
one trial's kernels never run beside another's and packing only fills the gaps between them. With
the MPS control daemon running, every CUDA process of the user joins one server and their kernels
run concurrently. Kernels do not change under MPS, only their overlap (bench/mps.py measures both).

Control goes through `nvidia-cuda-mps-control`, the daemon's own interface: `-d` starts it, and
commands on its stdin (`get_server_list`, `get_client_list PID`, `quit`) query and stop it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

CONTROL = "nvidia-cuda-mps-control"
START_TIMEOUT_S = 10.0  # the daemon answers within a second once started


class MPSError(RuntimeError):
    """MPS could not be started here; the message says why in one line."""


@dataclass(frozen=True)
class Daemon:
    started: bool  # this process started the daemon (and so stops it); False: one was running already
    log_dir: Path | None  # where the daemon this process started writes control.log and server.log


def control(command: str, timeout: float = 10.0) -> str | None:
    """The daemon's answer to one command, or None when no daemon answers (none running, no binary)."""
    binary = shutil.which(CONTROL)
    if binary is None:
        return None
    try:
        proc = subprocess.run([binary], input=command + "\n", capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def running() -> bool:
    return control("get_server_list") is not None


def unavailable() -> str | None:
    """Why MPS cannot run on this machine, in a few words; None where it can be tried."""
    if not sys.platform.startswith("linux"):
        return f"MPS needs Linux (this is {sys.platform})"
    if shutil.which(CONTROL) is None:
        return f"no {CONTROL} on PATH (it comes with NVIDIA's driver)"
    prohibited = [i for i, mode in enumerate(compute_modes()) if mode.lower() == "prohibited"]
    if prohibited:
        return f"GPU {', '.join(map(str, prohibited))} is in the Prohibited compute mode"
    return None


def compute_modes() -> list[str]:
    """Each local GPU's compute mode as nvidia-smi names it (Default, Exclusive_Process, Prohibited)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=compute_mode", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def start(log_dir: Path) -> Daemon:
    """Join the daemon already running, or start one logging to log_dir; MPSError says why not."""
    if running():
        return Daemon(started=False, log_dir=None)
    why = unavailable()
    if why:
        raise MPSError(why)
    log_dir.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"CUDA_MPS_LOG_DIRECTORY": str(log_dir)}
    proc = subprocess.run([CONTROL, "-d"], env=env, capture_output=True, text=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while proc.returncode == 0 and time.monotonic() < deadline:
        if running():
            return Daemon(started=True, log_dir=log_dir)
        time.sleep(0.1)
    detail = (proc.stderr or proc.stdout).strip().splitlines()
    raise MPSError(f"{CONTROL} -d did not start: {detail[-1] if detail else f'exit {proc.returncode}'}")


def stop(daemon: Daemon) -> None:
    """Stop the daemon if this process started it; one that was running before is left alone."""
    if daemon.started:
        control("quit")


def clients() -> int:
    """CUDA processes connected to MPS servers now (0 where none runs)."""
    servers = (control("get_server_list") or "").split()
    return sum(len((control(f"get_client_list {pid}") or "").split()) for pid in servers if pid.isdigit())
