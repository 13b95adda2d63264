"""A trial in a forked process: its messages reach the parent in order, its failure is raised
there, it never outlives its slot, and it starts from torch's defaults whatever the trial before did."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from tests.conftest import REPO
from trainables.forked import TrialProcessError, run_forked

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="trials are forked on Linux only; elsewhere they run in the actor"
)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is dead, just not yet reaped
        return f.read().split(")")[-1].split()[0] != "Z"


def test_messages_arrive_in_order_and_the_child_waits_for_each_answer(tmp_path):
    marker = tmp_path / "handled"
    seen = []

    def trial(send):
        for k in range(3):
            send(k)
            assert marker.read_text() == str(k)  # the parent handled k before the child went on

    run_forked(trial, lambda k: (seen.append(k), marker.write_text(str(k))))
    assert seen == [0, 1, 2]


def test_the_trials_exception_is_raised_in_the_parent_with_its_traceback():
    def trial(send):
        raise ValueError("no deterministic kernel for aten::something")

    with pytest.raises(
        TrialProcessError, match=r"(?s)Traceback.*ValueError: no deterministic kernel for aten::something"
    ):
        run_forked(trial, lambda _: None)


def test_a_child_that_dies_without_a_word_is_an_error_naming_its_exit():
    with pytest.raises(TrialProcessError, match="exit code -9"):
        run_forked(lambda send: os.kill(os.getpid(), signal.SIGKILL), lambda _: None)


def test_the_child_is_stopped_when_the_parent_stops_handling_it():
    pids = []

    def stop(pid):
        pids.append(pid)
        raise KeyboardInterrupt  # as when Tune stops the trial during tune.report

    def trial(send):
        send(os.getpid())
        time.sleep(600)

    with pytest.raises(KeyboardInterrupt):
        run_forked(trial, stop)
    assert not alive(pids[0])


def test_each_child_starts_from_the_slots_state_not_from_the_trial_before():
    before = torch.are_deterministic_algorithms_enabled()  # other tests in this process may have set it
    torch.use_deterministic_algorithms(False)  # a slot's state: it never runs a trial's code
    seen = []

    def trial(send):
        send(torch.are_deterministic_algorithms_enabled())
        torch.use_deterministic_algorithms(True)
        torch.manual_seed(1)
        send(torch.rand(1).item())

    try:
        run_forked(trial, seen.append)
        run_forked(trial, seen.append)
        assert seen[0] is False and seen[2] is False
        assert seen[1] == seen[3]
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(before)


def test_a_killed_slot_takes_its_trial_with_it(tmp_path):
    pid_file = tmp_path / "child.pid"
    script = textwrap.dedent(f"""
        import os, signal, time
        from trainables.forked import run_forked
        def trial(send):
            send(os.getpid())
            time.sleep(600)
        def handle(pid):
            open({str(pid_file)!r}, "w").write(str(pid))
            os.kill(os.getpid(), signal.SIGKILL)  # as when Ray kills the slot's actor
        run_forked(trial, handle)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    child = int(pid_file.read_text())
    deadline = time.time() + 10
    while alive(child) and time.time() < deadline:
        time.sleep(0.05)
    assert not alive(child)


def test_only_a_slot_s_first_trial_counts_the_slot_s_imports_in_its_start_up():
    from trainables.tune_entry import REUSE_ACTORS, Slot

    slot = Slot(loaded_at=100.0)
    assert slot.next_trial_origin() == 100.0  # the first trial waited for the imports
    later = slot.next_trial_origin()
    assert later > 1e9 and slot.trials == 2  # later trials start from their own fork (now)
    assert REUSE_ACTORS == (sys.platform == "linux")  # one decision for Tune's actor reuse and the fork
