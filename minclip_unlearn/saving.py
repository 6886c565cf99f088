"""Saving an edited model: its plain open_clip state_dict and, beside it, the JSON list of its edit records.

Never overwrites a user's file silently (`check_writable`); writes are atomic (cache.py). `edit` re-exports
every name here (`edit.save_edited`, `edit.load_record`, ...).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .cache import atomic_text, atomic_torch_save


def record_path(path: str | os.PathLike) -> Path:
    """Checkpoint path -> the path of its JSON record (edited.pt -> edited.json)."""
    return Path(path).with_suffix(".json")


def check_writable(path: str | os.PathLike, overwrite: bool = False) -> None:
    """Raise FileExistsError if the checkpoint or its record exists and overwrite is off."""
    for p in (Path(path), record_path(path)):
        if p.exists() and not overwrite:
            raise FileExistsError(f"{p} exists; pass overwrite=True (or --overwrite) to replace it")


def save_edited(model, path: str | os.PathLike, overwrite: bool = False) -> tuple[Path, Path]:
    """Write the plain open_clip state_dict to path and the edit records to path.json; never overwrite silently."""
    check_writable(path, overwrite)
    path, rec = Path(path), record_path(path)
    atomic_torch_save(path, model.state_dict())
    atomic_text(rec, json.dumps(getattr(model, "minclip_records", []), indent=2))
    return path, rec


def load_record(path: str | os.PathLike) -> list[dict]:
    """Checkpoint path (or its .json) -> the list of edit records saved beside it."""
    return json.loads(record_path(path).read_text())
