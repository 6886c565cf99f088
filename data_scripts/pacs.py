"""PACS (Li et al., ICCV 2017): download, verify, or adopt a copy you already have.

    python data_scripts/pacs.py download --root DATA      # fetch, check, extract, verify (~ 200 MB)
    python data_scripts/pacs.py verify   --root DATA      # check DATA/pacs against the official split lists
    python data_scripts/pacs.py adopt    --source DIR --root DATA   # copy an existing PACS (DomainBed, Dassl, ...)

Result: DATA/pacs/images/{domain}/{class}/{file} and DATA/pacs/splits/{domain}_{train,crossval,test}_kfold.txt
(see data_scripts/_layout.py). 4 domains, 7 classes, 9,991 images of 227x227.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `data_scripts` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_scripts import _layout as L  # noqa: E402
from data_scripts._download import (  # noqa: E402
    DownloadError, check_file, copy_files, download, extract, gdrive_url, human, remote_size, run_command, zip_problem)

# Dassl.pytorch's pacs.zip (pacs/images/... and pacs/splits/*_kfold.txt: images and official lists in one file).
URL = gdrive_url("1m4X4fROCCXMO0lRLrr6Zz9Vb3974NWhE")
# sha256 of that archive as recorded by a third party; no checksum is published by the PACS authors.
SHA256 = "0dc9d0176fa27c9b4504e7c2e962aebe6a79ed0c1819b84148786e590f87e102"
LIST_NAME = "art_painting_train_kfold.txt"  # the file that marks a folder of PACS split lists
DERIVED = "DERIVED_NOT_OFFICIAL.txt"
MAX_MEMBER = 16 * 10**6  # bytes: a PACS image is 227x227 (tens of KB); the lists are smaller still


def _walk(top: Path, depth: int = 3):
    """Folders under top (top included), at most depth levels down."""
    top = Path(top)
    for d, dirs, _ in os.walk(top, followlinks=True):
        if len(Path(d).relative_to(top).parts) >= depth:
            dirs[:] = []
        dirs[:] = [x for x in dirs if not x.startswith(".")]
        yield Path(d)


def locate(source: Path) -> tuple[Path, Path | None]:
    """A PACS copy in any common layout -> (folder holding the 4 domain folders, folder of split lists or None)."""
    images = next((d for d in _walk(source) if all((d / m).is_dir() for m in L.PACS_DOMAINS)), None)
    if images is None:
        raise SystemExit(f"no PACS found under {source}: expected a folder holding {', '.join(L.PACS_DOMAINS)} "
                         "(e.g. DomainBed's PACS/, Dassl's pacs/images/, or the original kfold/)")
    splits = next((d for d in _walk(source) if (d / LIST_NAME).is_file()), None)
    return images, splits


def _image_files(images: Path) -> list[str]:
    """Relative paths of every image file below images/{domain}/{class}/."""
    return sorted(str(p.relative_to(images)).replace(os.sep, "/") for m in L.PACS_DOMAINS
                  for p in (images / m).glob("*/*") if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def derive_lists(images: Path, splits: Path, seed: int = 0) -> None:
    """Write split lists from the folder tree (test = all; a seeded 90/10 train/crossval), marked non-official."""
    import numpy as np

    for m in L.PACS_DOMAINS:
        rows = [(r, L.PACS_CLASSES.index(r.split("/")[1])) for r in _image_files(images) if r.startswith(m + "/")]
        cross = set(np.random.default_rng((seed, L.PACS_DOMAINS.index(m))).permutation(len(rows))[: len(rows) // 10].tolist())
        L.write_list(splits / f"{m}_test_kfold.txt", rows, 1)
        L.write_list(splits / f"{m}_train_kfold.txt", [r for i, r in enumerate(rows) if i not in cross], 1)
        L.write_list(splits / f"{m}_crossval_kfold.txt", [r for i, r in enumerate(rows) if i in cross], 1)
    (splits / DERIVED).write_text("These lists were derived from the folder tree (--derive-lists), not the official PACS lists.\n")


def install(images: Path, splits: Path | None, root: Path, move: bool, derive: bool = False) -> None:
    """Put a located PACS into root/pacs: copy (the source is left as it was) or move (our own temporary files)."""
    dst_images, dst_splits = L.pacs_images(root), L.pacs_list(root, "photo", "train").parent
    files = _image_files(images)
    print(f"{'moving' if move else 'copying'} {len(files)} images from {images} to {dst_images}")
    if move:
        for rel in files:
            (dst_images / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(images / rel, dst_images / rel)
    else:
        copy_files(images, dst_images, files)
    if splits is not None:
        names = [f"{m}_{s}_kfold.txt" for m in L.PACS_DOMAINS for s in L.PACS_SPLITS]
        copy_files(splits, dst_splits, [n for n in names if (splits / n).is_file()], progress=False)
        (dst_splits / DERIVED).unlink(missing_ok=True)
    elif derive:
        derive_lists(dst_images, dst_splits)
        print(f"no split lists in the source: derived lists written to {dst_splits} (marked {DERIVED})")
    else:
        print(f"no split lists (*_kfold.txt) found in the source. Pass --splits DIR (the 12 official lists, e.g. from "
              f"Dassl's pacs.zip or the PACS authors' folder), or --derive-lists to write non-official lists.")


def verify(root: Path, quick: bool = False) -> int:
    """Print the verification of root/pacs; returns 0 if it matches its split lists."""
    problems, notes = L.verify_pacs(root, decode=not quick)
    if (L.pacs_list(root, "photo", "train").parent / DERIVED).exists():
        notes.append("the split lists were derived from the folder tree, not the official PACS lists")
    return L.report(problems, notes, f"PACS at {root / 'pacs'}")


def cmd_download(a) -> int:
    root = Path(a.root)
    if not L.verify_pacs(root, decode=False, progress=False)[0]:
        print(f"PACS is already at {root / 'pacs'}; verifying it")
        return verify(root, a.quick)
    checksum = None if a.sha256.lower() == "none" else f"sha256:{a.sha256}"
    if a.archive:
        archive = Path(a.archive)
        print(f"using the local archive {archive}")
        if not archive.is_file():
            raise DownloadError(f"--archive {archive}: no such file")
        if why := zip_problem(archive):
            raise DownloadError(f"--archive {archive} is {why}; download pacs.zip again")
        found = check_file(archive, checksum, progress=True)
        print(f"{archive.name}: {found}" + ("" if checksum else " (not checked: --sha256 none)"))
    else:
        size = remote_size(a.url)
        print(f"PACS: {human(size) if size else 'size not announced (roughly 200 MB)'} from {a.url}")
        if checksum is None:
            print("no checksum will be checked (--sha256 none)")
        archive = download(a.url, root / "downloads" / "pacs.zip", checksum)
    tmp = extract(archive, root, max_member=MAX_MEMBER)
    try:
        images, splits = locate(tmp)
        install(images, splits, root, move=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not a.keep_archive and not a.archive:
        archive.unlink()
    return verify(root, a.quick)


def cmd_adopt(a) -> int:
    source, root = Path(a.source).resolve(), Path(a.root)
    if not source.is_dir():
        raise SystemExit(f"--source {source} is not a folder")
    images, splits = locate(source)
    if a.splits:
        splits = Path(a.splits)
        if not (splits / LIST_NAME).is_file():
            raise SystemExit(f"--splits {splits} holds no {LIST_NAME}")
    if images.resolve() == L.pacs_images(root).resolve():
        print("the source is already ROOT/pacs/images; nothing to copy")
    else:
        install(images, splits, root, move=False, derive=a.derive_lists)
    return verify(root, a.quick)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("download", help="fetch the archive (resumable), check it, extract, verify")
    d.add_argument("--root", required=True, help="data folder; PACS goes to ROOT/pacs")
    d.add_argument("--url", default=URL, help="archive URL (default: Dassl.pytorch's pacs.zip on Google Drive)")
    d.add_argument("--sha256", default=SHA256, help="expected sha256 of the archive, or 'none' to skip the check")
    d.add_argument("--archive", help="use this already downloaded pacs.zip instead of downloading")
    d.add_argument("--keep-archive", action="store_true", help="keep ROOT/downloads/pacs.zip after extracting")
    d.add_argument("--quick", action="store_true", help="verify presence only, do not decode every image")
    v = sub.add_parser("verify", help="check ROOT/pacs against its split lists (every image present and decodable)")
    v.add_argument("--root", required=True)
    v.add_argument("--quick", action="store_true", help="check presence only, do not decode every image")
    ad = sub.add_parser("adopt", help="copy a PACS you already have into ROOT/pacs (the source is never changed)")
    ad.add_argument("--source", required=True, help="your PACS folder (DomainBed PACS/, Dassl pacs/, kfold/, ...)")
    ad.add_argument("--root", required=True)
    ad.add_argument("--splits", help="folder with the 12 *_kfold.txt lists, if the source has none")
    ad.add_argument("--derive-lists", action="store_true", help="no lists anywhere: derive non-official ones")
    ad.add_argument("--quick", action="store_true", help="verify presence only, do not decode every image")
    a = p.parse_args(argv)
    cmds = {"download": cmd_download, "verify": lambda a: verify(Path(a.root), a.quick), "adopt": cmd_adopt}
    return run_command(cmds[a.cmd], a)


if __name__ == "__main__":
    sys.exit(main())
