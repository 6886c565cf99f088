"""Where PACS and DomainNet live under --root, how their split lists read, and how a tree is verified.

Layout under ROOT (what `pacs.py` and `domainnet.py` write, and what `extract_features.py` reads):

    ROOT/pacs/images/{domain}/{class}/{file}           photo/dog/056_0022.jpg (sketch: .png)
    ROOT/pacs/splits/{domain}_{split}_kfold.txt        split: train | crossval | test; "photo/dog/056_0022.jpg 1"
                                                       (labels 1-indexed; train + crossval = test = the domain)
    ROOT/domainnet/{domain}/{class}/{file}             clipart/aircraft_carrier/clipart_001_000005.jpg
    ROOT/domainnet/splits/{domain}_{split}.txt         split: train | test; "clipart/aircraft_carrier/... 0"
                                                       (labels 0-indexed, in minclip_unlearn/data/domainnet_classes.txt order)
    ROOT/domainnet/splits/{domain}_{split}_per{N}_seed{S}.txt   a fixed subset: N images per class (--per-class N)
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from minclip_unlearn.paradigms import PACS_CLASSES, PACS_DOMAINS, DOMAINNET_DOMAINS, domainnet_classes

PACS_SPLITS = ("train", "crossval", "test")
PACS_COUNTS = {"art_painting": 2048, "cartoon": 2344, "photo": 1670, "sketch": 3929}  # 9,991 images
# Dassl.pytorch skips this file of its pacs.zip ("contains errors"); if it does not decode it is reported, not fatal.
PACS_KNOWN_BAD = frozenset({"sketch/dog/n02103406_4068-1.png"})
DOMAINNET_SPLITS = ("train", "test")


@dataclass(frozen=True)
class Entry:
    """One listed image: path relative to the image root, 0-indexed class label, domain index, split name."""

    path: str
    label: int
    domain: int
    split: str


# ---------------------------------------------------------------- paths
def pacs_images(root: str | os.PathLike) -> Path:
    return Path(root) / "pacs" / "images"


def pacs_list(root: str | os.PathLike, domain: str, split: str) -> Path:
    return Path(root) / "pacs" / "splits" / f"{domain}_{split}_kfold.txt"


def domainnet_images(root: str | os.PathLike) -> Path:
    return Path(root) / "domainnet"


def domainnet_list(root: str | os.PathLike, domain: str, split: str, per_class: int | None = None, seed: int = 0) -> Path:
    suffix = f"_per{per_class}_seed{seed}" if per_class else ""
    return Path(root) / "domainnet" / "splits" / f"{domain}_{split}{suffix}.txt"


# ---------------------------------------------------------------- lists
def read_list(path: str | os.PathLike, first_label: int = 0) -> list[tuple[str, int]]:
    """A split list ('relative/path label' per line) -> [(path, 0-indexed label)]; errors name file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split list {path} is missing")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.strip().rsplit(maxsplit=1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise ValueError(f"{path}:{n}: expected 'relative/path label', got {line!r}")
        rows.append((parts[0].replace("\\", "/"), int(parts[1]) - first_label))
    return rows


