"""Where the package caches things, and how it writes a file so that a reader never sees half of it."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, IO

import torch


def cache_dir(*parts: str) -> Path:
    """$MINCLIP_CACHE (default ~/.cache/minclip_unlearn), '~' expanded, joined with parts (not created)."""
    root = os.environ.get("MINCLIP_CACHE") or "~/.cache/minclip_unlearn"
    return Path(root).expanduser().joinpath(*parts)


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], object]) -> Path:
    """Call write(f) on a temporary file beside path, then os.replace it onto path: all of it or nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the file gets the user's usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write bytes to path atomically (atomic_write)."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 text to path atomically (atomic_write)."""
    return atomic_bytes(path, text.encode("utf-8"))


def atomic_torch_save(path: str | os.PathLike, value) -> Path:
    """torch.save value to path atomically (atomic_write)."""
    return atomic_write(path, lambda f: torch.save(value, f))
