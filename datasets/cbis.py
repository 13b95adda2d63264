"""CBIS-DDSM mammography: the four official CSVs and their DICOM images -> image-level labels.

An image is malignant when any of its abnormalities is MALIGNANT; BENIGN_WITHOUT_CALLBACK counts as
benign unless `drop_benign_without_callback`. The official train/test split is kept; validation is
a seeded 20% of the training images, stratified by label and grouped by patient (no patient on both
sides). The DICOMs are converted once to 16-bit PNGs beside the data (png16/), right breasts
flipped to face left, with a progress bar.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from datasets.image_folder import FileSplit, FileSplits, write_json_atomically
from datasets.registry import DataError
from datasets.threads import in_threads

URL = "https://www.cancerimagingarchive.net/collection/cbis-ddsm/"
CSVS = {
    ("mass", "train"): "mass_case_description_train_set.csv",
    ("mass", "test"): "mass_case_description_test_set.csv",
    ("calc", "train"): "calc_case_description_train_set.csv",
    ("calc", "test"): "calc_case_description_test_set.csv",
}
COLUMNS = ("patient_id", "left or right breast", "pathology", "image file path")
PATHOLOGIES = {"MALIGNANT": 1, "BENIGN": 0, "BENIGN_WITHOUT_CALLBACK": 0}
SPLIT_SEED = 0  # why: the study varies the training seed, never the split
PNG_DIR = "png16"


def read_csvs(data_dir: Path) -> pd.DataFrame:
    """All four CSVs, one row per abnormality, with the columns this reader needs checked."""
    frames = []
    for (_kind, part), name in CSVS.items():
        path = data_dir / name
        if not path.is_file():
            raise DataError(
                f"cbis: {path} is missing; the four official CSVs ({', '.join(CSVS.values())}) "
                f"and the DICOM folders from {URL} belong in {data_dir}"
            )
        frame = pd.read_csv(path, dtype=str)
        missing = [c for c in COLUMNS if c not in frame.columns]
        if missing:
            raise DataError(f"cbis: {path} has no column {missing[0]!r}")
        unknown = sorted(set(frame["pathology"].str.strip()) - set(PATHOLOGIES))
        if unknown:
            raise DataError(f"cbis: {path}: unknown pathology {unknown[0]!r}")
        frames.append(frame.assign(part=part, csv=str(path)))
    return pd.concat(frames, ignore_index=True)


def dicom_path(data_dir: Path, relative: str, csv: str) -> Path:
    """The DICOM of a CSV row: the listed path if it exists, else the one DICOM in its case folder
    (TCIA's downloads rename the inner folders). A path leaving the data directory is refused."""
    relative = relative.strip()
    root = data_dir.resolve()
    for base in (root, root / "CBIS-DDSM"):
        candidate = (base / relative).resolve()
        if not candidate.is_relative_to(root):
            raise DataError(f"cbis: {csv}: image path {relative!r} points outside {data_dir}")
        if candidate.is_file():
            return candidate
        case = (base / Path(relative).parts[0]).resolve()
        if case.is_dir():
            found = sorted(case.rglob("*.dcm"))
            if len(found) == 1:
                return found[0]
            raise DataError(f"cbis: {csv}: {relative} not found, and {case} holds {len(found)} DICOM files, not one")
    raise DataError(f"cbis: {csv}: {relative} not found under {data_dir}")


def images(data_dir: Path, drop_benign_without_callback: bool) -> pd.DataFrame:
    """One row per image: its case folder, patient, side, official part, DICOM and label."""
    rows = read_csvs(data_dir)
    rows["case"] = rows["image file path"].str.strip().map(lambda p: Path(p).parts[0])
    rows["malignant"] = rows["pathology"].str.strip().map(PATHOLOGIES)
    rows["bwc"] = rows["pathology"].str.strip() == "BENIGN_WITHOUT_CALLBACK"
    table = (
        rows.groupby("case", sort=True)
        .agg(
            patient=("patient_id", "first"),
            side=("left or right breast", "first"),
            part=("part", "first"),
            label=("malignant", "max"),
            bwc=("bwc", "any"),
            relative=("image file path", "first"),
            csv=("csv", "first"),
        )
        .reset_index()
    )
    if drop_benign_without_callback:
        table = table[~((table["label"] == 0) & table["bwc"])]
    table["dicom"] = [str(dicom_path(data_dir, r, c)) for r, c in zip(table["relative"], table["csv"])]
    return table


def convert(table: pd.DataFrame, data_dir: Path) -> list[str]:
    """DICOM -> 16-bit PNG, once (existing PNGs are kept); right breasts flipped to face left. In
    threads: the real set has thousands of full-size images, each read, scaled and compressed."""
    from tqdm import tqdm

    out_dir = data_dir / PNG_DIR
    out_dir.mkdir(exist_ok=True)
    pngs = [str(out_dir / f"{case}.png") for case in table["case"]]
    todo = [(d, p, s) for d, p, s in zip(table["dicom"], pngs, table["side"]) if not Path(p).is_file()]
    # why threads: numpy's scaling and OpenCV's PNG writer release the GIL (two threads converted
    # 14 full-size images 2.1x faster than one); at most 8, since each holds a float64 copy of its image
    done = in_threads(lambda job: convert_one(*job), todo)
    for _ in tqdm(done, total=len(todo), desc="cbis: DICOM -> 16-bit PNG", unit="image", disable=not todo):
        pass
    return pngs


def convert_one(dicom: str, png: str, side: str) -> None:
    """One DICOM to its PNG, scaled to the full 16-bit range; a file that cannot be read is one line naming it."""
    import cv2
    import pydicom

    try:
        ds = pydicom.dcmread(dicom)
        pixels = ds.pixel_array.astype(np.float64)
    except Exception as exc:  # pydicom raises many types for broken files
        raise DataError(f"cbis: {dicom}: cannot be read as a DICOM image ({type(exc).__name__}: {exc})") from None
    if getattr(ds, "PhotometricInterpretation", "") == "MONOCHROME1":
        pixels = pixels.max() - pixels  # why: MONOCHROME1 stores white as 0
    scaled = np.rint((pixels - pixels.min()) / max(pixels.max() - pixels.min(), 1) * 65535).astype(np.uint16)
    if str(side).strip().upper() == "RIGHT":
        scaled = scaled[:, ::-1]
    tmp = png[:-4] + ".tmp.png"
    cv2.imwrite(tmp, np.ascontiguousarray(scaled))
    Path(tmp).replace(png)  # why: an interrupted conversion never leaves half a PNG in the cache


def make_splits(table: pd.DataFrame, pngs: list[str], classes: tuple[str, ...]) -> FileSplits:
    from sklearn.model_selection import StratifiedGroupKFold

    table = table.assign(png=pngs)
    trainval, test = table[table["part"] == "train"], table[table["part"] == "test"]
    folds = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=SPLIT_SEED)
    train_idx, val_idx = next(folds.split(trainval, trainval["label"], groups=trainval["patient"]))

    def split(frame: pd.DataFrame) -> FileSplit:
        return FileSplit(tuple(frame["png"]), frame["label"].to_numpy(dtype=np.int64))

    return FileSplits(split(trainval.iloc[train_idx]), split(trainval.iloc[val_idx]), split(test), classes, in_chans=3)


