"""Resumable downloads against a local HTTP server on 127.0.0.1 (no network needed)."""
import hashlib
import http.server
import io
import os
import socket
import threading
import zipfile

import pytest

from gradscope.cli import main
from gradscope.data.download import download_coco, download_file, extract_zip
from gradscope.errors import DataError

DATA = bytes(range(256)) * 40  # 10 KiB


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves server.files[path]; honours Range unless server.ignore_range; stops after
    server.cut_after bytes of a body when set."""

    def do_GET(self):
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        body = srv.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and not srv.ignore_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        payload = body[start:]
        if srv.cut_after is not None:
            payload = payload[:srv.cut_after]
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.files, srv.requests, srv.ignore_range, srv.cut_after = {"/data.bin": DATA}, [], False, None
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


def sha(b):
    return hashlib.sha256(b).hexdigest()


def test_fresh_download_records_checksum(server, tmp_path):
    seen = []
    result = download_file(server.url + "/data.bin", tmp_path / "d" / "data.bin",
                           progress=lambda d, t: seen.append((d, t)))
    assert (tmp_path / "d" / "data.bin").read_bytes() == DATA
    assert result.checksum == "recorded" and result.sha256 == sha(DATA) and not result.resumed
    assert (tmp_path / "d" / "data.bin.sha256").read_text().split()[0] == sha(DATA)
    assert seen[0] == (0, len(DATA)) and seen[-1] == (len(DATA), len(DATA))
    # second call: already there, checked against the stored digest, nothing fetched
    n = len(server.requests)
    again = download_file(server.url + "/data.bin", tmp_path / "d" / "data.bin")
    assert not again.downloaded and again.checksum == "verified" and len(server.requests) == n


def test_resume_from_partial_file(server, tmp_path):
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(DATA[:3000])
    result = download_file(server.url + "/data.bin", dest, sha256=sha(DATA))
    assert result.resumed and result.checksum == "verified"
    assert dest.read_bytes() == DATA and not (tmp_path / "data.bin.part").exists()
    assert server.requests[-1] == ("/data.bin", "bytes=3000-")


def test_server_ignoring_range_restarts(server, tmp_path):
    server.ignore_range = True
    (tmp_path / "data.bin.part").write_bytes(b"x" * 500)
    result = download_file(server.url + "/data.bin", tmp_path / "data.bin", sha256=sha(DATA))
    assert not result.resumed and (tmp_path / "data.bin").read_bytes() == DATA


def test_oversized_partial_file_restarts(server, tmp_path):
    (tmp_path / "data.bin.part").write_bytes(DATA + b"extra")  # server answers 416
    result = download_file(server.url + "/data.bin", tmp_path / "data.bin", sha256=sha(DATA))
    assert not result.resumed and (tmp_path / "data.bin").read_bytes() == DATA


def test_interrupted_download_then_resume(server, tmp_path):
    server.cut_after = 4000
    with pytest.raises(DataError, match="run the command again to resume"):
        download_file(server.url + "/data.bin", tmp_path / "data.bin", timeout=5)
    assert (tmp_path / "data.bin.part").read_bytes() == DATA[:4000]
    server.cut_after = None
    result = download_file(server.url + "/data.bin", tmp_path / "data.bin")
    assert result.resumed and (tmp_path / "data.bin").read_bytes() == DATA


def test_checksum_mismatch_deletes_the_file(server, tmp_path):
    with pytest.raises(DataError, match="checksum mismatch"):
        download_file(server.url + "/data.bin", tmp_path / "data.bin", sha256="0" * 64)
    assert not os.listdir(tmp_path)
    (tmp_path / "data.bin").write_bytes(b"tampered")
    (tmp_path / "data.bin.sha256").write_text(f"{sha(DATA)}  data.bin\n")
    with pytest.raises(DataError, match="checksum mismatch"):
        download_file(server.url + "/data.bin", tmp_path / "data.bin")


def test_http_error_and_offline(server, tmp_path):
    with pytest.raises(DataError, match="HTTP 404"):
        download_file(server.url + "/missing.bin", tmp_path / "m.bin")
    with socket.socket() as s:  # a loopback port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataError, match="cannot reach"):
        download_file(f"http://127.0.0.1:{port}/data.bin", tmp_path / "x.bin", timeout=5)


def coco_zip():
    """The same bytes on every call (fixed member times: writestr with a name stamps the clock)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in (("coco2014_captions.h5", b"h5 stand-in"), ("coco2014_vocab.json", b"{}")):
            z.writestr(zipfile.ZipInfo(f"coco_captioning/{name}", date_time=(2020, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


def test_download_coco_extracts(server, tmp_path):
    server.files["/coco_captioning.zip"] = coco_zip()
    result, folder = download_coco(tmp_path, url=server.url + "/coco_captioning.zip")
    assert folder == str(tmp_path / "coco_captioning")
    assert (tmp_path / "coco_captioning" / "coco2014_vocab.json").read_bytes() == b"{}"
    assert result.checksum == "recorded" and (tmp_path / "coco_captioning.zip.sha256").exists()
    assert not (tmp_path / ".extract-coco").exists()


def test_a_web_page_instead_of_the_archive_is_never_trusted(server, tmp_path, capsys):
    url = server.url + "/coco_captioning.zip"
    server.files["/coco_captioning.zip"] = b"<html><body>Please log in</body></html>"
    assert main(["data", "download", "coco", "--dir", str(tmp_path), "--url", url, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a valid archive" in err[0] and "no checksum was recorded" in err[0]
    assert os.listdir(tmp_path) == []
    archive = server.files["/coco_captioning.zip"] = coco_zip()  # now the archive: it is accepted
    assert main(["data", "download", "coco", "--dir", str(tmp_path), "--url", url, "--no-progress"]) == 0
    assert (tmp_path / "coco_captioning.zip.sha256").read_text().split()[0] == sha(archive)


def test_cli_download(server, tmp_path, capsys):
    server.files["/coco_captioning.zip"] = coco_zip()
    url = server.url + "/coco_captioning.zip"
    assert main(["data", "download", "coco", "--dir", str(tmp_path), "--url", url, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"sha256 {sha(coco_zip())}" in out and "stored in" in out
    assert main(["data", "download", "coco", "--dir", str(tmp_path), "--url", url, "--no-progress"]) == 0
    assert "verified" in capsys.readouterr().out
    code = main(["data", "download", "coco", "--dir", str(tmp_path / "new"), "--url", server.url + "/nope.zip",
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "HTTP 404" in err and "Traceback" not in err


def test_extract_zip_rejects_bad_archives(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("../evil.txt", b"x")
    (tmp_path / "evil.zip").write_bytes(buf.getvalue())
    with pytest.raises(DataError, match="outside"):
        extract_zip(tmp_path / "evil.zip", tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="corrupt zip"):
        extract_zip(tmp_path / "bad.zip", tmp_path / "out")
