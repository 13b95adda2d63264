"""Fetching an archive over HTTP that survives a dropped connection: the bytes go to FILE.part, and
a second attempt asks the server for the rest (an HTTP Range request) instead of starting over.

A data set of half a gigabyte on a flaky link is otherwise downloaded again from zero each time.
Repositories behind a bot check answer a bare request for the file with 403 or an HTML page; what
they let through is a visit to the data set's landing page first, its cookies kept and sent with
the file request (and every resumed range), with the landing page as Referer.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import http.cookiejar
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import HTTPCookieProcessor, OpenerDirector, Request, build_opener

from datasets.registry import DataError

CHUNK = 1 << 20  # bytes per read
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"  # why: bot checks turn away others
)
PAGE_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
FILE_ACCEPT = "application/zip,application/octet-stream;q=0.9,*/*;q=0.8"


@contextlib.contextmanager
def leaves_no_empty_dirs(path: Path) -> Iterator[None]:
    """Folders made for `path` inside the block are removed again if the block fails and leaves
    them empty: a failed first download leaves nothing behind."""
    created = [d for d in (path, *path.parents) if not d.exists()]  # innermost first
    try:
        yield
    except BaseException:
        for directory in created:
            try:
                directory.rmdir()
            except OSError:  # not empty (a .part to resume), or already gone
                break
        raise


class Refused(DataError):
    """The server answered, but not with the file: a bot check, a rate limit, or a web page."""


def _session(landing: str | None, timeout: float) -> tuple[OpenerDirector, dict[str, str]]:
    """An opener that keeps cookies, warmed up by visiting `landing`; the headers for the file."""
    opener = build_opener(HTTPCookieProcessor(http.cookiejar.CookieJar()))
    headers = {"User-Agent": USER_AGENT, "Accept": FILE_ACCEPT, "Accept-Language": "en-US,en;q=0.5"}
    if landing:
        try:
            with opener.open(Request(landing, headers={**headers, "Accept": PAGE_ACCEPT}), timeout=timeout) as page:
                page.read()
        except HTTPError as exc:
            if exc.code in (403, 429):
                raise Refused(f"{landing}: HTTP {exc.code} {exc.reason} on the landing page") from None
            raise DataError(f"{landing}: HTTP {exc.code} {exc.reason}") from None
        headers["Referer"] = landing
    return opener, headers


def _is_page(response: http.client.HTTPResponse, first: bytes) -> bool:
    """A web page where a file should be: by its type, or by how it starts."""
    kind = (response.headers.get("Content-Type") or "").lower()
    head = first[:64].lstrip().lower()
    return kind.startswith(("text/html", "application/xhtml")) or head.startswith((b"<!doctype html", b"<html"))


def fetch(url: str, dest: Path, *, landing: str | None = None, timeout: float = 20.0) -> Path:
    """Download `url` to `dest` with a progress bar, continuing a partial `dest`.part if one is
    there; with `landing`, visit that page first and send its cookies and it as Referer.

    Raises Refused for 403, 429 or an HTML page instead of the file, and DataError (one line,
    naming the URL) if the server cannot be reached or the transfer ends short; a partial file
    stays, so that the next attempt resumes it.
    """
    from tqdm import tqdm

    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    total = None
    try:
        opener, headers = _session(landing, timeout)
        with opener.open(
            Request(url, headers={**headers, **({"Range": f"bytes={have}-"} if have else {})}), timeout=timeout
        ) as response:
            first = response.read(CHUNK)
            if _is_page(response, first):
                raise Refused(f"{url}: the server sent a web page, not the file (a bot check or a moved link)")
            if have and response.status != 206:  # the server ignored the range: start over
                have = 0
            length = response.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            with (
                open(part, "ab" if have else "wb") as out,
                tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=f"downloading {dest.name}") as bar,
            ):
                chunk = first
                while chunk:
                    out.write(chunk)
                    bar.update(len(chunk))
                    chunk = response.read(CHUNK)
    except HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the partial file is whole
            part.replace(dest)
            return dest
        if exc.code in (403, 429):
            raise Refused(f"{url}: HTTP {exc.code} {exc.reason}") from None
        raise DataError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        have = part.stat().st_size if part.exists() else 0
        if not have:
            part.unlink(missing_ok=True)
        kept = f"; {part} keeps {have:,} bytes for the next attempt" if have else ""
        raise DataError(f"{url}: download failed ({reason}){kept}") from None
    if total is not None and part.stat().st_size != total:
        raise DataError(
            f"{url}: the transfer ended at {part.stat().st_size:,} of {total:,} bytes; run again to resume it"
        )
    part.replace(dest)
    return dest


def md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(CHUNK * 8):
            digest.update(block)
    return digest.hexdigest()


def check_zip(path: Path) -> None:
    """Every member's CRC-32 against the archive's own record: a corrupt or truncated download
    is named here rather than found missing images later. The file is kept either way."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path}: not a readable zip archive ({exc}); delete it and download again") from None
    if bad is not None:
        raise DataError(f"{path}: member {bad} fails its CRC check; delete the archive and download again")
