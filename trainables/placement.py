"""A trial's process on CPU cores of its own, as many as Ray reserved for it (`--pin-cpus`).

Ray reserves CPUs per trial but pins nothing, so the kernel moves a trial's threads over every
core of the machine, among its neighbours'. The short presets' models are launch-bound, and on an
H200 a plain loop pinned to two cores once ran 28% faster than the same loop left to the scheduler.
Through sweeps/run.py the gain did not hold (bench/RESULTS.md, 2026-11-30): pinned to Ray's two
CPUs, one cifar10 trial alone ran its epochs 9-11% faster, one cifar10-fast trial alone no faster,
and a packed cifar10-fast study slower (108 s against 97 s for 12 trials): pinning is offered, not
the default.

Cores are claimed with one lock file per core (flock): a claim ends when the process that holds it
ends, however it ends, so nothing needs cleaning up, and trials of several studies on one machine
never share a core. Each physical core's first hardware thread is claimed before any second one
(sysfs says which threads share a core), so that trials share no physical core while there are
enough. Whether that was why pinned packed trials ran slower has not been measured. A trial that
finds too few free cores runs unpinned and says so in its `env`.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

PIN_CPUS_ENV = "CUDA_RANDOMNESS_PIN_CPUS"  # set by the driver: "1" with --pin-cpus
LOCKS_ENV = (
    "CUDA_RANDOMNESS_CORE_LOCKS"  # another folder of core locks: trials that claim there ignore those that claim here
)
LOCK_DIR = Path(os.environ.get(LOCKS_ENV) or Path(tempfile.gettempdir()) / f"cuda-randomness-cores-{os.getuid()}")

_claims: list[int] = []  # why: the open lock files are the claim; they must stay open while the process lives


@dataclass(frozen=True)
class Placement:
    cores: tuple[int, ...]  # the cores this process runs on; empty when it was not pinned
    note: str  # "pinned", or why not

    def describe(self) -> dict[str, object]:
        """For the trial's `env`: where its process ran, and with how many intra-op threads."""
        return {
            "cpu_cores": ",".join(map(str, self.cores)),
            "cpu_pinning": self.note,
            "torch_threads": torch.get_num_threads(),
        }


def pinning_wanted() -> bool:
    return os.environ.get(PIN_CPUS_ENV) == "1"


def siblings(cpu: int) -> list[int]:
    """The logical CPUs that share `cpu`'s physical core (itself included), from sysfs; [cpu] where
    the kernel does not say."""
    try:
        return cpu_list(Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list").read_text())
    except OSError:
        return [cpu]


def cpu_list(text: str) -> list[int]:
    """The kernel's CPU list format: "0-3,8,10-11"."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        first, _, last = part.partition("-")
        cpus += range(int(first), int(last or first) + 1)
    return cpus


def claim_order(cpus: set[int]) -> list[int]:
    """The order cores are claimed in: each physical core's first hardware thread before any second
    one, so that pinned trials share no physical core while there are enough of them."""

    def rank(cpu: int) -> int:
        shared = siblings(cpu)
        return shared.index(cpu) if cpu in shared else 0

    return sorted(cpus, key=lambda cpu: (rank(cpu), cpu))


def pin(count: int) -> Placement:
    """Claim `count` free cores among those this process may use, run on them alone, and use as many
    intra-op threads; count < 1 leaves the process where it is."""
    if count < 1:
        return Placement((), "off")
    if not hasattr(os, "sched_setaffinity"):
        return Placement((), f"not available on {os.uname().sysname}")
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    held: list[tuple[int, int]] = []
    for core in claim_order(os.sched_getaffinity(0)):
        fd = os.open(LOCK_DIR / f"cpu{core}", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        held.append((core, fd))
        if len(held) == count:
            break
    if len(held) < count:
        for _, fd in held:
            os.close(fd)
        return Placement((), f"unpinned: {len(held)} of {count} cores free")
    _claims.extend(fd for _, fd in held)
    cores = tuple(core for core, _ in held)
    os.sched_setaffinity(0, cores)
    torch.set_num_threads(count)
    return Placement(cores, "pinned")
