"""SDNET2018's download on a loopback HTTP server: the nested archive is fetched, checked and
unpacked into the layout; a broken-off transfer resumes where it stopped; a corrupt archive and an
unreachable server are each named in one line."""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from datasets import DataError, download, get_dataset, sdnet
from tests.conftest import sdnet_tree


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
    """Imitates the repository: a landing page that sets a cookie, and the archive, which is 403
    without that cookie. Honours Range unless told not to; can break off the first response after
    `cut` bytes, answer with an HTML page or 429 instead of the file."""

    def __init__(
        self,
        body: bytes,
        cut: int | None = None,
        ignore_range: bool = False,
        page_instead: bool = False,
        status: int | None = None,
    ) -> None:
        self.body, self.cut, self.requests = body, cut, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                if self.path == "/all_datasets/48/":
                    self.send_response(200)
                    self.send_header("Set-Cookie", "bot-check=passed; Path=/")
                    self.send_header("Content-Type", "text/html")
                    self.end_headers()
                    self.wfile.write(b"<html>SDNET2018</html>")
                    return
                server.requests.append({k: self.headers[k] for k in ("Range", "Cookie", "Referer")})
                if self.headers["Cookie"] != "bot-check=passed" or status:
                    self.send_error(status or 403)
                    return
                if page_instead:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.end_headers()
                    self.wfile.write(b"<!DOCTYPE html><html>Are you a robot?</html>")
                    return
                ranged = self.headers["Range"] and not ignore_range
                start = int(self.headers["Range"].split("=")[1].rstrip("-")) if ranged else 0
                self.send_response(206 if start else 200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(server.body) - start))
                self.end_headers()
                data = server.body[start:]
                if server.cut is not None:
                    data, server.cut = data[: server.cut], None  # announce everything, send part, hang up
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.landing = f"http://127.0.0.1:{self.httpd.server_port}/all_datasets/48/"
        self.url = (
            f"http://127.0.0.1:{self.httpd.server_port}/context/all_datasets/article/1047/type/native/viewcontent"
        )
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


@pytest.fixture
def serve(monkeypatch, archive):
    """Start a Server and point sdnet at it, the fixture archive's MD5 as the published one."""
    servers = []

    def start(body: bytes | None = None, **options) -> Server:
        server = Server(archive if body is None else body, **options)
        monkeypatch.setattr(sdnet, "URL", server.landing)
        monkeypatch.setattr(sdnet, "ARCHIVE_URL", server.url)
        servers.append(server)
        return server

    monkeypatch.setattr(sdnet, "ARCHIVE_MD5", hashlib.md5(archive).hexdigest())
    yield start
    for server in servers:
        server.close()


@pytest.fixture
def archive(tmp_path):
    return nested_archive(tmp_path)


def test_empty_directory_is_downloaded_through_the_landing_page_checked_and_unpacked(tmp_path, serve, capsys):
    server = serve()
    get_dataset("sdnet").prepare(tmp_path / "data")
    splits = get_dataset("sdnet").load(tmp_path / "data")
    assert len(splits.train.paths + splits.val.paths + splits.test.paths) == 24
    kept = sorted(p.name for p in (tmp_path / "data").iterdir() if not p.name.startswith(".split"))
    assert kept == ["D", "DATA_Maguire_20180517_ALL.zip", "P", "W"]
    assert server.requests == [{"Range": None, "Cookie": "bot-check=passed", "Referer": server.landing}]
    assert "warning" not in capsys.readouterr().err  # the MD5 matched


def test_a_bare_request_gets_403_and_the_session_gets_the_file(tmp_path, serve):
    server = serve()
    with pytest.raises(download.Refused, match="HTTP 403"):
        download.fetch(server.url, tmp_path / "bare.zip")
    download.fetch(server.url, tmp_path / "session.zip", landing=server.landing)
    assert (tmp_path / "session.zip").read_bytes() == server.body and not (tmp_path / "bare.zip.part").exists()


