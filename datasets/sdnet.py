"""SDNET2018 concrete cracks: D/CD, D/UD, P/CP, P/UP, W/CW, W/UW folders of 256x256 JPEGs.

Folders whose name starts with C hold cracked surfaces, the positive class (label 1); any subset of
the six works as long as both classes are there.
"""
from __future__ import annotations

from pathlib import Path

from datasets.image_folder import FileSplits, load_or_make
from datasets.registry import DataError

URL = "https://digitalcommons.usu.edu/all_datasets/48/"
LAYOUT = {"D": ("CD", "UD"), "P": ("CP", "UP"), "W": ("CW", "UW")}  # bridge decks, pavements, walls
SPLIT = {"test": 0.1, "val": 0.2, "seed": 0}  # the reference study's 90/10 then 80/20, seeded


def class_dirs(data_dir: Path) -> dict[str, list[str]]:
    present = [f"{group}/{sub}" for group, subs in LAYOUT.items() for sub in subs if (data_dir / group / sub).is_dir()]
    cracked = [p for p in present if p.split("/")[1].startswith("C")]
    uncracked = [p for p in present if not p.split("/")[1].startswith("C")]
    if not data_dir.is_dir() or not present:
        raise DataError(f"sdnet: {data_dir} has none of D/CD, D/UD, P/CP, P/UP, W/CW, W/UW; download SDNET2018 "
                        f"from {URL} and unpack it there")
    if not cracked or not uncracked:
        raise DataError(f"sdnet: {data_dir} has only {'cracked' if cracked else 'uncracked'} folders ({', '.join(present)}); "
                        "both classes are needed")
    return {"uncracked": uncracked, "cracked": cracked}


def prepare(data_dir: Path) -> None:
    load(data_dir)


def load(data_dir: Path) -> FileSplits:
    return load_or_make(data_dir, class_dirs(data_dir), **SPLIT)
