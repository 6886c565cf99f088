"""Network and archive helpers for the data scripts: download with resume, verify, extract, copy.

Guarantees, all tested offline against a local HTTP server (tests/test_data_download.py):
- a download is written to `<dest>.part` and renamed to `<dest>` only once complete and verified;
- an interrupted download resumes where it stopped (HTTP Range), within one call and across calls;
- a checksum mismatch deletes the `.part` file and raises: nothing is left where `<dest>` would be;
- an unreachable host fails within the connect timeout, with a message naming the host;
- a `.zip` destination must be a zip archive (a web page sent as a file is refused, not kept), and an existing
  file that no longer verifies is moved aside to `<dest>.bad` and fetched again;
- extraction caps every member's size and the total by what the archive can plausibly hold (no zip bomb).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Iterable
from urllib.parse import urlparse

import requests
from tqdm.auto import tqdm

MAX_MEMBER = 256 * 10**6  # bytes: no image or list of these datasets comes close
CHUNK = 1 << 16  # bytes per read and write (what a dropped connection can lose before a resume)
TIMEOUT = (10.0, 60.0)  # (connect, read) seconds: a dead host fails fast, a stalled transfer within a minute


class DownloadError(RuntimeError):
    """A download that could not complete or did not verify; the message says what to do."""


def gdrive_url(file_id: str) -> str:
    """Google Drive file id -> a direct-download URL that skips the 'cannot scan for viruses' page."""
    return f"https://drive.usercontent.google.com/download?id={file_id}&export=download&confirm=t"


def file_hash(path: str | os.PathLike, algo: str = "sha256", progress: bool = False) -> str:
    """Hex digest of a file, read in chunks."""
    h, size = hashlib.new(algo), os.path.getsize(path)
    with open(path, "rb") as f, tqdm(total=size, unit="B", unit_scale=True, desc=f"{algo} {Path(path).name}",
                                     disable=not progress, leave=False) as bar:
        while block := f.read(CHUNK):
            h.update(block)
            bar.update(len(block))
    return h.hexdigest()


def check_file(path: str | os.PathLike, checksum: str | None, progress: bool = False) -> str:
    """Verify a file against 'sha256:<hex>' or 'md5:<hex>' (None: compute and return the sha256 only).

    Returns the '<algo>:<hex>' found; raises DownloadError on a mismatch.
    """
    algo, _, want = (checksum or "sha256:").partition(":")
    if algo not in ("sha256", "md5"):
        raise ValueError(f"checksum {checksum!r}: expected 'sha256:<hex>' or 'md5:<hex>'")
    got = file_hash(path, algo, progress)
    if want and got != want.lower():
        raise DownloadError(f"{Path(path).name}: {algo} is {got}, expected {want}: the file is corrupt or not the "
                            "expected one")
    return f"{algo}:{got}"


def _head(path: Path, n: int = 64) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def zip_problem(path: str | os.PathLike) -> str | None:
    """None if path is a zip archive, else what it looks like instead (a web page, an empty file, other bytes)."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        return None
    head = _head(path)
    if not head:
        return "an empty file"
    if head.lstrip().lower().startswith((b"<!doctype html", b"<html", b"<?xml", b"<head")):
        return "a web page (HTML), not a zip archive"
    return f"not a zip archive (it starts with {head[:16]!r})"


def _check_download(path: Path, checksum: str | None, expect_zip: bool, progress: bool) -> str:
    """check_file, then (expect_zip) refuse anything that is not a zip; returns the '<algo>:<hex>' found."""
    found = check_file(path, checksum, progress)
    if expect_zip and (why := zip_problem(path)):
        raise DownloadError(f"{path.name} is {why}")
    return found


def _host(url: str) -> str:
    return urlparse(url).netloc or url


def remote_size(url: str, timeout=TIMEOUT) -> int | None:
    """Content-Length from a HEAD request, or None if the server does not say (or cannot be reached)."""
    try:
        r = requests.head(url, allow_redirects=True, timeout=timeout)
        return int(r.headers["Content-Length"]) if r.ok and "Content-Length" in r.headers else None
    except (requests.RequestException, ValueError):
        return None