def test_a_broken_off_download_resumes_with_the_cookie(tmp_path, archive, serve):
    server = serve(cut=len(archive) // 3)
    with pytest.raises(DataError, match=r"the transfer ended at 10,556 of 31,670 bytes; run again to resume it"):
        get_dataset("sdnet").prepare(tmp_path / "data")
    part = tmp_path / "data" / (sdnet.ARCHIVE + ".part")
    assert part.stat().st_size == len(archive) // 3 and not (tmp_path / "data" / sdnet.ARCHIVE).exists()
    get_dataset("sdnet").prepare(tmp_path / "data")  # the same command again
    assert [r["Range"] for r in server.requests] == [None, f"bytes={len(archive) // 3}-"]
    assert all(r["Cookie"] == "bot-check=passed" and r["Referer"] == server.landing for r in server.requests)
    assert (tmp_path / "data" / sdnet.ARCHIVE).read_bytes() == archive and not part.exists()


@pytest.mark.parametrize("refusal", [{"page_instead": True}, {"status": 429}, {"status": 403}])
def test_a_refusal_is_one_line_saying_how_to_download_by_hand(tmp_path, serve, refusal):
    server = serve(**refusal)
    with pytest.raises(DataError) as info:
        get_dataset("sdnet").prepare(tmp_path / "new" / "data")
    message = str(info.value)
    assert "\n" not in message and "refused the download" in message and server.landing in message
    assert f"download {sdnet.ARCHIVE} (about 500 MB) by hand" in message and str(tmp_path / "new" / "data") in message
    assert not (tmp_path / "new").exists()  # no .part holding a web page, no empty folders


def test_a_server_that_ignores_range_restarts_the_part_file(tmp_path, archive, serve):
    server = serve(ignore_range=True)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / (sdnet.ARCHIVE + ".part")).write_bytes(b"stale bytes of another attempt")
    get_dataset("sdnet").prepare(tmp_path / "data")
    assert server.requests[0]["Range"] == "bytes=30-"
    assert (tmp_path / "data" / sdnet.ARCHIVE).read_bytes() == archive


def test_an_md5_mismatch_with_sound_members_warns_once_and_goes_on(tmp_path, archive, serve, monkeypatch, capsys):
    serve()
    monkeypatch.setattr(sdnet, "ARCHIVE_MD5", "0" * 32)
    get_dataset("sdnet").prepare(tmp_path / "data")
    warning = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning")]
    assert len(warning) == 1 and hashlib.md5(archive).hexdigest() in warning[0] and "0" * 32 in warning[0]
    assert (tmp_path / "data" / "D").is_dir()


def test_an_archive_placed_by_hand_is_checked_and_unpacked(tmp_path, archive, monkeypatch):
    monkeypatch.setattr(sdnet, "ARCHIVE_URL", "http://127.0.0.1:9/viewcontent")  # offline: nothing is fetched
    monkeypatch.setattr(sdnet, "ARCHIVE_MD5", hashlib.md5(archive).hexdigest())
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / sdnet.ARCHIVE).write_bytes(archive)
    get_dataset("sdnet").prepare(tmp_path / "data")
    assert {"D", "P", "W"} <= {p.name for p in (tmp_path / "data").iterdir()}


def test_a_corrupt_archive_names_its_member_and_is_kept(tmp_path, archive, monkeypatch):
    monkeypatch.setattr(sdnet, "ARCHIVE_URL", "http://127.0.0.1:9/viewcontent")
    damaged = bytearray(archive)
    damaged[len(damaged) // 2] ^= 0xFF  # one flipped byte inside the nested archive of images
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / sdnet.ARCHIVE).write_bytes(bytes(damaged))
    with pytest.raises(DataError, match="member DATA_Maguire_20180517_ALL/SDNET2018.zip fails its CRC check"):
        get_dataset("sdnet").prepare(tmp_path / "data")
    assert (tmp_path / "data" / sdnet.ARCHIVE).read_bytes() == bytes(damaged)
    assert not (tmp_path / "data" / "D").exists()


def test_offline_names_the_url_and_the_layout(tmp_path, monkeypatch):
    monkeypatch.setattr(sdnet, "ARCHIVE_URL", "http://127.0.0.1:9/viewcontent")  # nothing listens there
    with pytest.raises(DataError) as info:
        get_dataset("sdnet").prepare(tmp_path / "new" / "data")
    message = str(info.value)
    assert "127.0.0.1:9/viewcontent" in message and "D/CD, D/UD" in message and sdnet.URL in message
    assert "\n" not in message
    assert list(tmp_path.iterdir()) == []  # neither data/ nor the new/ made for it is left behind
