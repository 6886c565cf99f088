"""Nothing wrong gets in through the data scripts (issue 16): a web page is not kept as a zip, zip members are
size-capped, adopt repairs a corrupt copy of the same size, Ctrl-C says how to resume, verify --quick sees
truncated and empty images, DomainNet --per-class with a non-zip archive is a clear error. All offline."""
import hashlib
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from data_scripts import _download as D
from data_scripts import _layout as L
from data_scripts import domainnet, pacs
from data_scripts.fake_data import make_fake_domainnet, make_fake_pacs, zip_tree
from tests.test_data_download import server  # noqa: F401  (the local HTTP server fixture, 127.0.0.1 only)

ROOT = Path(__file__).resolve().parents[1]
HTML = b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head><body>...</body></html>" * 20


@pytest.fixture(scope="module")
def fake_pacs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pacs_src")
    make_fake_pacs(root, per_cell=1)
    return root


@pytest.fixture(scope="module")
def pacs_zip(fake_pacs, tmp_path_factory):
    return zip_tree(fake_pacs / "pacs", tmp_path_factory.mktemp("zip") / "pacs.zip", prefix="pacs/").read_bytes()


# ---------------------------------------------------------------- a web page is not a zip
def test_html_sent_as_a_file_is_refused_and_not_kept(server, tmp_path):
    server.files["/pacs.zip"] = HTML  # served as application/octet-stream
    with pytest.raises(D.DownloadError, match="web page"):
        D.download(server.url + "/pacs.zip", tmp_path / "pacs.zip", None, progress=False)
    assert list(tmp_path.iterdir()) == []  # neither pacs.zip nor pacs.zip.part


def test_pacs_rerun_with_a_good_url_replaces_a_bad_archive(server, pacs_zip, fake_pacs, tmp_path, capsys):
    root = tmp_path / "data"
    (root / "downloads").mkdir(parents=True)
    (root / "downloads/pacs.zip").write_bytes(HTML)  # left by an older version (--sha256 none)
    server.files["/good.zip"] = pacs_zip
    assert pacs.main(["download", "--root", str(root), "--url", server.url + "/good.zip", "--sha256", "none"]) == 0
    out = capsys.readouterr().out
    assert "web page" in out and "downloading it again" in out
    assert (root / "downloads/pacs.zip.bad").read_bytes() == HTML  # moved aside, not lost
    assert L.verify_pacs(root, progress=False)[0] == []


def test_pacs_html_download_exits_2_with_one_line(server, tmp_path, capsys):
    server.files["/pacs.zip"] = HTML
    root = tmp_path / "data"
    assert pacs.main(["download", "--root", str(root), "--url", server.url + "/pacs.zip", "--sha256", "none"]) == 2
    err = capsys.readouterr().err.splitlines()[-1]  # (after the progress bar)
    assert err.startswith("error: ") and "web page" in err and "Traceback" not in err
    assert not (root / "downloads/pacs.zip").exists() and not (root / "pacs").exists()


def test_pacs_archive_that_is_not_a_zip_is_a_clear_error(tmp_path, capsys):
    fake = tmp_path / "pacs.zip"
    fake.write_bytes(HTML)
    assert pacs.main(["download", "--root", str(tmp_path / "data"), "--archive", str(fake), "--sha256", "none"]) == 2
    assert "is a web page" in capsys.readouterr().err and fake.read_bytes() == HTML  # the user's file untouched