def reader_options(config: Mapping[str, object]) -> dict:
    """What a trial's settings choose here: whether BENIGN_WITHOUT_CALLBACK images are dropped."""
    return {"drop_benign_without_callback": bool(config["drop_benign_without_callback"])}


def prepare(data_dir: Path, drop_benign_without_callback: bool = False) -> None:
    """Check the CSVs and every image path, and convert the DICOMs once (before any trial starts)."""
    load(data_dir, drop_benign_without_callback)


def load(data_dir: Path, drop_benign_without_callback: bool = False) -> FileSplits:
    key = hashlib.sha256(json.dumps([drop_benign_without_callback, SPLIT_SEED]).encode()).hexdigest()[:10]
    manifest = data_dir / f".split-cbis-{key}.json"
    if manifest.is_file():
        data = json.loads(manifest.read_text())
        table, pngs = pd.DataFrame(data["table"]), data["pngs"]
    else:
        table = images(data_dir, drop_benign_without_callback)
        if table["label"].nunique() < 2:
            raise DataError(
                f"cbis: {data_dir}: the CSVs list only {'malignant' if table['label'].iloc[0] else 'benign'} images"
            )
        pngs = convert(table, data_dir)
        write_json_atomically(manifest, {"table": table.to_dict("list"), "pngs": pngs})
    return make_splits(table, pngs, ("benign", "malignant"))
