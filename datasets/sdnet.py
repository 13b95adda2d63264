"""SDNET2018 concrete cracks: D/CD, D/UD, P/CP, P/UP, W/CW, W/UW folders of 256x256 JPEGs.

Folders whose name starts with C hold cracked surfaces, the positive class (label 1); any subset of
the six works as long as both classes are there.
"""

from __future__ import annotations

import shutil
import sys
import zipfile
from pathlib import Path

from datasets.download import Refused, check_zip, fetch, leaves_no_empty_dirs, md5
from datasets.image_folder import FileSplits, load_or_make
from datasets.registry import DataError

URL = "https://digitalcommons.usu.edu/all_datasets/48/"  # the data set's page
ARCHIVE_URL = "https://digitalcommons.usu.edu/context/all_datasets/article/1047/type/native/viewcontent"
ARCHIVE = "DATA_Maguire_20180517_ALL.zip"  # about 500 MB: a ReadMe and SDNET2018.zip, which holds the images
# why: published by another project that downloads this archive; we could not confirm it from here,
# so a mismatch whose members all pass their CRCs only warns (the publisher may have re-packed it)
ARCHIVE_MD5 = "677411e784f194422c90f52d9ed0d7c6"
LAYOUT = {"D": ("CD", "UD"), "P": ("CP", "UP"), "W": ("CW", "UW")}  # bridge decks, pavements, walls
SPLIT = {"test": 0.1, "val": 0.2, "seed": 0}  # the reference study's 90/10 then 80/20, seeded


def class_dirs(data_dir: Path) -> dict[str, list[str]]:
    present = [f"{group}/{sub}" for group, subs in LAYOUT.items() for sub in subs if (data_dir / group / sub).is_dir()]
    cracked = [p for p in present if p.split("/")[1].startswith("C")]
    uncracked = [p for p in present if not p.split("/")[1].startswith("C")]
    if not data_dir.is_dir() or not present:
        raise DataError(
            f"sdnet: {data_dir} has none of D/CD, D/UD, P/CP, P/UP, W/CW, W/UW; download SDNET2018 "
            f"from {URL} and unpack it there"
        )
    if not cracked or not uncracked:
        raise DataError(
            f"sdnet: {data_dir} has only {'cracked' if cracked else 'uncracked'} folders ({', '.join(present)}); "
            "both classes are needed"
        )
    return {"uncracked": uncracked, "cracked": cracked}


def prepare(data_dir: Path) -> None:
    """Download and unpack the official archive into an empty (or missing) data directory, then
    read the layout and split it once."""
    if _is_empty(data_dir):
        download(data_dir)
    load(data_dir, verify_files=True)


def _is_empty(data_dir: Path) -> bool:
    """Nothing there yet but, perhaps, this module's own download in progress."""
    return not data_dir.is_dir() or all(p.name in (ARCHIVE, ARCHIVE + ".part") for p in data_dir.iterdir())


def download(data_dir: Path) -> None:
    """Fetch (resuming a partial download) through the landing page's session, check every CRC
    and the MD5, and unpack the images so that D/, P/ and W/ sit in `data_dir`. An archive put
    there by hand goes through the same checks. The archive is kept beside the images."""
    archive = data_dir / ARCHIVE
    with leaves_no_empty_dirs(data_dir):
        data_dir.mkdir(parents=True, exist_ok=True)
        if not archive.exists():
            try:
                fetch(ARCHIVE_URL, archive, landing=URL)
            except DataError as exc:
                by_hand = (
                    f"download {ARCHIVE} (about 500 MB) by hand from {URL}, put it in {data_dir} and run the same "
                    "command again: it is checked and unpacked"
                )
                if isinstance(exc, Refused):
                    raise DataError(f"sdnet: the repository refused the download ({exc}); {by_hand}") from None
                raise DataError(
                    f"sdnet: {data_dir} has no images yet and {exc}; or {by_hand}, or unpack SDNET2018 there as "
                    "D/CD, D/UD, P/CP, P/UP, W/CW, W/UW"
                ) from None
    check_zip(archive)
    digest = md5(archive)
    if digest != ARCHIVE_MD5:  # every member passed its CRC above, so the content is intact
        print(
            f"warning: sdnet: {archive} has MD5 {digest}, not the published {ARCHIVE_MD5}; every member passes its "
            "CRC check, so it is unpacked (the publisher may have re-packed the archive)",
            file=sys.stderr,
        )
    staging = data_dir / ".unpacking"
    shutil.rmtree(staging, ignore_errors=True)
    with zipfile.ZipFile(archive) as outer:
        outer.extractall(staging)
    for inner in sorted(staging.rglob("*.zip")):  # the images come zipped inside the archive
        check_zip(inner)
        with zipfile.ZipFile(inner) as images:
            images.extractall(inner.parent)
        inner.unlink()
    roots = [
        d.parent for d in staging.rglob("D") if d.is_dir() and (d.parent / "P").is_dir() and (d.parent / "W").is_dir()
    ]
    if not roots:
        raise DataError(
            f"sdnet: {archive} holds no D/, P/ and W/ folders; is it SDNET2018? Delete it to download again"
        )
    for group in LAYOUT:
        shutil.move(str(roots[0] / group), str(data_dir / group))
    shutil.rmtree(staging)


def load(data_dir: Path, verify_files: bool = False) -> FileSplits:
    """The split; verify_files: check every file against the manifest (the driver's prepare does)."""
    return load_or_make(data_dir, class_dirs(data_dir), **SPLIT, verify_files=verify_files)
