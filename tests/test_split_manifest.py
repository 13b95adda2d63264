"""The split manifest of an image-folder data set: a copy of the directory reads its own files, and
a file changed, missing or added since the split is named before any trial."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from datasets import DataError, get_dataset, image_folder
from tests.conftest import REPO, sdnet_tree, write_images


@pytest.fixture
def split_once(tmp_path):
    for k, name in enumerate(("cats", "dogs")):
        write_images(tmp_path / "pets" / name, 10, seed=k)
    get_dataset("folder").prepare(tmp_path / "pets")
    return tmp_path / "pets"


def test_the_manifest_holds_paths_relative_to_the_data_directory(split_once):
    data = json.loads(next(split_once.glob(".split-*.json")).read_text())
    assert all(not p.startswith("/") and p.split("/")[0] in ("cats", "dogs") for p in data["train"]["paths"])
    assert len(data["train"]["sizes"]) == len(data["train"]["mtimes"]) == len(data["train"]["paths"])


def test_a_copy_reads_its_own_files(split_once, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(split_once, copy)  # as cp -a: contents and modification times
    get_dataset("folder").prepare(copy)
    splits = get_dataset("folder").load(copy)
    assert all(p.startswith(str(copy) + "/") for p in splits.train.paths + splits.test.paths)


@pytest.mark.parametrize("damage", ["emptied", "changed", "added"])
def test_a_copy_that_differs_from_its_manifest_is_named_before_any_trial(split_once, tmp_path, damage):
    copy = tmp_path / "copy"
    shutil.copytree(split_once, copy)
    victim = sorted((copy / "cats").glob("*.jpg"))[0]
    if damage == "emptied":
        shutil.rmtree(copy / "cats")
        (copy / "cats").mkdir()
    elif damage == "changed":
        victim.write_bytes(victim.read_bytes()[:100])
    else:
        write_images(copy / "dogs" / "more", 1, seed=9)
    proc = subprocess.run(
        [
            sys.executable,
            *"sweeps/run.py --dataset".split(),
            f"folder:{copy}",
            "--storage-path",
            str(tmp_path / "exp"),
            *"--epochs 1 --repeats 1 --det-repeats 1 --cpus-per-trial 1".split(),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = proc.stderr.strip()
    word = {"emptied": "missing", "changed": "changed", "added": "added"}[damage]
    assert (
        "\n" not in line
        and f"file(s) {word} since the split was made" in line
        and "delete the manifest to split again" in line
    )
    assert str(copy) in line and not (tmp_path / "exp").exists()


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", json.dumps({"version": 2, "train": {}})])
def test_a_broken_manifest_is_one_line(split_once, content):
    manifest = next(split_once.glob(".split-*.json"))
    manifest.write_text(content)
    with pytest.raises(DataError, match="not a valid split manifest .*; delete it to split again") as info:
        get_dataset("folder").prepare(split_once)
    assert str(manifest) in str(info.value) and "\n" not in str(info.value)


def test_a_manifest_of_the_older_format_is_made_again(split_once):
    manifest = next(split_once.glob(".split-*.json"))
    old = json.loads(manifest.read_text())
    old.pop("version")
    manifest.write_text(json.dumps(old))
    get_dataset("folder").prepare(split_once)
    assert json.loads(manifest.read_text())["version"] == image_folder.MANIFEST_VERSION


def test_a_read_only_data_directory_keeps_its_manifest_under_the_storage_path(tmp_path, monkeypatch, capsys):
    data = sdnet_tree(tmp_path / "sdnet", folders=("W/CW", "W/UW"), n=10)
    real_write = image_folder.write_json_atomically

    def read_only(path, content):  # why: as root, chmod cannot make a directory read-only
        if str(path).startswith(str(data)):
            raise PermissionError(13, "Permission denied")
        real_write(path, content)

    monkeypatch.setattr(image_folder, "write_json_atomically", read_only)
    monkeypatch.delenv(image_folder.SPLITS_DIR_ENV, raising=False)
    with pytest.raises(DataError, match=f"{data}: cannot write the split manifest there"):
        get_dataset("sdnet").prepare(data)
    monkeypatch.setenv(image_folder.SPLITS_DIR_ENV, str(tmp_path / "storage" / ".splits"))
    get_dataset("sdnet").prepare(data)
    written = list((tmp_path / "storage" / ".splits").rglob(".split-*.json"))
    assert len(written) == 1 and f"split manifest: {written[0]} ({data} is read-only)" in capsys.readouterr().out
    assert not list(data.glob(".split-*.json"))
    assert get_dataset("sdnet").load(data, verify_files=True).test.paths  # found again there, by every trial


def test_too_few_images_to_split_is_one_line(tmp_path):
    for k, name in enumerate(("cats", "dogs")):
        write_images(tmp_path / "tiny" / name, 2, seed=k)
    with pytest.raises(DataError, match=r"4 images \(2, 2 per class\) are too few for a stratified 90%/10%"):
        get_dataset("folder").prepare(tmp_path / "tiny")
