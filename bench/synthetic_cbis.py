"""A synthetic CBIS-DDSM tree at the real images' size, for timing the cbis preset on a GPU machine
(bench/packing.py, bench/real_path.py): the four official CSVs and one full-size DICOM per image,
half of them malignant, mass and calc cases alternating, one image per patient.

The pixels are a smooth bright blob on a dark background plus noise, so that the 16-bit PNGs the
reader converts them to compress and decode at a cost nearer a mammogram's than a flat ramp's.
Timings from it are per image; scale them by the real set's counts (bench/RESULTS.md).

    python bench/synthetic_cbis.py /tmp/cbis --train 120 --test 24
"""

from __future__ import annotations

import argparse
import csv
import sys
from multiprocessing import Pool
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from datasets.cbis import CSVS  # noqa: E402
from tests.test_cbis import HEADER, write_dicom  # noqa: E402 (the tests' DICOM writer, at full size here)

SIZE = (2944, 1920)  # the cbis preset's image_size: (height, width)


def mammogram(seed: int, size: tuple[int, int] = SIZE) -> np.ndarray:
    """uint16: a bright elliptical blob (the breast) on black, with noise inside it."""
    rng = np.random.default_rng(seed)
    h, w = size
    y, x = np.ogrid[:h, :w]
    blob = np.exp(-(((y - h / 2) / (0.45 * h)) ** 2 + (x / (0.7 * w)) ** 2) * 2.0)
    noise = rng.normal(0.0, 1500.0, size)
    return np.clip(blob * 40000 + (blob > 0.1) * noise, 0, 65535).astype(np.uint16)


def _write(item: tuple[Path, int]) -> None:
    path, seed = item
    write_dicom(path, pixels=mammogram(seed))


def synthetic_cbis(root: Path, train: int, test: int) -> Path:
    """root with the four CSVs and train + test DICOMs (kept if already there)."""
    rows: dict[tuple[str, str], list[list[str]]] = {key: [] for key in CSVS}
    todo = []
    for p in range(train + test):
        part = "train" if p < train else "test"
        kind = "mass" if p % 2 else "calc"
        case = f"{kind.capitalize()}-{'Training' if part == 'train' else 'Test'}_P_{p:05d}_LEFT_CC"
        relative = f"{case}/1.3.6.1.4.1.9590.{p}/1.3.6.1.4.1.9590.{p}.1/000000.dcm"
        pathology = "MALIGNANT" if (p // 2) % 2 else "BENIGN"
        values = {
            "patient_id": f"P_{p:05d}",
            "left or right breast": "LEFT",
            "image view": "CC",
            "abnormality id": "1",
            "abnormality type": kind,
            "pathology": pathology,
            "image file path": relative,
        }
        rows[(kind, part)].append([values.get(h, "") for h in HEADER])
        if not (root / relative).is_file():
            todo.append((root / relative, p))
    with Pool() as pool:
        pool.map(_write, todo)
    for key, name in CSVS.items():
        with open(root / name, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(HEADER)
            writer.writerows(rows[key])
    return root


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("--train", type=int, default=120, help="training images (a fifth become validation)")
    parser.add_argument("--test", type=int, default=24)
    args = parser.parse_args()
    print(synthetic_cbis(args.root, args.train, args.test))


if __name__ == "__main__":
    main()
