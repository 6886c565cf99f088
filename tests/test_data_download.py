"""Download with resume, checksum and fail-fast, against a local HTTP server (no network needed)."""
import hashlib
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from data_scripts._download import DownloadError, download, extract

os.environ.setdefault("HF_HUB_OFFLINE", "1")


class _Handler(BaseHTTPRequestHandler):
    """Serves server.files; honours Range; server.cut > 0 cuts that many responses short; server.hang stalls."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def _reply(self, head_only: bool):
        srv = self.server
        srv.log.append((self.path, self.headers.get("Range")))
        if srv.hang:
            time.sleep(srv.hang)
        data = srv.files.get(self.path)
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start, status = 0, 200
        if (rng := self.headers.get("Range")) and srv.ranges:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if head_only:
            return
        if srv.cut > 0:  # simulate a dropped connection: half the body, then close
            srv.cut -= 1
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def do_GET(self):
        self._reply(False)

    def do_HEAD(self):
        self._reply(True)


@pytest.fixture
def server():
    """A local HTTP server on 127.0.0.1, port 0; yields it (files, log, cut, hang, ranges, url)."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads, srv.block_on_close = True, False
    srv.handle_error = lambda request, address: None  # a client hanging up on a cut response is expected here
    srv.files, srv.log, srv.cut, srv.hang, srv.ranges = {}, [], 0, 0, True
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


PAYLOAD = os.urandom(300_000)
SHA = "sha256:" + hashlib.sha256(PAYLOAD).hexdigest()


def test_download_completes_and_verifies(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    out = download(server.url + "/a.bin", tmp_path / "a.bin", SHA, progress=False)
    assert out.read_bytes() == PAYLOAD
    assert not (tmp_path / "a.bin.part").exists()
    md5 = "md5:" + hashlib.md5(PAYLOAD).hexdigest()
    assert download(server.url + "/a.bin", tmp_path / "a.bin", md5, progress=False) == out  # present: re-verified only
    assert len(server.log) == 1


def test_interrupted_download_resumes_with_range(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    server.cut = 1  # the first response stops half-way
    out = download(server.url + "/a.bin", tmp_path / "a.bin", SHA, progress=False, backoff=0)
    assert out.read_bytes() == PAYLOAD
    ranges = [r for _, r in server.log]
    assert len(ranges) == 2 and ranges[0] is None
    assert 0 < int(ranges[1].removeprefix("bytes=").rstrip("-")) <= len(PAYLOAD) // 2  # resumed, not restarted


def test_resume_across_calls_from_a_part_file(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    server.cut = 10  # every attempt is cut: the call gives up, keeping the bytes it got
    with pytest.raises(DownloadError, match="resume"):
        download(server.url + "/a.bin", tmp_path / "a.bin", SHA, retries=1, progress=False, backoff=0)
    part = tmp_path / "a.bin.part"
    assert 0 < part.stat().st_size < len(PAYLOAD) and not (tmp_path / "a.bin").exists()
    have = part.stat().st_size
    server.cut, server.log[:] = 0, []
    download(server.url + "/a.bin", tmp_path / "a.bin", SHA, progress=False)
    assert server.log[0][1] == f"bytes={have}-"
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD


def test_server_without_range_support_restarts_cleanly(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    server.ranges = False
    (tmp_path / "a.bin.part").write_bytes(b"stale bytes")
    assert download(server.url + "/a.bin", tmp_path / "a.bin", SHA, progress=False).read_bytes() == PAYLOAD


def test_wrong_checksum_is_refused_and_leaves_no_file(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    with pytest.raises(DownloadError, match="sha256"):
        download(server.url + "/a.bin", tmp_path / "a.bin", "sha256:" + "0" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_host_fails_fast_with_a_clear_message(tmp_path):
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.time()
    with pytest.raises(DownloadError, match=f"could not reach 127.0.0.1:{port}"):
        download(f"http://127.0.0.1:{port}/a.bin", tmp_path / "a.bin", progress=False)
    assert time.time() - start < 5
    assert list(tmp_path.iterdir()) == []


def test_silent_server_times_out(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    server.hang = 3
    start = time.time()
    with pytest.raises(DownloadError, match="did not answer"):
        download(server.url + "/a.bin", tmp_path / "a.bin", timeout=(1, 0.5), progress=False)
    assert time.time() - start < 2.5


def test_missing_file_is_an_http_error(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(server.url + "/nope.zip", tmp_path / "nope.zip", progress=False)
    assert not (tmp_path / "nope.zip").exists()


def test_extract_refuses_zip_slip(tmp_path):
    import zipfile

    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("../evil.txt", "x")
    with pytest.raises(DownloadError, match="unsafe"):
        extract(bad, tmp_path / "out", progress=False)
    assert not (tmp_path / "evil.txt").exists()
    assert list((tmp_path / "out").iterdir()) == []
