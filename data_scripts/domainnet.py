"""DomainNet, cleaned version (Peng et al., ICCV 2019): download, verify, or adopt a copy you already have.

    python data_scripts/domainnet.py download --root DATA                      # all 6 domains, ~18 GB of zips
    python data_scripts/domainnet.py download --root DATA --domains clipart sketch --per-class 5
    python data_scripts/domainnet.py verify   --root DATA [--domains ...] [--per-class N]
    python data_scripts/domainnet.py adopt    --source DIR --root DATA         # copy an existing DomainNet

Result: DATA/domainnet/{domain}/{class}/{file} and DATA/domainnet/splits/{domain}_{train,test}.txt
(see data_scripts/_layout.py). --per-class N also writes {domain}_{split}_per{N}_seed{S}.txt: a fixed, seeded
subset with N images of every class in every domain and split, and extracts only those images. The archives are
still downloaded whole (the server offers no per-image access); pass --delete-archives to free their space.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import zipfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_scripts import _layout as L  # noqa: E402
from data_scripts._download import (  # noqa: E402
    DownloadError, copy_files, download, extract, human, remote_size, run_command, zip_problem)
from minclip_unlearn.paradigms import domainnet_classes  # noqa: E402

DOMAINNET_CLASSES = domainnet_classes()

BASE_URL = "https://csr.bu.edu/ftp/visda/2019/multi-source/"  # the official host (ai.bu.edu/M3SDA)
ARCHIVES = {  # domain -> (path under BASE_URL, md5, approx. size in bytes, images listed); clipart/painting: cleaned
    "clipart": ("groundtruth/clipart.zip", "cd0d8f2d77a4e181449b78ed62bccf1e", 1.2e9, 48_129),
    "infograph": ("infograph.zip", "720380b86f9e6ab4805bb38b6bd135f8", 4.0e9, 51_605),
    "painting": ("groundtruth/painting.zip", "1ae32cdb4f98fe7ab5eb0a351768abfd", 3.7e9, 72_266),
    "quickdraw": ("quickdraw.zip", "bdc1b6f09f277da1a263389efe0c7a66", 0.45e9, 172_500),
    "real": ("real.zip", "dcc47055e8935767784b7162e7c7cca6", 5.9e9, 172_947),
    "sketch": ("sketch.zip", "658d8009644040ff7ce30bb2e820850f", 2.5e9, 69_128),
}
MAX_MEMBER = 64 * 10**6  # bytes: the largest DomainNet image is a few MB
CPU_IMAGES_PER_S = 8  # ViT-B-32 feature extraction on a 2-core CPU (benchmarks/extract_throughput.py)
LIST_MD5 = {  # the official train/test lists, domainnet/txt/{domain}_{split}.txt
    ("clipart", "train"): "b4349693a7f9c05c53955725c47ed6cb", ("clipart", "test"): "f5ddbcfd657a3acf9d0f7da10db22565",
    ("infograph", "train"): "379b50054f4ac2018dca4f89421b92d9", ("infograph", "test"): "779626b50869edffe8ea6941c3755c71",
    ("painting", "train"): "7db0e7ca73ad9982f6e1f7f3ef372c0a", ("painting", "test"): "232b35dc53f26d414686ae579e38d9b5",
    ("quickdraw", "train"): "b732ced3939ac8efdd8c0a889dca56cc", ("quickdraw", "test"): "c1a828fdfe216fb109f1c0083a252c6f",
    ("real", "train"): "8ebf02c2075fadd564705f0dc7cd6291", ("real", "test"): "6098816791c3ebed543c71ffa11b9054",
    ("sketch", "train"): "1233bd18aa9a8a200bf4cecf1c34ef3e", ("sketch", "test"): "d8a222e4672cfd585298aa14d02ea441",
}


def _plan(a, domains) -> list[tuple[str, str, str | None]]:
    """[(domain, url, checksum)] for the archives, and print their size and an estimate of the time up front."""
    plan, total, exact, extracted, images = [], 0.0, True, 0.0, 0
    for m in domains:
        path, md5, approx, count = ARCHIVES[m]
        url = a.base_url + path
        size = remote_size(url, timeout=(5, 10)) if not a.no_head else None
        exact &= size is not None
        total += size or approx
        n = min(count, a.per_class * len(DOMAINNET_CLASSES) * 2) if a.per_class else count
        images += n
        extracted += (size or approx) * n / count  # JPEGs barely compress: extracted ~ archive size
        plan.append((m, url, None if a.no_checksum else f"md5:{md5}"))
        print(f"  {m:10s} {human(size or approx):>9s}{'' if size else ' (approx.)'}  {url}")
    disk = extracted + (max(ARCHIVES[m][2] for m in domains) if a.delete_archives else total)
    print(f"download: {human(total)}{'' if exact else ' (approx.)'} for {len(domains)} domain(s); about "
          f"{total / 10e6 / 60:.0f} min at 10 MB/s, {total / 50e6 / 60:.0f} min at 50 MB/s; disk needed: about "
          f"{human(disk)}; then {images:,} images to encode once (about {images / CPU_IMAGES_PER_S / 3600:.1f} h "
          f"with ViT-B-32 on a 2-core CPU, much less on a GPU)")
    return plan


def _subset(root: Path, m: str, per_class: int, seed: int) -> None:
    """Write the seeded --per-class subset lists of domain m from its full lists."""
    for k, split in enumerate(L.DOMAINNET_SPLITS):
        rows = L.read_list(L.domainnet_list(root, m, split))
        L.write_list(L.domainnet_list(root, m, split, per_class, seed),
                     L.subset_rows(rows, per_class, seed, (L.DOMAINNET_DOMAINS.index(m), k)))


def _members(archive: Path, wanted: list[str]) -> list[str]:
    """Listed relative paths -> the zip's member names for them (the zip may put a folder in front)."""
    if why := zip_problem(archive):
        raise DownloadError(f"{archive} is {why}: delete it and run the same command again")
    try:
        with zipfile.ZipFile(archive) as zf:
            names = set(zf.namelist())
    except zipfile.BadZipFile as e:
        raise DownloadError(f"{archive} is not a valid zip ({e}): delete it and run the same command again") from e
    if not wanted:
        return []
    first = wanted[0]
    prefix = next((n[: -len(first)] for n in names if n.endswith(first)), None)
    if prefix is None:
        raise DownloadError(f"{archive.name} does not contain {first}, the first image of its list")
    return [prefix + w for w in wanted if prefix + w in names]


