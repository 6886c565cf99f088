"""PACS and DomainNet: fake trees in the real layouts verify; broken ones fail naming the file; adopt never changes
its source; the download commands work end to end against a local server."""
import hashlib
import os
from pathlib import Path

import pytest

from data_scripts import _layout as L
from data_scripts import domainnet, pacs
from data_scripts.fake_data import make_fake_domainnet, make_fake_pacs, zip_tree

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def tree_digest(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file below folder (plus the folder set), to compare before/after."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def fake_pacs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pacs_src")
    make_fake_pacs(root, per_cell=2)
    return root


# ---------------------------------------------------------------- PACS
def test_fake_pacs_has_the_real_layout(fake_pacs):
    assert (fake_pacs / "pacs/splits/photo_train_kfold.txt").read_text().splitlines()[0].endswith(" 1")
    assert list((fake_pacs / "pacs/images/sketch/dog").glob("*.png"))
    assert L.verify_pacs(fake_pacs, progress=False)[0] == []


def test_pacs_verify_cli_passes_on_a_good_tree(fake_pacs, capsys):
    assert pacs.main(["verify", "--root", str(fake_pacs)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "official PACS release has 2048" in out  # a fake is smaller: noted, not fatal


@pytest.mark.parametrize("script", [pacs, domainnet])
def test_every_command_has_help(script, capsys):
    for cmd in ([], ["download"], ["verify"], ["adopt"]):
        with pytest.raises(SystemExit) as e:
            script.main([*cmd, "--help"])
        assert e.value.code == 0 and "--root" in capsys.readouterr().out or not cmd


def test_pacs_missing_or_corrupt_image_fails_naming_the_file(tmp_path, capsys):
    make_fake_pacs(tmp_path, per_cell=1)
    (tmp_path / "pacs/images/photo/dog/pho_0_0000.jpg").unlink()
    (tmp_path / "pacs/images/sketch/horse/ske_4_0000.png").write_bytes(b"\x89PNG not really")
    assert pacs.main(["verify", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "photo/dog/pho_0_0000.jpg: missing" in out
    assert "sketch/horse/ske_4_0000.png: corrupt image" in out
    assert pacs.main(["verify", "--root", str(tmp_path), "--quick"]) == 1  # --quick still sees the missing one


def test_pacs_list_label_must_match_its_folder(tmp_path, capsys):
    make_fake_pacs(tmp_path, per_cell=1)
    lst = L.pacs_list(tmp_path, "cartoon", "crossval")
    lst.write_text(lst.read_text().replace(" 1\n", " 3\n", 1))
    assert pacs.main(["verify", "--root", str(tmp_path), "--quick"]) == 1
    assert "which its folders disagree with" in capsys.readouterr().out


def test_pacs_adopt_copies_and_leaves_the_source_byte_identical(fake_pacs, tmp_path):
    before = tree_digest(fake_pacs)
    assert pacs.main(["adopt", "--source", str(fake_pacs), "--root", str(tmp_path / "data")]) == 0
    assert tree_digest(fake_pacs) == before
    src = fake_pacs / "pacs/images/photo/dog/pho_0_0000.jpg"
    dst = tmp_path / "data/pacs/images/photo/dog/pho_0_0000.jpg"
    assert dst.read_bytes() == src.read_bytes() and dst.stat().st_ino != src.stat().st_ino  # a copy, not a link


def test_pacs_adopt_domainbed_layout_without_lists(fake_pacs, tmp_path, capsys):
    domainbed = tmp_path / "domainbed_data/PACS"  # DomainBed: PACS/{domain}/{class}/..., no split lists
    domainbed.parent.mkdir()
    os.symlink(fake_pacs / "pacs/images", domainbed)
    before = tree_digest(fake_pacs)
    assert pacs.main(["adopt", "--source", str(tmp_path / "domainbed_data"), "--root", str(tmp_path / "a"), "--quick"]) == 1
    assert "--splits DIR" in capsys.readouterr().out
    assert pacs.main(["adopt", "--source", str(domainbed), "--root", str(tmp_path / "b"),
                      "--splits", str(fake_pacs / "pacs/splits")]) == 0
    assert pacs.main(["adopt", "--source", str(domainbed), "--root", str(tmp_path / "c"), "--derive-lists"]) == 0
    assert "derived from the folder tree" in capsys.readouterr().out
    assert tree_digest(fake_pacs) == before


# ---------------------------------------------------------------- DomainNet
@pytest.fixture(scope="module")
def fake_dn(tmp_path_factory):
    root = tmp_path_factory.mktemp("dn_src")
    make_fake_domainnet(root, domains=("clipart", "sketch"), n_classes=3, per_class=4)
    return root


def test_fake_domainnet_verifies_and_broken_files_are_named(fake_dn, tmp_path, capsys):
    assert domainnet.main(["verify", "--root", str(fake_dn), "--domains", "clipart", "sketch"]) == 0
    assert L.read_list(L.domainnet_list(fake_dn, "clipart", "train"))[0][0].startswith("clipart/aircraft_carrier/")
    assert domainnet.main(["verify", "--root", str(fake_dn), "--domains", "real"]) == 1  # not there
    make_fake_domainnet(tmp_path, domains=("clipart",), n_classes=2, per_class=2)
    victim = sorted((tmp_path / "domainnet/clipart/airplane").glob("*.jpg"))[0]
    victim.write_bytes(victim.read_bytes()[:40])  # truncated JPEG
    capsys.readouterr()
    assert domainnet.main(["verify", "--root", str(tmp_path), "--domains", "clipart"]) == 1
    assert f"clipart/airplane/{victim.name}: corrupt image" in capsys.readouterr().out


def test_domainnet_adopt_leaves_the_source_byte_identical(fake_dn, tmp_path):
    before = tree_digest(fake_dn)
    # a copy as DomainBed keeps it (domain folders) with the lists next to them
    assert domainnet.main(["adopt", "--source", str(fake_dn), "--root", str(tmp_path), "--domains", "clipart", "sketch",
                           "--per-class", "2"]) == 0
    assert tree_digest(fake_dn) == before
    assert len(list((tmp_path / "domainnet/clipart").rglob("*.jpg"))) == 3 * 2 * 2  # classes x per-class x splits


def test_subset_lists_are_fixed_and_seeded():
    rows = [(f"c/{k % 5}/{k}.jpg", k % 5) for k in range(100)]
    a = L.subset_rows(rows, 3, seed=0, key=(1, 0))
    assert a == L.subset_rows(rows, 3, seed=0, key=(1, 0)) and len(a) == 15
    assert a != L.subset_rows(rows, 3, seed=1, key=(1, 0))
    assert a == sorted(a, key=rows.index)  # list order kept


# ---------------------------------------------------------------- downloads end to end (local server)
from tests.test_data_download import server  # noqa: E402,F401  (the local HTTP server fixture)


def test_pacs_download_end_to_end(server, fake_pacs, tmp_path, capsys):
    archive = zip_tree(fake_pacs / "pacs", tmp_path / "pacs.zip", prefix="pacs/")  # Dassl's layout
    server.files["/pacs.zip"] = archive.read_bytes()
    server.cut = 1  # and the connection drops once
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    root = tmp_path / "data"
    assert pacs.main(["download", "--root", str(root), "--url", server.url + "/pacs.zip", "--sha256", sha]) == 0
    assert len(server.log) >= 3  # HEAD for the size, a GET that was cut, a GET that completed it
    assert tree_digest(root / "pacs") == tree_digest(fake_pacs / "pacs")
    assert not (root / "downloads/pacs.zip").exists() and not list(root.glob(".extract-*"))
    assert pacs.main(["download", "--root", str(root), "--url", server.url + "/pacs.zip"]) == 0  # present: no fetch
    assert "already" in capsys.readouterr().out


def test_pacs_download_with_a_wrong_checksum_installs_nothing(server, fake_pacs, tmp_path, capsys):
    server.files["/pacs.zip"] = zip_tree(fake_pacs / "pacs", tmp_path / "pacs.zip", prefix="pacs/").read_bytes()
    root = tmp_path / "data"
    assert pacs.main(["download", "--root", str(root), "--url", server.url + "/pacs.zip", "--sha256", "ab" * 32]) == 2
    assert "expected" in capsys.readouterr().err
    assert not (root / "pacs").exists() and not (root / "downloads/pacs.zip").exists()
    assert not (root / "downloads/pacs.zip.part").exists()


def test_domainnet_download_end_to_end_with_per_class(server, fake_dn, tmp_path, capsys):
    for m, (path, *_) in domainnet.ARCHIVES.items():
        if m in ("clipart", "sketch"):
            server.files["/" + path] = zip_tree(fake_dn / "domainnet", tmp_path / f"{m}.zip", exclude=("splits", *[
                d for d in L.DOMAINNET_DOMAINS if d != m])).read_bytes()
            for split in L.DOMAINNET_SPLITS:
                server.files[f"/domainnet/txt/{m}_{split}.txt"] = L.domainnet_list(fake_dn, m, split).read_bytes()
    root = tmp_path / "data"
    args = ["download", "--root", str(root), "--domains", "clipart", "sketch", "--base-url", server.url + "/",
            "--no-checksum"]
    assert domainnet.main(args + ["--per-class", "1", "--delete-archives"]) == 0
    out = capsys.readouterr().out
    assert "min at 10 MB/s" in out and "disk needed" in out and "images to encode" in out  # reported up front
    assert len(list((root / "domainnet/sketch").rglob("*.jpg"))) == 3 * 1 * 2
    assert L.domainnet_list(root, "sketch", "test", 1, 0).is_file()
    assert domainnet.main(args) == 0  # the full set: every listed image
    assert tree_digest(root / "domainnet/clipart") == tree_digest(fake_dn / "domainnet/clipart")


def test_pacs_known_broken_file_is_a_note_not_a_failure(tmp_path, capsys):
    from data_scripts.extract_features import dataset_entries

    make_fake_pacs(tmp_path, per_cell=1)
    bad = next(iter(L.PACS_KNOWN_BAD))  # sketch/dog/n02103406_4068-1.png, which Dassl skips
    for split in ("train", "test"):
        lst = L.pacs_list(tmp_path, "sketch", split)
        lst.write_text(lst.read_text() + f"{bad} 1\n")
    assert pacs.main(["verify", "--root", str(tmp_path)]) == 0  # listed but absent
    assert "known broken file" in capsys.readouterr().out
    (L.pacs_images(tmp_path) / bad).write_bytes(b"not a png")
    assert pacs.main(["verify", "--root", str(tmp_path)]) == 0  # listed but corrupt
    _, entries = dataset_entries("pacs", tmp_path)
    assert bad not in {e.path for e in entries} and len(entries) == 28
