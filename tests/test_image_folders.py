"""Image-folder data sets (folder:PATH, SDNET2018) on small fixtures in the real on-disk formats."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from datasets import DataError, get_dataset
from sweeps.grid import GridSpec, build_trials
from sweeps.presets import PRESETS
from tests.conftest import REPO, sdnet_tree, write_images
from trainables.batches import StreamSeeds
from trainables.config import TrialConfig
from trainables.loop import run_trial


@pytest.fixture
def two_class_folder(tmp_path) -> Path:
    for k, name in enumerate(("cats", "dogs")):
        write_images(tmp_path / "pets" / name, 20, seed=k)
    return tmp_path / "pets"


def test_folder_split_is_stratified_seeded_and_written_once(two_class_folder):
    splits = get_dataset("folder").load(two_class_folder)
    assert splits.classes == ("cats", "dogs") and splits.in_chans == 3
    sizes = [len(s.labels) for s in (splits.train, splits.val, splits.test)]
    assert sum(sizes) == 40 and sizes[2] == 4 and set(splits.test.labels) == {0, 1}
    manifest = next(two_class_folder.glob(".split-*.json"))
    stamp = manifest.stat().st_mtime_ns
    again = get_dataset("folder").load(two_class_folder)
    assert again.test.paths == splits.test.paths and manifest.stat().st_mtime_ns == stamp
    assert not set(splits.train.paths) & set(splits.test.paths)


def test_sdnet_layout_cracked_is_the_positive_class_and_any_subset_works(tmp_path):
    splits = get_dataset("sdnet").load(sdnet_tree(tmp_path / "all"))
    assert splits.classes == ("uncracked", "cracked")
    everything = splits.train.paths + splits.val.paths + splits.test.paths
    labels = np.concatenate([splits.train.labels, splits.val.labels, splits.test.labels])
    assert len(everything) == 60
    assert all((lab == 1) == Path(p).parent.name.startswith("C") for p, lab in zip(everything, labels))
    subset = get_dataset("sdnet").load(sdnet_tree(tmp_path / "walls", folders=("W/CW", "W/UW")))
    assert len(subset.train.paths + subset.val.paths + subset.test.paths) == 20


@pytest.mark.parametrize(
    "case,match",
    [
        ("wrong_layout", "has none of D/CD"),
        ("one_class", "has only cracked folders"),
        ("corrupt", "0003.jpg: cannot be decoded"),
        ("empty_class", "no images for class 'uncracked'"),
    ],
)
def test_sdnet_bad_input_is_named(tmp_path, case, match):
    root = tmp_path / "sdnet"
    if case == "wrong_layout":
        write_images(root / "images", 2, seed=0)
    elif case == "one_class":
        sdnet_tree(root, folders=("D/CD", "P/CP"))
    elif case == "corrupt":
        sdnet_tree(root, folders=("D/CD", "D/UD"))
        for name in ("0003.jpg", "0007.jpg"):  # decoded in threads: the first broken file is the one named
            path = root / "D/UD" / name
            path.write_bytes(path.read_bytes()[:200])  # truncated mid-file
    elif case == "empty_class":
        sdnet_tree(root, folders=("D/CD",))
        (root / "D/UD").mkdir(parents=True)
    with pytest.raises(DataError, match=match):
        get_dataset("sdnet").prepare(root)
    assert root.is_dir() and not list(root.glob(".split-*.json"))  # no manifest from bad data


def folder_trial(folder: Path, **overrides) -> TrialConfig:
    p = PRESETS["folder"]
    spec = GridSpec(
        (0,),
        ("sgd",),
        1,
        1,
        p["trial"],
        p["optimizers"],
        {
            "data_dir": str(folder),
            "gpu_share": 0.0,
            "model": "small_cnn",
            "image_size": (16, 16),
            "epochs": 2,
            "batch_size": 8,
            "eval_batch_size": 8,
            "metric": "auc",
        },
    )
    return TrialConfig.from_dict({**build_trials(spec)[0], **overrides})


def test_augmented_file_stream_is_the_same_with_and_without_workers(two_class_folder, tmp_path):
    finals = []
    for workers in (0, 2):
        out = []
        (tmp_path / str(workers)).mkdir()
        run_trial(
            folder_trial(two_class_folder, num_workers=workers),
            lambda m, s, into=out: into.append(m),
            tmp_path / str(workers),
            torch.device("cpu"),
        )
        finals.append(out[-1])
    assert finals[0]["data_sha256"] == finals[1]["data_sha256"]
    assert finals[0]["weights_sha256"] == finals[1]["weights_sha256"]
    assert 0.0 <= finals[0]["test_auc"] <= 1.0 and finals[0]["metric"] == finals[0]["test_auc"]


@pytest.mark.parametrize("pipeline", ["sdnet", "cbis"])  # cbis: its noise is drawn on the device
def test_augmentation_differs_across_seeds_and_epochs_but_not_repeats(two_class_folder, pipeline):
    from trainables.file_stream import FileStream

    splits = get_dataset("folder").load(two_class_folder)

    def first_batch(seed: int, epoch: int) -> torch.Tensor:
        stream = FileStream(
            splits.train.paths,
            splits.train.labels,
            channels=3,
            size=(16, 16),
            pipeline=pipeline,
            batch_size=4,
            seeds=StreamSeeds(seed, seed),
            num_workers=0,
            device=torch.device("cpu"),
        )
        x, _, idx = next(iter(stream.epoch(epoch)))
        return x, idx

    (a, ia), (b, ib) = first_batch(0, 1), first_batch(0, 1)
    assert torch.equal(a, b) and torch.equal(ia, ib) and a.shape == (4, 3, 16, 16) and a.dtype == torch.uint8
    assert not torch.equal(first_batch(0, 2)[0], a) and not torch.equal(first_batch(1, 1)[0], a)


@pytest.mark.parametrize("pipeline", ["sdnet", "cbis"])
def test_one_running_stream_gives_each_epoch_as_a_fresh_one_would(two_class_folder, pipeline):
    """The training iterator runs across epochs (the next epoch is read ahead); that must not change
    any batch, with workers or without, nor survive an epoch left half read."""
    from trainables.file_stream import FileStream

    splits = get_dataset("folder").load(two_class_folder)

    def stream(workers: int) -> FileStream:
        return FileStream(
            splits.train.paths,
            splits.train.labels,
            channels=3,
            size=(16, 16),
            pipeline=pipeline,
            batch_size=4,
            seeds=StreamSeeds(3, 3),
            num_workers=workers,
            device=torch.device("cpu"),
            drop_last=True,
        )

    def batches(s: FileStream, epoch: int) -> list[tuple[torch.Tensor, ...]]:
        out = list(s.epoch(epoch))
        assert len(out) == len(s) == len(splits.train.labels) // 4
        return out

    fresh = {epoch: batches(stream(0), epoch) for epoch in (1, 2, 3, 4)}
    running = stream(2)
    next(iter(running.epoch(1)))  # a half-read epoch: the same epoch asked again starts over
    for epoch in (1, 2, 3, 4):
        for got, want in zip(batches(running, epoch), fresh[epoch], strict=True):
            assert all(torch.equal(g, w) for g, w in zip(got, want))
    assert [torch.equal(a[2], b[2]) for a, b in zip(fresh[1], fresh[2])].count(False) > 0


def test_held_out_batches_are_kept_after_one_pass_when_they_fit(two_class_folder, tmp_path):
    from trainables.file_stream import FileStream

    splits = get_dataset("folder").load(two_class_folder)
    test = splits.test

    def stream(cache_mb: int, size: tuple[int, int] = (16, 16), num_workers: int = 2) -> FileStream:
        return FileStream(
            splits.train.paths,
            splits.train.labels,
            channels=3,
            size=size,
            pipeline="sdnet",
            batch_size=4,
            seeds=StreamSeeds(0, 0),
            num_workers=num_workers,
            device=torch.device("cpu"),
            eval_cache_mb=cache_mb,
        )

    kept, streamed = stream(1), stream(0)
    first = list(kept.evaluation(test.paths, test.labels, 3))
    assert kept.cache_left == 2**20 - len(test.labels) * 3 * 16 * 16
    moved = tmp_path / "moved"
    two_class_folder.rename(moved)  # later passes of the kept split must read no file
    try:
        again = list(kept.evaluation(test.paths, test.labels, 3))
        with pytest.raises(OSError, match="cannot be read"):  # the other stream still reads the files
            list(streamed.evaluation(test.paths, test.labels, 3))
    finally:
        moved.rename(two_class_folder)
    assert len(again) == len(first) == -(-len(test.labels) // 3)
    assert all(torch.equal(a, b) for pair in zip(first, again) for a, b in zip(*pair))
    assert all(
        torch.equal(a, b) for pair in zip(first, streamed.evaluation(test.paths, test.labels, 3)) for a, b in zip(*pair)
    )
    too_small = stream(
        1, size=(600, 600), num_workers=0
    )  # 1 MB, images of 1.08 MB each: nothing fits, every pass reads
    assert len(list(too_small.evaluation(test.paths, test.labels, 3))) == len(first)
    assert too_small.cache_left == 2**20 and not too_small._cached
    two_class_folder.rename(moved)
    try:
        with pytest.raises(OSError, match="cannot be read"):
            list(too_small.evaluation(test.paths, test.labels, 3))
    finally:
        moved.rename(two_class_folder)


def test_cli_refuses_a_folder_without_class_subfolders(tmp_path):
    write_images(tmp_path / "flat", 3, seed=0)
    proc = subprocess.run(
        [sys.executable, "sweeps/run.py", "--dataset", f"folder:{tmp_path / 'flat'}", "--dry-run"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "needs one sub-folder of images per class" in proc.stderr


def test_files_checked_in_threads_stop_at_the_first_broken_one_in_order():
    from datasets.threads import in_threads

    started = []

    def work(i: int) -> int:
        started.append(i)
        time.sleep(0.001)
        if i in (2, 5):
            raise DataError(f"file {i} is broken")
        return i

    with pytest.raises(DataError, match="file 2 is broken"):
        list(in_threads(work, range(2000)))
    time.sleep(0.05)  # any thread still running has finished; nothing queued may start after this
    assert len(started) < 2000  # the items not yet started were dropped
