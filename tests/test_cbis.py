"""CBIS-DDSM on a small fixture in the real formats: the four official CSVs and DICOM files."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from datasets import DataError, get_dataset
from datasets.cbis import CSVS
from sweeps.grid import GridSpec, build_trials
from sweeps.presets import PRESETS
from tests.conftest import REPO
from trainables.config import TrialConfig
from trainables.loop import run_trial

HEADER = [
    "patient_id",
    "breast_density",
    "left or right breast",
    "image view",
    "abnormality id",
    "abnormality type",
    "pathology",
    "image file path",
    "cropped image file path",
    "ROI mask file path",
]


def write_dicom(
    path: Path, width: int = 12, height: int = 16, corrupt: bool = False, pixels: np.ndarray | None = None
) -> None:
    """A 16-bit MONOCHROME2 mammogram DICOM: `pixels` (uint16, height x width), else a ramp, dark left."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    path.parent.mkdir(parents=True, exist_ok=True)
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"  # digital mammography
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    height, width = (height, width) if pixels is None else pixels.shape
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = height, width, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    if pixels is None:
        pixels = np.tile(np.linspace(0, 60000, width, dtype=np.uint16), (height, 1))  # dark left, bright right
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    if corrupt:
        path.write_bytes(path.read_bytes()[:150])


def write_cbis(root: Path, *, missing_column: str = "", bad_path: str = "", corrupt_case: str = "") -> Path:
    """12 training patients with CC and MLO views, 4 test patients; one image with two abnormalities."""
    rows = {key: [] for key in CSVS}
    rng = np.random.default_rng(0)
    for part, patients in (("train", range(1, 13)), ("test", range(13, 17))):
        for p in patients:
            side = "RIGHT" if p % 3 == 0 else "LEFT"
            kind = "mass" if p % 2 else "calc"
            for view in ("CC", "MLO"):
                case = f"{kind.capitalize()}-{'Training' if part == 'train' else 'Test'}_P_{p:05d}_{side}_{view}"
                pathology = (
                    ["BENIGN", "MALIGNANT", "BENIGN_WITHOUT_CALLBACK"][int(rng.integers(0, 3))] if p != 2 else "BENIGN"
                )
                relative = f"{case}/1.3.6.1.4.1.9590.{p}/1.3.6.1.4.1.9590.{p}.1/000000.dcm"
                dicom = root / (
                    f"{case}/08-07-2016-DDSM-{p}/1-full mammogram images-{p}/1-1.dcm" if p == 5 else relative
                )  # TCIA's renamed folders
                write_dicom(dicom, corrupt=case == corrupt_case)
                rows[(kind, part)].append(
                    [
                        f"P_{p:05d}",
                        "2",
                        side,
                        view,
                        "1",
                        kind,
                        pathology,
                        bad_path if (bad_path and p == 1) else relative,
                        "",
                        "",
                    ]
                )
                if p == 2 and view == "CC":  # a second abnormality, malignant: the image is malignant
                    rows[(kind, part)].append([f"P_{p:05d}", "2", side, view, "2", kind, "MALIGNANT", relative, "", ""])
    for key, name in CSVS.items():
        header = [h for h in HEADER if h != missing_column] if key == ("mass", "train") else HEADER
        with open(root / name, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows([[v for h, v in zip(HEADER, r) if h in header] for r in rows[key]])
    return root


@pytest.fixture(scope="module")
def cbis_dir(tmp_path_factory) -> Path:
    return write_cbis(tmp_path_factory.mktemp("cbis"))


def all_images(splits):
    return {
        Path(p).stem: int(label) for s in (splits.train, splits.val, splits.test) for p, label in zip(s.paths, s.labels)
    }


def test_image_labels_split_and_conversion(cbis_dir):
    import cv2

    splits = get_dataset("cbis").load(cbis_dir)
    labels = all_images(splits)
    assert len(labels) == 32 and splits.classes == ("benign", "malignant")
    calc_p2 = "Calc-Training_P_00002_LEFT_CC"
    assert labels[calc_p2] == 1 and labels["Calc-Training_P_00002_LEFT_MLO"] == 0  # any malignant abnormality wins
    assert {Path(p).stem for p in splits.test.paths} == {k for k in labels if "Test" in k}  # the official split
    patient = lambda p: Path(p).stem.split("_P_")[1][:5]  # noqa: E731
    assert not {patient(p) for p in splits.train.paths} & {patient(p) for p in splits.val.paths}  # grouped by patient
    assert 4 <= len(splits.val.paths) <= 8
    left = cv2.imread(str(cbis_dir / "png16" / "Mass-Training_P_00001_LEFT_CC.png"), cv2.IMREAD_UNCHANGED)
    right = cv2.imread(str(cbis_dir / "png16" / "Mass-Training_P_00003_RIGHT_CC.png"), cv2.IMREAD_UNCHANGED)
    assert left.dtype == np.uint16 and left.shape == (16, 12)
    assert left[0, 0] < left[0, -1] and right[0, 0] > right[0, -1]  # right breasts flipped to face left
    assert "Mass-Training_P_00005_LEFT_CC" in labels  # found in TCIA's renamed folders


def test_benign_without_callback_counts_as_benign_or_is_dropped(cbis_dir):
    with open(cbis_dir / CSVS[("mass", "train")]) as f:
        bwc = {
            r["image file path"].split("/")[0] for r in csv.DictReader(f) if r["pathology"] == "BENIGN_WITHOUT_CALLBACK"
        }
    assert bwc
    kept = all_images(get_dataset("cbis").load(cbis_dir))
    dropped = all_images(get_dataset("cbis").load(cbis_dir, drop_benign_without_callback=True))
    assert all(kept[c] == 0 for c in bwc) and not bwc & set(dropped) and len(dropped) < len(kept)


def test_conversion_happens_once(cbis_dir):
    get_dataset("cbis").prepare(cbis_dir)  # why: under pytest-xdist no earlier test may have run in this worker
    png = cbis_dir / "png16" / "Mass-Training_P_00001_LEFT_CC.png"
    stamp = png.stat().st_mtime_ns
    get_dataset("cbis").prepare(cbis_dir)
    assert png.stat().st_mtime_ns == stamp


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"missing_column": "pathology"}, "mass_case_description_train_set.csv has no column 'pathology'"),
        ({"bad_path": "../../outside/000000.dcm"}, "points outside"),
        ({"corrupt_case": "Calc-Test_P_00014_LEFT_MLO"}, "Calc-Test_P_00014_LEFT_MLO.*cannot be read as a DICOM"),
    ],
)
def test_bad_input_is_named(tmp_path, kwargs, match):
    root = write_cbis(tmp_path / "cbis", **kwargs)
    with pytest.raises(DataError, match=match):
        get_dataset("cbis").prepare(root)
    assert not list(root.glob(".split-cbis-*.json"))


