"""Fetching an archive over HTTP that survives a dropped connection: the bytes go to FILE.part, and
a second attempt asks the server for the rest (an HTTP Range request) instead of starting over.

A data set of half a gigabyte on a flaky link is otherwise downloaded again from zero each time.
"""
from __future__ import annotations

import http.client
import zipfile
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from datasets.registry import DataError

CHUNK = 1 << 20  # bytes per read
USER_AGENT = "cuda-randomness-study (python urllib)"  # why: some repositories refuse urllib's default


def fetch(url: str, dest: Path, *, timeout: float = 20.0) -> Path:
    """Download `url` to `dest` with a progress bar, continuing a partial `dest`.part if one is
    there. Raises DataError (one line, naming the URL) if the server cannot be reached or the
    transfer ends short; the partial file stays, so that the next attempt resumes it."""
    from tqdm import tqdm

    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, **({"Range": f"bytes={have}-"} if have else {})}
    try:
        with urlopen(Request(url, headers=headers), timeout=timeout) as response:
            if have and response.status != 206:  # the server ignored the range: start over
                have = 0
            length = response.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            with open(part, "ab" if have else "wb") as out, \
                    tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=f"downloading {dest.name}") as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
    except HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the partial file is whole
            part.replace(dest)
            return dest
        raise DataError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        have = part.stat().st_size if part.exists() else 0
        if not have:
            part.unlink(missing_ok=True)
        kept = f"; {part} keeps {have:,} bytes for the next attempt" if have else ""
        raise DataError(f"{url}: download failed ({reason}){kept}") from None
    if total is not None and part.stat().st_size != total:
        raise DataError(f"{url}: the transfer ended at {part.stat().st_size:,} of {total:,} bytes; run again to resume it")
    part.replace(dest)
    return dest


def check_zip(path: Path) -> None:
    """Every member's CRC-32 against the archive's own record: a corrupt or truncated download
    is named here rather than found missing images later."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path}: not a readable zip archive ({exc}); delete it and download again") from None
    if bad is not None:
        raise DataError(f"{path}: member {bad} fails its CRC check; delete the archive and download again")