def _install_domain(archive: Path, root: Path, m: str, wanted: list[str] | None) -> None:
    """Extract domain m (every file, or just the wanted relative paths) and move it into root/domainnet/m."""
    members = None if wanted is None else _members(archive, wanted)
    tmp = extract(archive, root / "domainnet", members, max_member=MAX_MEMBER)  # total: at most 4x the archive
    try:
        top = next((d for d in [tmp, *tmp.glob("*"), *tmp.glob("*/*")] if (d / m).is_dir()), None)
        if top is None:
            raise DownloadError(f"{archive.name} holds no '{m}/' folder")
        for p in (top / m).rglob("*"):
            if p.is_file():
                dst = L.domainnet_images(root) / p.relative_to(top)
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(p, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def verify(root: Path, domains, per_class=None, seed=0, quick=False) -> int:
    problems, notes = L.verify_domainnet(root, domains, per_class, seed, decode=not quick)
    what = f"DomainNet {', '.join(domains)}{f' (--per-class {per_class})' if per_class else ''} at {root / 'domainnet'}"
    return L.report(problems, notes, what)


def cmd_download(a) -> int:
    root, domains = Path(a.root), a.domains

    def missing(m: str) -> bool:
        return bool(L.verify_domainnet(root, [m], a.per_class, a.seed, decode=False, progress=False)[0])

    todo = [m for m in domains if missing(m)]
    for m in domains:
        if m not in todo:
            print(f"{m}: already present")
    plan = _plan(a, todo) if todo else []  # sizes and time, up front
    if a.dry_run:
        return 0
    try:
        for m in domains:  # the lists first: small, and --per-class needs them to pick its images
            for split in L.DOMAINNET_SPLITS:
                ck = None if a.no_checksum else f"md5:{LIST_MD5[m, split]}"
                download(a.base_url + f"domainnet/txt/{m}_{split}.txt", L.domainnet_list(root, m, split), ck, progress=False)
            if a.per_class:
                _subset(root, m, a.per_class, a.seed)
        for m, url, checksum in plan:
            if not missing(m):  # e.g. adopted images that only lacked their lists
                print(f"{m}: already present")
                continue
            start = time.time()
            archive = download(url, root / "downloads" / f"{m}.zip", checksum)
            wanted = [e.path for e in L.domainnet_entries(root, [m], a.per_class, a.seed)] if a.per_class else None
            _install_domain(archive, root, m, wanted)
            if a.delete_archives:
                archive.unlink()
            print(f"{m}: done in {time.time() - start:.0f} s")
    except DownloadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return verify(root, domains, a.per_class, a.seed, a.quick)


def _find(source: Path, name: str) -> Path | None:
    """source/name, or one or two folders down (not a full walk: a DomainNet copy holds 600k files)."""
    return next((d / name for d in [source, *source.glob("*"), *source.glob("*/*")] if (d / name).is_file()), None)


def cmd_adopt(a) -> int:
    source, root = Path(a.source).resolve(), Path(a.root)
    top = next((d for d in [source, *source.glob("*"), *source.glob("*/*")] if d.is_dir()
                and any((d / m).is_dir() for m in a.domains)), None)
    if top is None:
        raise SystemExit(f"no DomainNet under {source}: expected folders named {', '.join(a.domains)}")
    found = [m for m in a.domains if (top / m).is_dir()]
    for m in found:
        lists = {s: _find(source, f"{m}_{s}.txt") for s in L.DOMAINNET_SPLITS}
        if all(lists.values()):
            for s, found_list in lists.items():
                copy_files(found_list.parent, L.domainnet_list(root, m, s).parent, [found_list.name], progress=False)
            if a.per_class:
                _subset(root, m, a.per_class, a.seed)
            files = [e.path for e in L.domainnet_entries(root, [m], a.per_class, a.seed)]
            files = [f for f in files if (top / f).is_file()]  # missing ones are reported by verify
        else:
            print(f"{m}: no {m}_train.txt / {m}_test.txt in the source; copying every image. Fetch the official "
                  f"lists with: python data_scripts/domainnet.py download --root {root} --domains {m}")
            files = sorted(p.relative_to(top).as_posix() for p in (top / m).glob("*/*") if p.is_file())
        print(f"{m}: copying {len(files)} images from {top / m}")
        copy_files(top, L.domainnet_images(root), files)
    return verify(root, found, a.per_class, a.seed, a.quick)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(q):
        q.add_argument("--root", required=True, help="data folder; DomainNet goes to ROOT/domainnet")
        q.add_argument("--domains", nargs="+", default=list(L.DOMAINNET_DOMAINS), choices=L.DOMAINNET_DOMAINS,
                       metavar="DOMAIN", help=f"a subset of: {' '.join(L.DOMAINNET_DOMAINS)} (default: all)")
        q.add_argument("--per-class", type=int, metavar="N", help="a fixed subset: N images per class, domain and split")
        q.add_argument("--seed", type=int, default=0, help="seed of the --per-class subset (default 0)")
        q.add_argument("--quick", action="store_true", help="verify presence only, do not decode every image")

    d = sub.add_parser("download", help="fetch lists and archives (resumable), check md5, extract, verify")
    common(d)
    d.add_argument("--base-url", default=BASE_URL, help=f"mirror of the official folder (default {BASE_URL})")
    d.add_argument("--no-checksum", action="store_true", help="skip the md5 checks (e.g. for a mirror with other files)")
    d.add_argument("--delete-archives", action="store_true", help="delete each zip once extracted")
    d.add_argument("--dry-run", action="store_true", help="print sizes and the time estimate, download nothing")
    d.add_argument("--no-head", action="store_true", help="do not ask the server for exact sizes")
    common(sub.add_parser("verify", help="check ROOT/domainnet against its split lists"))
    ad = sub.add_parser("adopt", help="copy a DomainNet you already have into ROOT/domainnet (the source is never changed)")
    common(ad)
    ad.add_argument("--source", required=True, help="your DomainNet folder (holding clipart/, sketch/, ...)")
    a = p.parse_args(argv)
    if a.per_class is not None and a.per_class < 1:
        p.error("--per-class must be at least 1")
    cmds = {"download": cmd_download, "adopt": cmd_adopt,
            "verify": lambda a: verify(Path(a.root), a.domains, a.per_class, a.seed, a.quick)}
    return run_command(cmds[a.cmd], a)


if __name__ == "__main__":
    sys.exit(main())