# ---------------------------------------------------------------- size caps
def test_zip_members_are_capped_before_anything_is_written(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("pacs/images/photo/dog/big.jpg", b"\0" * 5_000_000)  # 5 MB of zeros: ~5 KB compressed
    with pytest.raises(D.DownloadError, match="more than the 1.0 MB"):
        D.extract(bomb, tmp_path / "out", progress=False, max_member=10**6)
    with pytest.raises(D.DownloadError, match="zip bomb"):  # the default total cap: 4x the archive + 64 MB
        D.extract(bomb, tmp_path / "out", progress=False, max_total=10**6)
    assert list((tmp_path / "out").iterdir()) == []
    assert (D.extract(bomb, tmp_path / "ok", progress=False) / "pacs/images/photo/dog/big.jpg").stat().st_size == 5 * 10**6


def test_default_total_cap_follows_the_archive_size(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        for k in range(3):
            zf.writestr(f"f{k}", b"\0" * 30_000_000)  # 90 MB in all from a ~0.3 MB archive
    assert os.path.getsize(bomb) < 10**6
    with pytest.raises(D.DownloadError, match="zip bomb"):
        D.extract(bomb, tmp_path / "out", progress=False)


# ---------------------------------------------------------------- adopt compares content
def test_adopt_repairs_a_corrupt_copy_of_the_same_size(fake_pacs, tmp_path):
    root = tmp_path / "data"
    assert pacs.main(["adopt", "--source", str(fake_pacs), "--root", str(root), "--quick"]) == 0
    rel = "photo/dog/pho_0_0000.jpg"
    copy, source = L.pacs_images(root) / rel, fake_pacs / "pacs/images" / rel
    good = source.read_bytes()
    copy.write_bytes(bytes(b ^ 0xFF for b in good[:200]) + good[200:])  # same size, other bytes
    assert pacs.main(["adopt", "--source", str(fake_pacs), "--root", str(root), "--quick"]) == 0
    assert copy.read_bytes() == good and source.read_bytes() == good


def test_copy_files_skips_identical_files(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src/a").write_bytes(b"abc")
    assert D.copy_files(tmp_path / "src", tmp_path / "dst", ["a"], progress=False) == 1
    assert D.copy_files(tmp_path / "src", tmp_path / "dst", ["a"], progress=False) == 0
    assert not list((tmp_path / "dst").glob("*.part"))


# ---------------------------------------------------------------- Ctrl-C
def test_ctrl_c_prints_one_line_and_how_to_resume(monkeypatch, tmp_path, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pacs, "download", interrupted)
    assert pacs.main(["download", "--root", str(tmp_path), "--url", "http://127.0.0.1:9/x.zip"]) == 130
    monkeypatch.setattr(domainnet, "download", interrupted)
    assert domainnet.main(["download", "--root", str(tmp_path), "--domains", "sketch", "--no-head"]) == 130
    err = capsys.readouterr().err
    assert err.count("interrupted; run the same command again to resume") == 2 and "Traceback" not in err


def test_sigint_during_a_real_download_prints_one_line(server, tmp_path):
    server.files["/pacs.zip"] = b"x" * 1000
    server.hang = 30  # the server stalls: the user presses Ctrl-C
    proc = subprocess.Popen([sys.executable, str(ROOT / "data_scripts/pacs.py"), "download", "--root", str(tmp_path),
                             "--url", server.url + "/pacs.zip", "--sha256", "none"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            # as in a terminal: a suite started in the background hands SIGINT down ignored
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    while not any(path == "/pacs.zip" for path, _ in server.log) and time.time() < deadline:
        time.sleep(0.1)  # wait until the script is inside the download
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted; run the same command again to resume" in err and "Traceback" not in err


# ---------------------------------------------------------------- verify --quick
def test_verify_quick_finds_truncated_and_empty_images(tmp_path, capsys):
    make_fake_pacs(tmp_path, per_cell=1, size=40)
    images = L.pacs_images(tmp_path)
    jpg, png, empty = images / "photo/dog/pho_0_0000.jpg", images / "sketch/horse/ske_4_0000.png", \
        images / "cartoon/house/car_5_0000.jpg"
    assert pacs.main(["verify", "--root", str(tmp_path), "--quick"]) == 0
    jpg.write_bytes(jpg.read_bytes()[: jpg.stat().st_size // 2])
    png.write_bytes(png.read_bytes()[: png.stat().st_size // 2])
    empty.write_bytes(b"")
    capsys.readouterr()
    assert pacs.main(["verify", "--root", str(tmp_path), "--quick"]) == 1
    out = capsys.readouterr().out
    assert "photo/dog/pho_0_0000.jpg: corrupt image (truncated JPEG" in out
    assert "sketch/horse/ske_4_0000.png: corrupt image (truncated PNG" in out
    assert "cartoon/house/car_5_0000.jpg: corrupt image (empty file" in out
    assert "3 problem(s)" in out


def test_quick_check_accepts_whole_images_and_rejects_non_images(tmp_path):
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "a.jpg")
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    (tmp_path / "b.jpg").write_bytes(b"GIF89a not really" * 10)
    assert L._quick_check(tmp_path / "a.jpg") is None and L._quick_check(tmp_path / "a.png") is None
    assert "not a readable image" in L._quick_check(tmp_path / "b.jpg")


# ---------------------------------------------------------------- DomainNet --per-class with a non-zip archive
def test_domainnet_per_class_with_a_non_zip_archive_is_a_clear_error(server, tmp_path, capsys):
    src = tmp_path / "src"
    make_fake_domainnet(src, domains=("sketch",), n_classes=2, per_class=2)
    path = domainnet.ARCHIVES["sketch"][0]
    server.files["/" + path] = HTML
    for split in L.DOMAINNET_SPLITS:
        server.files[f"/domainnet/txt/sketch_{split}.txt"] = L.domainnet_list(src, "sketch", split).read_bytes()
    root = tmp_path / "data"
    args = ["download", "--root", str(root), "--domains", "sketch", "--base-url", server.url + "/", "--no-checksum",
            "--no-head", "--per-class", "1"]
    assert domainnet.main(args) == 2
    err = capsys.readouterr().err
    assert "web page" in err and "Traceback" not in err and "BadZipFile" not in err
    assert not (root / "downloads/sketch.zip").exists()
    (root / "downloads").mkdir(parents=True, exist_ok=True)  # and a non-zip already on disk (an older version)
    (root / "downloads/sketch.zip").write_bytes(b"PK\x03\x04 truncated")
    server.files["/" + path] = zip_tree(src / "domainnet", tmp_path / "sketch.zip", exclude=("splits",)).read_bytes()
    assert domainnet.main(args) == 0
    assert "downloading it again" in capsys.readouterr().out


def test_members_of_a_non_zip_is_a_download_error(tmp_path):
    bad = tmp_path / "clipart.zip"
    bad.write_bytes(HTML)
    with pytest.raises(D.DownloadError, match="web page"):
        domainnet._members(bad, ["clipart/a/b.jpg"])


def test_sha256_of_html_is_not_needed_to_refuse_it(tmp_path):
    page = tmp_path / "p.zip"
    page.write_bytes(HTML)
    assert D.zip_problem(page).startswith("a web page")
    page.write_bytes(b"")
    assert D.zip_problem(page) == "an empty file"
