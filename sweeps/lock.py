"""One driver per study: an exclusive lock on the experiment directory, held for the driver's life.

Two drivers on one study train its grid twice and each moves the other's folders aside, for good
(issue #32). The lock is a POSIX record lock (fcntl.lockf) on `<experiment>/.driver.lock`: the
kernel drops it when the process ends, however it ends, so a `kill -9` never leaves a stale lock,
and NFS (v4, or v3 with lockd) carries such locks between the nodes of a cluster. A file system that
has no locks (some FUSE mounts of object stores) is said in one line, and the study runs unlocked.
The file names who holds it, so that a second driver can say so.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path

LOCK_FILE = ".driver.lock"


class Held(Exception):
    """Another driver holds the study; the message says which, in one line."""


class StudyLock:
    """The experiment directory's lock: acquire() takes it or raises Held; it lasts until release()
    or the process's end."""

    def __init__(self, experiment: Path) -> None:
        self.experiment = experiment
        self.path = experiment / LOCK_FILE
        # the folders this driver made, the storage path's among them (release may take them back)
        self.made: list[Path] = []
        self.unlocked_why: str | None = None  # why the study runs without a lock, where it does
        self._file = None

    def acquire(self) -> None:
        self.made = [p for p in (*reversed(self.experiment.parents), self.experiment) if not p.exists()]
        self.experiment.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # why: never truncated before the lock is ours, so a holder's name stays
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                handle.seek(0)
                holder = _describe(handle.read())
                handle.close()
                raise Held(f"{self.experiment} is being run by {holder}; wait for it, or stop it first") from None
            if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                self.unlocked_why = f"the file system of {self.experiment} has no locks ({exc.strerror})"
                self._file = handle
                return
            handle.close()
            raise
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}))
        handle.flush()
        self._file = handle

    def release(self, remove_if_unused: bool = False) -> None:
        """Let the study go; with remove_if_unused, the folders this driver made are removed again
        where they hold nothing but the lock file (a study refused before it began leaves nothing)."""
        if self._file is None:
            return
        self._file.close()
        self._file = None
        if not remove_if_unused or not self.made or [p.name for p in self.experiment.iterdir()] != [LOCK_FILE]:
            return
        self.path.unlink()
        for folder in reversed(self.made):
            if any(folder.iterdir()):
                break
            folder.rmdir()


def _describe(text: str) -> str:
    try:
        holder = json.loads(text)
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["since"]))
        return f"process {holder['pid']} on {holder['host']} (since {since})"
    except (ValueError, KeyError, TypeError):
        return "another driver"