def test_a_cbis_trial_trains_with_bce_and_selects_by_val_auc(cbis_dir, tmp_path):
    p = PRESETS["cbis"]
    spec = GridSpec(
        (0,),
        ("adam",),
        1,
        1,
        p["trial"],
        p["optimizers"],
        {
            "data_dir": str(cbis_dir),
            "gpu_share": 0.0,
            "model": "small_cnn",
            "pretrained": False,
            "image_size": (16, 12),
            "epochs": 3,
            "batch_size": 4,
            "eval_batch_size": 8,
            "lr": 1e-3,
            "num_workers": 0,
        },
    )
    cfg = TrialConfig.from_dict(build_trials(spec)[0])
    out = []
    run_trial(cfg, lambda m, s: out.append(m), tmp_path, torch.device("cpu"))
    best = max(out, key=lambda r: (r["val_auc"], -r["epoch"]))
    assert out[-1]["final_epoch"] == best["epoch"] and out[-1]["final_metric"] == best["test_auc"]
    assert np.load(tmp_path / "predictions.npz")["probs"].shape == (8, 2)


def test_pretrained_weights_offline_get_one_line_naming_the_ways_out(cbis_dir, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # as on a machine with no internet, at once
    base = [
        sys.executable,
        *"sweeps/run.py --dataset cbis --data-dir".split(),
        str(cbis_dir),
        *"--gpus-per-trial 0 --cpus-per-trial 1 --storage-path".split(),
        str(tmp_path / "exp"),
    ]
    proc = subprocess.run(base, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "--no-pretrained" in proc.stderr and "--weights FILE" in proc.stderr
    import timm

    weights = tmp_path / "resnet34.pth"
    torch.save(timm.create_model("resnet34").state_dict(), weights)
    proc = subprocess.run(
        base + ["--weights", str(weights), "--dry-run"], cwd=REPO, capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode == 0 and f"weights = {weights}" in proc.stdout
    from sweeps.launch import check_pretrained

    check_pretrained({"pretrained": True, "model": "resnet34", "weights": str(weights)})  # loads, raises nothing
