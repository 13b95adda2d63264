"""A trial's process pinned to cores of its own: claimed, exclusive, released when it ends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux's")

# a process that pins itself, prints what it got, and holds its claim until its stdin closes
CLAIMER = textwrap.dedent(
    """
    import json, os, sys
    import torch
    from trainables import placement
    placement.LOCK_DIR = __import__("pathlib").Path(sys.argv[1])
    got = placement.pin(int(sys.argv[2]))
    print(json.dumps({**got.describe(), "affinity": sorted(os.sched_getaffinity(0))}), flush=True)
    sys.stdin.read()
    """
)


def claimer(lock_dir: Path, count: int, allowed: list[int] | None = None) -> tuple[subprocess.Popen, dict]:
    """Start a process that claims `count` cores (within `allowed`, as taskset would restrict it)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CLAIMER, str(lock_dir), str(count)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        preexec_fn=(lambda: os.sched_setaffinity(0, allowed)) if allowed else None,
    )
    return proc, json.loads(proc.stdout.readline())


def release(proc: subprocess.Popen) -> None:
    proc.stdin.close()
    proc.wait(timeout=30)


def test_a_process_runs_on_the_cores_it_claimed_with_as_many_threads(tmp_path: Path) -> None:
    proc, got = claimer(tmp_path, 1)
    release(proc)
    assert got["cpu_pinning"] == "pinned"
    assert got["affinity"] == [int(got["cpu_cores"])] and got["torch_threads"] == 1


def test_two_processes_never_share_a_core_and_a_claim_ends_with_its_process(tmp_path: Path) -> None:
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        pytest.skip("needs two cores")
    allowed = cores[:2]
    first, a = claimer(tmp_path, 1, allowed)
    second, b = claimer(tmp_path, 1, allowed)
    third, c = claimer(tmp_path, 1, allowed)  # both cores are taken: it must run unpinned, and say so
    release(third)
    assert {a["cpu_cores"], b["cpu_cores"]} == {str(allowed[0]), str(allowed[1])}
    assert c["cpu_pinning"] == "unpinned: 0 of 1 cores free" and c["affinity"] == allowed and c["cpu_cores"] == ""
    release(first)
    time.sleep(0.1)
    fourth, d = claimer(tmp_path, 1, allowed)
    release(fourth)
    release(second)
    assert d["cpu_cores"] == a["cpu_cores"]  # the first one's core, free again once it ended


def test_too_few_free_cores_leave_the_process_where_it_was(tmp_path: Path) -> None:
    allowed = sorted(os.sched_getaffinity(0))
    proc, got = claimer(tmp_path, len(allowed) + 1)
    release(proc)
    assert got["cpu_pinning"] == f"unpinned: {len(allowed)} of {len(allowed) + 1} cores free"
    assert got["affinity"] == allowed and got["cpu_cores"] == ""


def test_no_cores_asked_for_is_no_pinning(tmp_path: Path) -> None:
    proc, got = claimer(tmp_path, 0)
    release(proc)
    assert got["cpu_pinning"] == "off" and got["affinity"] == sorted(os.sched_getaffinity(0))


def test_the_driver_s_flag_turns_pinning_on_in_every_trial(monkeypatch) -> None:
    from sweeps.cli import parse
    from trainables import placement

    assert parse(["--dataset", "digits", "--pin-cpus"]).pin_cpus and not parse(["--dataset", "digits"]).pin_cpus
    monkeypatch.delenv(placement.PIN_CPUS_ENV, raising=False)
    assert not placement.pinning_wanted()
    monkeypatch.setenv(placement.PIN_CPUS_ENV, "0")
    assert not placement.pinning_wanted()
    monkeypatch.setenv(placement.PIN_CPUS_ENV, "1")
    assert placement.pinning_wanted()


def test_cores_are_claimed_one_per_physical_core_before_any_second_hardware_thread(monkeypatch) -> None:
    from trainables import placement

    # two physical cores with two hardware threads each, numbered as many kernels do: 0,2 and 1,3
    pairs = {0: [0, 2], 2: [0, 2], 1: [1, 3], 3: [1, 3]}
    monkeypatch.setattr(placement, "siblings", lambda cpu: pairs[cpu])
    assert placement.claim_order({0, 1, 2, 3}) == [0, 1, 2, 3]
    # numbered the other way (0,1 share a core): the first two claims still land on two cores
    pairs = {0: [0, 1], 1: [0, 1], 2: [2, 3], 3: [2, 3]}
    assert placement.claim_order({0, 1, 2, 3}) == [0, 2, 1, 3]


def test_sibling_lists_are_read_as_the_kernel_writes_them() -> None:
    from trainables import placement

    assert placement.cpu_list("0-1,4,10-11\n") == [0, 1, 4, 10, 11]
    assert placement.siblings(10**6) == [10**6]  # no such CPU: itself alone
    cpu = sorted(os.sched_getaffinity(0))[0]
    assert cpu in placement.siblings(cpu)
