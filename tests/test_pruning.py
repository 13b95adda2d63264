"""Old checkpoints go only once no saved experiment state can name them (sweeps/pruning.py)."""

from __future__ import annotations

import time
from types import SimpleNamespace

from ray import tune

from sweeps.pruning import CheckpointPruner


def registered(tmp_path, pruner: CheckpointPruner, times: list[float], trial_id: str = "t1") -> list:
    folders = []
    for k, at in enumerate(times):
        folder = tmp_path / f"{trial_id}_checkpoint_{k:06d}"
        folder.mkdir()
        (folder / "state.pt").write_bytes(b"x")
        folders.append(folder)
        pruner.registered.setdefault(trial_id, []).append((at, tune.Checkpoint.from_directory(str(folder))))
    return folders


def test_a_checkpoint_goes_only_after_a_newer_one_outlived_the_grace(tmp_path):
    pruner = CheckpointPruner(keep=1, grace_s=2.5)
    folders = registered(tmp_path, pruner, [0.0, 1.0, 2.0, 3.0, 4.0])
    pruner.prune(now=4.2)  # checkpoints 0 and 1 are settled: a saved state names 1 or later
    assert [f.exists() for f in folders] == [False, True, True, True, True]
    pruner.prune(now=100.0)
    assert [f.exists() for f in folders] == [False, False, False, False, True]


def test_keep_counts_the_newest_and_finished_trials_settle_at_once(tmp_path):
    pruner = CheckpointPruner(keep=2, grace_s=60.0)
    now = time.monotonic()  # on_experiment_end reads the clock
    running = registered(tmp_path, pruner, [now - 2, now - 1, now], trial_id="running")
    finished = registered(tmp_path, pruner, [now - 2, now - 1, now], trial_id="finished")
    trials = [
        SimpleNamespace(trial_id="running", status="RUNNING", storage=None, last_result={"epoch": 1}),
        SimpleNamespace(trial_id="finished", status="TERMINATED", storage=None, last_result={"weights_sha256": "ab"}),
    ]
    pruner.on_experiment_end(trials)
    assert [f.exists() for f in running] == [True, True, True]  # within its grace: a resume may need any
    assert [f.exists() for f in finished] == [False, True, True]


def test_a_resumed_run_starts_its_bookkeeping_afresh(tmp_path):
    import pickle

    pruner = CheckpointPruner(keep=1, grace_s=5.0)
    registered(tmp_path, pruner, [0.0])
    again = pickle.loads(pickle.dumps(pruner))
    assert (again.keep, again.grace_s, again.registered) == (1, 5.0, {})


def test_a_finished_trial_keeps_its_newest_checkpoints_on_storage_whoever_registered_them(tmp_path):
    from pyarrow import fs

    trial_dir = tmp_path / "trial"
    for k in (0, 1, 2, 10):
        (trial_dir / f"checkpoint_{k:06d}").mkdir(parents=True)
    (trial_dir / "result.json").write_text("{}\n")
    trial = SimpleNamespace(
        trial_id="t",
        status="TERMINATED",
        last_result={"weights_sha256": "ab"},
        storage=SimpleNamespace(storage_filesystem=fs.LocalFileSystem(), trial_fs_path=str(trial_dir)),
    )
    CheckpointPruner(keep=2, grace_s=60.0).on_experiment_end([trial])
    assert sorted(p.name for p in trial_dir.iterdir()) == ["checkpoint_000002", "checkpoint_000010", "result.json"]


def test_a_trial_stopped_before_its_last_epoch_is_not_treated_as_finished(tmp_path):
    """Ctrl-C leaves interrupted trials TERMINATED too, and a checkpoint may be on storage before
    the driver registered it: such a trial keeps everything."""
    from pyarrow import fs

    trial_dir = tmp_path / "trial"
    for k in (0, 1):
        (trial_dir / f"checkpoint_{k:06d}").mkdir(parents=True)
    trial = SimpleNamespace(
        trial_id="t",
        status="TERMINATED",
        last_result={"epoch": 1},
        storage=SimpleNamespace(storage_filesystem=fs.LocalFileSystem(), trial_fs_path=str(trial_dir)),
    )
    CheckpointPruner(keep=1, grace_s=60.0).on_experiment_end([trial])
    assert sorted(p.name for p in trial_dir.iterdir()) == ["checkpoint_000000", "checkpoint_000001"]
