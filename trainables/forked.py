"""Each trial in a fresh process forked from a warm one, so a trial pays CUDA's start, not Python's.

Importing torch, Ray and torch._dynamo takes seconds per process (3 to 9 s on the GPU machine);
the study runs hundreds of short trials. Ray Tune keeps one actor process per slot alive between
trials (reuse_actors), that process imports everything once and never touches CUDA, and each trial
runs in a child forked from it. The child starts with no CUDA context, no cuDNN autotuning cache
and torch's default flags, exactly as a newly started process would: the non-deterministic
trials stay the reference study's fresh runs. Nothing here knows about Ray: the child sends
messages, the parent hands each to a callback and answers when it is done with it.

Linux only (fork, and the kernel's parent-death signal that ends a child whose slot was killed);
elsewhere the trial runs in the actor's process and actors are not reused.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection

Send = Callable[[object], None]  # the child's side: blocks until the parent has handled the message
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class TrialProcessError(RuntimeError):
    """The trial's own exception, raised again in the parent with the child's traceback as text."""


def available() -> bool:
    return sys.platform == "linux"


def run_forked(target: Callable[[Send], None], on_message: Callable[[object], None]) -> None:
    """Run target(send) in a forked child; each message it sends goes to on_message here, in order,
    and the child waits until on_message returns. The child's exception (or its death) is raised
    here. The calling thread must not have started CUDA: a forked child cannot use the parent's."""
    parent_end, child_end = multiprocessing.Pipe()
    parent_pid = os.getpid()
    child = multiprocessing.get_context("fork").Process(
        target=_child_main, args=(target, child_end, parent_pid), daemon=False
    )
    child.start()
    child_end.close()
    try:
        while True:
            try:
                kind, payload = parent_end.recv()
            except EOFError:  # the child died without saying why: killed, out of memory, a crash in C
                child.join()
                raise TrialProcessError(
                    f"the trial's process ended with exit code {child.exitcode} before it finished"
                ) from None
            if kind == "done":
                break
            if kind == "error":
                raise TrialProcessError(payload)
            on_message(payload)
            parent_end.send(None)
    finally:
        parent_end.close()
        child.join(timeout=30)
        if child.is_alive():  # why: the parent stops (Tune stopped the trial); the trial must not run on
            child.kill()
            child.join()


def _child_main(target: Callable[[Send], None], conn: Connection, parent_pid: int) -> None:
    # why: if the slot's process is killed (Tune stops the trial, the study is interrupted), the
    # trial must die with it rather than go on holding the GPU
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)

    def send(message: object) -> None:
        conn.send(("message", message))
        conn.recv()

    try:
        target(send)
    except BaseException:  # noqa: BLE001 - everything goes back to the parent, which raises it
        conn.send(("error", traceback.format_exc()))
    else:
        conn.send(("done", None))
    finally:
        conn.close()