def write_list(path: str | os.PathLike, rows: list[tuple[str, int]], first_label: int = 0) -> None:
    """[(path, 0-indexed label)] -> a split list file, written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text("".join(f"{p} {label + first_label}\n" for p, label in rows))
    os.replace(tmp, path)


def pacs_entries(root: str | os.PathLike, domains=PACS_DOMAINS) -> list[Entry]:
    """Every listed PACS image once, split 'train' or 'crossval' (or 'test' if only in the test list)."""
    out = []
    for m in domains:
        seen = {}
        for split in PACS_SPLITS:
            for rel, label in read_list(pacs_list(root, m, split), first_label=1):
                seen.setdefault(rel, Entry(rel, label, PACS_DOMAINS.index(m), split))
        out += seen.values()
    return out


def subset_rows(rows: list[tuple[str, int]], per_class: int, seed: int, key: tuple[int, ...]) -> list[tuple[str, int]]:
    """At most per_class rows of each label, drawn with a seeded generator; list order is kept."""
    rng = np.random.default_rng((seed, *key))
    by_label: dict[int, list[int]] = {}
    for i, (_, label) in enumerate(rows):
        by_label.setdefault(label, []).append(i)
    keep = sorted(i for idx in by_label.values() for i in rng.permutation(idx)[:per_class].tolist())
    return [rows[i] for i in keep]


def domainnet_entries(root: str | os.PathLike, domains=DOMAINNET_DOMAINS, per_class: int | None = None,
                      seed: int = 0) -> list[Entry]:
    """Every listed DomainNet image of the domains (or of their --per-class subset lists)."""
    return [Entry(rel, label, DOMAINNET_DOMAINS.index(m), split)
            for m in domains for split in DOMAINNET_SPLITS
            for rel, label in read_list(domainnet_list(root, m, split, per_class, seed))]


# ---------------------------------------------------------------- verification
def _decode(path: Path) -> str | None:
    """None if the image decodes completely, else the reason."""
    try:
        with Image.open(path) as im:
            im.load()
        return None
    except Exception as e:  # PIL raises many types for broken files
        return f"{type(e).__name__}: {e}"


def _quick_check(path: Path) -> str | None:
    """None if the file looks like a whole image (non-empty, a valid header, JPEG/PNG end marker present), else why."""
    try:
        size = path.stat().st_size
        if size == 0:
            return "empty file (0 bytes)"
        with Image.open(path) as im:  # reads the header only
            fmt, (w, h) = im.format, im.size
        if w <= 0 or h <= 0:
            return f"image header says {w}x{h} pixels"
        with open(path, "rb") as f:
            f.seek(max(0, size - 1024))
            tail = f.read()
    except Exception as e:  # PIL raises many types for a bad header
        return f"not a readable image ({type(e).__name__}: {e})"
    if fmt == "JPEG" and b"\xff\xd9" not in tail:
        return "truncated JPEG (no end-of-image marker)"
    if fmt == "PNG" and b"IEND" not in tail:
        return "truncated PNG (no IEND chunk)"
    return None


def verify_entries(image_root: Path, entries: list[Entry], classes, domains, decode: bool = True,
                   known_bad=frozenset(), progress: bool = True) -> tuple[list[str], list[str]]:
    """Check every listed image: present, in its class and domain folder, label in range, decodes.

    decode=False (--quick): instead of a full decode, each file's size, image header and end marker are checked.

    Returns (problems, notes): a tree is good when problems is empty; each problem names its file.
    """
    problems, notes = [], []
    present = []
    for e in entries:
        parts = e.path.split("/")
        if not 0 <= e.label < len(classes):
            problems.append(f"{e.path}: label {e.label} out of range (0..{len(classes) - 1})")
        elif len(parts) < 3 or parts[0] != domains[e.domain] or parts[1] != classes[e.label]:
            problems.append(f"{e.path}: listed as {domains[e.domain]}/{classes[e.label]}, which its folders disagree with")
        if not (image_root / e.path).is_file() and e.path in known_bad:
            notes.append(f"{e.path}: missing; a known broken file of this release, skipped")
        elif not (image_root / e.path).is_file():
            problems.append(f"{e.path}: missing (expected at {image_root / e.path})")
        else:
            present.append(e.path)
    check, what = (_decode, "decoding images") if decode else (_quick_check, "checking image headers")
    if present:
        with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool:
            reasons = pool.map(check, (image_root / p for p in present))
            for p, why in tqdm(zip(present, reasons), total=len(present), desc=what, unit="img",
                               disable=not progress):
                if why and p in known_bad:
                    notes.append(f"{p}: does not decode ({why}); a known broken file of this release, skipped")
                elif why:
                    problems.append(f"{p}: corrupt image ({why})")
    return problems, notes


def verify_pacs(root: str | os.PathLike, decode: bool = True, progress: bool = True) -> tuple[list[str], list[str]]:
    """Verify ROOT/pacs against its 12 split lists -> (problems, notes)."""
    problems, notes = [], []
    missing = [str(pacs_list(root, m, s)) for m in PACS_DOMAINS for s in PACS_SPLITS if not pacs_list(root, m, s).is_file()]
    if missing:
        return [f"split list missing: {p}" for p in missing], notes
    for m in PACS_DOMAINS:
        test = {r for r, _ in read_list(pacs_list(root, m, "test"), 1)}
        trainval = {r for s in ("train", "crossval") for r, _ in read_list(pacs_list(root, m, s), 1)}
        if trainval != test:
            notes.append(f"{m}: train + crossval lists ({len(trainval)}) differ from the test list ({len(test)})")
        if len(test | trainval) != PACS_COUNTS[m]:
            notes.append(f"{m}: {len(test | trainval)} images listed; the official PACS release has {PACS_COUNTS[m]}")
    entries = pacs_entries(root)
    p, n = verify_entries(pacs_images(root), entries, PACS_CLASSES, PACS_DOMAINS, decode, PACS_KNOWN_BAD, progress)
    return problems + p, notes + n


def verify_domainnet(root: str | os.PathLike, domains=DOMAINNET_DOMAINS, per_class: int | None = None, seed: int = 0,
                     decode: bool = True, progress: bool = True) -> tuple[list[str], list[str]]:
    """Verify ROOT/domainnet (the given domains) against their train/test lists -> (problems, notes)."""
    lists = [domainnet_list(root, m, s, per_class, seed) for m in domains for s in DOMAINNET_SPLITS]
    missing = [f"split list missing: {p}" for p in lists if not p.is_file()]
    if missing:
        return missing, []
    entries = domainnet_entries(root, domains, per_class, seed)
    return verify_entries(domainnet_images(root), entries, domainnet_classes(), DOMAINNET_DOMAINS, decode,
                          progress=progress)


def report(problems: list[str], notes: list[str], what: str, n_show: int = 20) -> int:
    """Print a verification result; returns the exit status (0 good, 1 problems)."""
    for line in notes:
        print(f"note: {line}")
    if problems:
        for line in problems[:n_show]:
            print(f"FAIL: {line}")
        if len(problems) > n_show:
            print(f"... and {len(problems) - n_show} more problems")
        print(f"{what}: {len(problems)} problem(s); the tree does not match its split lists")
        return 1
    print(f"{what}: OK")
    return 0