def download(url: str, dest: str | os.PathLike, checksum: str | None = None, *, retries: int = 5,
             timeout=TIMEOUT, backoff: float = 1.0, progress: bool = True,
             session: requests.Session | None = None, expect_zip: bool | None = None) -> Path:
    """Fetch url to dest: resumable (`dest.part` + HTTP Range), verified, then renamed into place.

    checksum: 'sha256:<hex>' | 'md5:<hex>' | None (unknown: the sha256 is printed so it can be pinned).
    An existing dest is re-verified, not re-downloaded. A stall or cut connection is retried up to `retries`
    times (waiting backoff * 2**(k-1) seconds), each time resuming from the bytes already on disk; a host that
    cannot be reached at all is not retried. expect_zip (default: dest ends in .zip): refuse what is not a zip.
    An existing dest that does not verify is moved aside to dest.bad and downloaded again.
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    expect_zip = dest.suffix.lower() == ".zip" if expect_zip is None else expect_zip
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        try:
            _check_download(dest, checksum, expect_zip, progress)
            return dest
        except DownloadError as e:
            bad = dest.with_name(dest.name + ".bad")
            os.replace(dest, bad)
            print(f"{e}; moved it aside to {bad.name} and downloading it again from {_host(url)}")
    http = session or requests.Session()
    attempt = 0
    while True:
        have = part.stat().st_size if part.exists() else 0
        headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={have}-"} if have else {})}  # raw bytes
        connected = False
        try:
            with http.get(url, headers=headers, stream=True, timeout=timeout, allow_redirects=True) as r:
                connected = True
                if r.status_code == 416 and have:  # the .part already holds every byte
                    break
                if r.status_code >= 400:
                    raise DownloadError(f"{url}: HTTP {r.status_code} {r.reason}; check the URL (or pass --url)")
                if "text/html" in r.headers.get("Content-Type", "") and not url.endswith((".html", ".htm")):
                    raise DownloadError(
                        f"{url} sent a web page, not the file (a Google Drive quota or sign-in page?). "
                        "Download the file in a browser instead and pass it with --archive PATH.")
                resumed = r.status_code == 206
                if have and not resumed:  # the server ignored Range: start over
                    have = 0
                length = r.headers.get("Content-Length")
                total = have + int(length) if length is not None else None
                with open(part, "ab" if resumed else "wb") as f, tqdm(
                        total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                        desc=dest.name, disable=not progress) as bar:
                    for block in r.iter_content(CHUNK):
                        f.write(block)
                        bar.update(len(block))
                size = part.stat().st_size
                if total is not None and size < total:
                    raise requests.exceptions.ChunkedEncodingError(f"connection closed at {size} of {total} bytes")
                break
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as e:
            got = part.stat().st_size if part.exists() else 0
            if not connected:
                kept = f"; the {got} bytes in {part.name} are kept for a resume" if got else ""
                raise DownloadError(
                    f"could not reach {_host(url)}, or it did not answer in {timeout} s ({type(e).__name__}: "
                    f"{str(e)[:200]}). Check the network or "
                    f"proxy, or use a mirror (--url / --base-url); {dest.name} was not written{kept}.") from e
            attempt += 1
            if attempt > retries:
                raise DownloadError(f"{url}: gave up after {retries} retries ({type(e).__name__}); "
                                    f"{got} bytes kept in {part}: run the same command again to resume") from e
            print(f"connection interrupted at {got} bytes ({type(e).__name__}); resuming (retry {attempt}/{retries})")
            time.sleep(backoff * min(2 ** (attempt - 1), 30))
    try:
        found = _check_download(part, checksum, expect_zip, progress)
    except DownloadError as e:
        part.unlink()
        raise DownloadError(f"{url} sent a file that does not verify ({e}); nothing was kept. Check the URL or the mirror "
                            "(--url / --base-url), or download the file in a browser") from e
    if checksum is None:
        print(f"{dest.name}: no checksum to compare with; it is {found} (note it to check this file next time)")
    os.replace(part, dest)
    return dest


def _safe_members(zf: zipfile.ZipFile, names: Iterable[str] | None) -> list[zipfile.ZipInfo]:
    """Members to extract; refuses absolute paths and '..' (zip-slip)."""
    wanted = None if names is None else set(names)
    out = []
    for info in zf.infolist():
        p = Path(info.filename)
        if p.is_absolute() or ".." in p.parts:
            raise DownloadError(f"{zf.filename}: unsafe member path {info.filename!r}; refusing to extract")
        if wanted is None or info.filename in wanted:
            out.append(info)
    return out


def check_sizes(zf: zipfile.ZipFile, members: list[zipfile.ZipInfo], max_member: int, max_total: int) -> None:
    """Refuse members larger than max_member bytes, or more than max_total bytes in all (sizes as the zip declares
    them; zipfile never writes more than a member declares)."""
    big = next((m for m in members if m.file_size > max_member), None)
    if big is not None:
        raise DownloadError(f"{zf.filename}: member {big.filename!r} would be {human(big.file_size)}, more than the "
                            f"{human(max_member)} any file of this dataset needs; refusing to extract (a damaged or "
                            "hostile archive?)")
    total = sum(m.file_size for m in members)
    if total > max_total:
        raise DownloadError(f"{zf.filename}: {len(members)} members would take {human(total)}, more than the "
                            f"{human(max_total)} expected from its size; refusing to extract (a zip bomb?)")


def extract(archive: str | os.PathLike, into: str | os.PathLike, members: Iterable[str] | None = None,
            progress: bool = True, max_member: int = MAX_MEMBER, max_total: int | None = None) -> Path:
    """Extract a zip (all members, or the listed ones) into a fresh temporary folder inside `into`.

    Returns that folder; the caller moves what it needs into place (a rename, so it appears whole) and
    deletes the rest. A failed extraction leaves no half-written tree where the data would go.
    max_member / max_total: size caps in bytes (default total: 4x the archive + 64 MB; images barely compress).
    """
    into = Path(into)
    if max_total is None:
        max_total = 4 * os.path.getsize(archive) + 64 * 10**6
    into.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=into))
    try:
        with zipfile.ZipFile(archive) as zf:
            todo = _safe_members(zf, members)
            check_sizes(zf, todo, max_member, max_total)
            for info in tqdm(todo, desc=f"extracting {Path(archive).name}", unit="file", disable=not progress):
                zf.extract(info, tmp)
    except zipfile.BadZipFile as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DownloadError(f"{archive} is not a valid zip ({e}); delete it and download again") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


def copy_files(src_root: Path, dst_root: Path, relpaths: Iterable[str], progress: bool = True) -> int:
    """Copy files src_root/rel -> dst_root/rel (new inodes, never links, never moves); returns the count.

    Each file is written to a temporary name and renamed, so an interrupted copy leaves no partial file.
    A file already present is kept only if its sha256 matches the source's (a corrupt copy of the same size is
    replaced), so a re-run continues where it stopped and repairs what differs.
    """
    relpaths = list(relpaths)
    n = 0
    for rel in tqdm(relpaths, desc=f"copying into {dst_root}", unit="file", disable=not progress):
        src, dst = src_root / rel, dst_root / rel
        if dst.exists() and dst.stat().st_size == src.stat().st_size and file_hash(dst) == file_hash(src):
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(dst.name + ".part")
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
        finally:
            if tmp.exists():
                tmp.unlink()
        n += 1
    return n


INTERRUPTED = "interrupted; run the same command again to resume"


def run_command(command, args) -> int:
    """Run a data script's command: Ctrl-C prints one line (exit 130), a DownloadError one 'error:' line (exit 2)."""
    try:
        return command(args)
    except KeyboardInterrupt:
        print(f"\n{INTERRUPTED}", file=sys.stderr)
        return 130
    except DownloadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def human(nbytes: float) -> str:
    """Bytes -> '1.2 GB'."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(nbytes) < 1000 or unit == "TB":
            return f"{nbytes:.1f} {unit}" if unit != "B" else f"{int(nbytes)} B"
        nbytes /= 1000
    return f"{nbytes:.1f} TB"
