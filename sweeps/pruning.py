"""Old checkpoints deleted only once no saved experiment state can name them any more.

Tune deletes a trial's superseded checkpoints (CheckpointConfig.num_to_keep) the moment a new one
is registered, but writes which checkpoint each trial reached into its experiment state only every
TUNE_GLOBAL_CHECKPOINT_S. A driver killed in between leaves a state that names a deleted
checkpoint, and that trial fails on every resume ("does not exist on storage anymore"). So Tune
keeps everything and this callback deletes a checkpoint only after a newer one has been registered
for longer than a few state saves (`grace_s`), always keeping the newest `keep`.
"""

from __future__ import annotations

import os
import time

from ray import tune

from layout import FINISHED_KEY

STATE_PERIOD_ENV = "TUNE_GLOBAL_CHECKPOINT_S"
STATE_PERIOD_S = "5"  # seconds between experiment-state saves, unless the environment says otherwise


def state_period_s() -> float:
    """The experiment-state save period, fixed for the run (Tune's 'auto' may stretch it)."""
    value = os.environ.setdefault(STATE_PERIOD_ENV, STATE_PERIOD_S)
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{STATE_PERIOD_ENV}={value!r} is not a number of seconds") from None


class CheckpointPruner(tune.Callback):
    def __init__(self, keep: int, grace_s: float) -> None:
        self.keep, self.grace_s = keep, grace_s
        self.registered: dict[
            str, list[tuple[float, tune.Checkpoint]]
        ] = {}  # trial id -> (time, checkpoint), oldest first

    def __getstate__(self) -> dict:
        # why: Tune pickles callbacks into tuner.pkl; a resumed run starts its bookkeeping afresh
        return {"keep": self.keep, "grace_s": self.grace_s}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["keep"], state["grace_s"])

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info) -> None:  # noqa: ANN001
        self.registered.setdefault(trial.trial_id, []).append(
            (time.monotonic(), checkpoint)
        )  # pruned at the step's end

    def on_step_end(self, iteration, trials, **info) -> None:  # noqa: ANN001
        self.prune(time.monotonic())

    def on_experiment_end(self, trials, **info) -> None:  # noqa: ANN001
        """A finished trial is never resumed from a checkpoint: down to `keep` at once, counting
        on storage also those an earlier, killed run registered (this run has no record of them)."""
        # why: a trial stopped by Ctrl-C is TERMINATED too; only a finished one reported its final digest
        finished = [t for t in trials if t.status == "TERMINATED" and FINISHED_KEY in (t.last_result or {})]
        self.prune(time.monotonic(), settle={t.trial_id for t in finished})
        for trial in finished:
            self.keep_newest_on_storage(trial)

    def keep_newest_on_storage(self, trial) -> None:  # noqa: ANN001
        from pyarrow import fs

        storage = trial.storage
        if storage is None:
            return
        try:
            found = storage.storage_filesystem.get_file_info(fs.FileSelector(storage.trial_fs_path))
        except OSError:
            return
        names = sorted(
            f.base_name for f in found if f.type == fs.FileType.Directory and f.base_name.startswith("checkpoint_")
        )
        for name in names[: max(len(names) - self.keep, 0)]:  # zero-padded: sorted by index
            _delete(storage.storage_filesystem, f"{storage.trial_fs_path}/{name}")

    def prune(self, now: float, settle: frozenset | set = frozenset()) -> None:
        """Delete what no saved state can name; trials in `settle` count as past their grace."""
        for trial_id, entries in self.registered.items():
            settled = [i for i, (at, _) in enumerate(entries) if now - at >= self.grace_s or trial_id in settle]
            if not settled:
                continue
            # every state saved since checkpoint `settled[-1]` was registered names it or a newer one
            cutoff = min(settled[-1], len(entries) - self.keep)
            for _, checkpoint in entries[: max(cutoff, 0)]:
                _delete(checkpoint.filesystem, checkpoint.path)
            del entries[: max(cutoff, 0)]


def _delete(filesystem, path: str) -> None:  # noqa: ANN001 (a pyarrow FileSystem)
    try:
        filesystem.delete_dir(path)
    except OSError:
        pass  # already gone: nothing to free
