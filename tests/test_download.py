"""SDNET2018's download on a loopback HTTP server: the nested archive is fetched, checked and
unpacked into the layout; a broken-off transfer resumes where it stopped; a corrupt archive and an
unreachable server are each named in one line."""
from __future__ import annotations

import io
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from datasets import DataError, get_dataset
from datasets import sdnet
from tests.test_image_folders import sdnet_tree


def nested_archive(tmp_path: Path) -> bytes:
    """The official shape: an outer zip with a ReadMe and SDNET2018.zip, which holds D/, P/, W/."""
    tree = sdnet_tree(tmp_path / "tree", n=4)
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        for path in sorted(tree.rglob("*.jpg")):
            z.write(path, "SDNET2018/" + path.relative_to(tree).as_posix())
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w") as z:
        z.writestr("DATA_Maguire_20180517_ALL/ReadMe.txt", "SDNET2018 fixture")
        z.writestr("DATA_Maguire_20180517_ALL/SDNET2018.zip", inner.getvalue())
    return outer.getvalue()


class Server:
    """Serves one body; honours Range; can break off the first response after `cut` bytes."""

    def __init__(self, body: bytes, cut: int | None = None) -> None:
        self.body, self.cut, self.ranges = body, cut, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers["Range"] else 0
                server.ranges.append(self.headers["Range"])
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(server.body) - start))
                self.end_headers()
                data = server.body[start:]
                if server.cut is not None:
                    data, server.cut = data[:server.cut], None  # announce everything, send part, hang up
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/viewcontent"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


@pytest.fixture
def archive(tmp_path):
    return nested_archive(tmp_path)


def test_empty_directory_is_downloaded_checked_and_unpacked(tmp_path, archive, monkeypatch):
    server = Server(archive)
    monkeypatch.setattr(sdnet, "ARCHIVE_URL", server.url)
    try:
        get_dataset("sdnet").prepare(tmp_path / "data")
    finally:
        server.close()
    splits = get_dataset("sdnet").load(tmp_path / "data")
    assert len(splits.train.paths + splits.val.paths + splits.test.paths) == 24
    kept = sorted(p.name for p in (tmp_path / "data").iterdir() if not p.name.startswith(".split"))
    assert kept == ["D", "DATA_Maguire_20180517_ALL.zip", "P", "W"]


def test_a_broken_off_download_resumes_where_it_stopped(tmp_path, archive, monkeypatch):
    server = Server(archive, cut=len(archive) // 3)
    monkeypatch.setattr(sdnet, "ARCHIVE_URL", server.url)
    try:
        with pytest.raises(DataError, match="run again to resume|download failed"):
            get_dataset("sdnet").prepare(tmp_path / "data")
        part = tmp_path / "data" / (sdnet.ARCHIVE + ".part")
        assert part.stat().st_size == len(archive) // 3
        get_dataset("sdnet").prepare(tmp_path / "data")  # the same command again
    finally:
        server.close()
    assert server.ranges == [None, f"bytes={len(archive) // 3}-"]
    assert (tmp_path / "data" / sdnet.ARCHIVE).read_bytes() == archive and not part.exists()


def test_a_corrupt_archive_is_named(tmp_path, archive, monkeypatch):
    damaged = bytearray(archive)
    damaged[len(damaged) // 2] ^= 0xFF  # one flipped byte inside the images
    server = Server(bytes(damaged))
    monkeypatch.setattr(sdnet, "ARCHIVE_URL", server.url)
    try:
        with pytest.raises(DataError, match="CRC|not a readable zip"):
            get_dataset("sdnet").prepare(tmp_path / "data")
    finally:
        server.close()


def test_offline_names_the_url_and_the_layout(tmp_path, monkeypatch):
    monkeypatch.setattr(sdnet, "ARCHIVE_URL", "http://127.0.0.1:9/viewcontent")  # nothing listens there
    with pytest.raises(DataError) as info:
        get_dataset("sdnet").prepare(tmp_path / "new" / "data")
    message = str(info.value)
    assert "127.0.0.1:9/viewcontent" in message and "D/CD, D/UD" in message and sdnet.URL in message
    assert "\n" not in message
    assert list(tmp_path.iterdir()) == []  # neither data/ nor the new/ made for it is left behind
