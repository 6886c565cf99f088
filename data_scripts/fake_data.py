"""Tiny fake PACS and DomainNet trees in the real layouts and list formats (for tests, and to try the scripts offline).

    python data_scripts/fake_data.py --root /tmp/fake     # writes /tmp/fake/pacs and /tmp/fake/domainnet
"""
from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_scripts import _layout as L  # noqa: E402
from minclip_unlearn.paradigms import domainnet_classes  # noqa: E402


def _image(path: Path, rng: np.random.Generator, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)


def make_fake_pacs(root: str | Path, per_cell: int = 3, size: int = 32, seed: int = 0) -> Path:
    """root/pacs with per_cell images of every (class, domain) and all 12 lists; sketch as PNG. Returns root/pacs."""
    rng = np.random.default_rng(seed)
    for m in L.PACS_DOMAINS:
        rows = []
        for c, cls in enumerate(L.PACS_CLASSES):
            for j in range(per_cell):
                rel = f"{m}/{cls}/{m[:3]}_{c}_{j:04d}.{'png' if m == 'sketch' else 'jpg'}"
                _image(L.pacs_images(root) / rel, rng, size)
                rows.append((rel, c))
        cross = set(range(0, len(rows), 4))
        L.write_list(L.pacs_list(root, m, "test"), rows, 1)
        L.write_list(L.pacs_list(root, m, "train"), [r for i, r in enumerate(rows) if i not in cross], 1)
        L.write_list(L.pacs_list(root, m, "crossval"), [r for i, r in enumerate(rows) if i in cross], 1)
    return Path(root) / "pacs"


def make_fake_domainnet(root: str | Path, domains=("clipart", "sketch"), n_classes: int = 3, per_class: int = 4,
                        size: int = 32, seed: int = 0) -> Path:
    """root/domainnet with the first n_classes classes, per_class images per class and split. Returns root/domainnet."""
    rng, classes = np.random.default_rng(seed), domainnet_classes()
    for m in domains:
        for k, split in enumerate(L.DOMAINNET_SPLITS):
            rows = []
            for c in range(n_classes):
                for j in range(per_class):
                    rel = f"{m}/{classes[c]}/{m}_{c + 1:03d}_{k}{j:05d}.jpg"
                    _image(L.domainnet_images(root) / rel, rng, size)
                    rows.append((rel, c))
            L.write_list(L.domainnet_list(root, m, split), rows)
    return Path(root) / "domainnet"


def zip_tree(folder: Path, archive: Path, prefix: str = "", exclude: tuple[str, ...] = ()) -> Path:
    """Zip every file below folder as prefix + its relative path (skipping relative paths that start with exclude)."""
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(Path(folder).rglob("*")):
            rel = p.relative_to(folder).as_posix()
            if p.is_file() and not rel.startswith(exclude):
                zf.write(p, prefix + rel)
    return archive


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True)
    a = ap.parse_args()
    print(make_fake_pacs(a.root), make_fake_domainnet(a.root))
