"""Feature extraction: the cache holds exactly model.visual(x) with visual.proj skipped; it resumes; it is refused
for another model; minclip_unlearn.datasets finds it through MINCLIP_FEATURES or the config file."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from data_scripts import extract_features as X
from data_scripts.fake_data import make_fake_domainnet, make_fake_pacs
from minclip_unlearn.datasets import CacheMismatch, cache_dir, load_features, read_meta, real_features

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A random-init ToyWorld CLIP saved as a checkpoint: (path, model, preprocess)."""
    import open_clip

    from minclip_unlearn.models import load_clip
    from minclip_unlearn.toyworld import TOY_CLIP_NAME

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("toy") / "toy-random.pt"
    torch.save(open_clip.create_model(TOY_CLIP_NAME).state_dict(), path)
    model, preprocess, _ = load_clip("toy", path)
    return path, model, preprocess


@pytest.fixture(scope="module")
def fake_dn(tmp_path_factory):
    root = tmp_path_factory.mktemp("dn")
    make_fake_domainnet(root, domains=("clipart", "sketch"), n_classes=3, per_class=2)
    return root


def test_cache_equals_visual_without_proj_vitb32(vitb32, tmp_path):
    model, preprocess, _ = vitb32
    make_fake_pacs(tmp_path, per_cell=1, size=40)
    image_root, entries = X.dataset_entries("pacs", tmp_path, ["photo", "sketch"])
    entries = entries[:4] + entries[-4:]  # JPEG photos and PNG sketches; few, as ViT-B-32 is slow on a CPU
    proj = model.visual.proj
    out = X.extract(model, preprocess, image_root, entries, tmp_path / "cache",
                    {"dataset": "pacs", "model": "ViT-B-32", "pretrained": None}, batch_size=5, chunk_size=8,
                    progress=False)
    assert model.visual.proj is proj  # restored
    feats = load_features(out, model="ViT-B-32", pretrained=None, dataset="pacs")
    x = torch.stack([preprocess(Image.open(image_root / e.path).convert("RGB")) for e in entries])
    with torch.no_grad():
        model.visual.proj = None
        try:
            direct = model.visual(x)
        finally:
            model.visual.proj = proj
    assert direct.shape == (8, 768)
    torch.testing.assert_close(feats["all"].features, direct.half().float(), atol=2e-3, rtol=2e-3)
    assert feats["all"].labels.tolist() == [e.label for e in entries]
    assert feats["all"].domains.tolist() == [0] * 4 + [3] * 4  # photo, sketch in the grid's domain order
    assert set(feats) == {"all", "train", "crossval"} and len(feats["train"]) + len(feats["crossval"]) == 8
    meta = read_meta(out)
    assert meta["complete"] and meta["pretrained_tag"] == "random" and meta["dtype"] == "float16"
    assert meta["preprocess"]["size"] == [224, 224] and "Normalize" in meta["preprocess"]["repr"]
    assert meta["versions"]["open_clip"] and meta["versions"]["minclip_unlearn"]
    assert torch.load(out / "features.pt", weights_only=True)["features"].dtype == torch.float16
    with pytest.raises(CacheMismatch, match="ViT-B-16"):
        load_features(out, model="ViT-B-16")
    with pytest.raises(CacheMismatch, match="openai"):
        load_features(out, model="ViT-B-32", pretrained="openai")


def test_extract_cli_with_the_toy_model(toy, fake_dn, tmp_path, monkeypatch):
    ckpt, model, preprocess = toy
    args = ["--model", "toy", "--pretrained", str(ckpt), "--dataset", "domainnet", "--root", str(fake_dn),
            "--out", str(tmp_path), "--domains", "clipart", "sketch", "--chunk-size", "5", "--batch-size", "4"]
    assert X.main(args) == 0
    path = cache_dir(tmp_path, "domainnet", "toy", ckpt)
    assert path.parent == tmp_path / "domainnet" and path.name.startswith("toy-toy-random-")  # + sha256[:8]
    feats = load_features(path, model="toy", pretrained=ckpt, dataset="domainnet")
    assert set(feats) == {"all", "train", "test"} and len(feats["all"]) == 2 * 2 * 3 * 2
    image_root, entries = X.dataset_entries("domainnet", fake_dn, ["clipart", "sketch"])
    expect = X.encode_paths(model, preprocess, [image_root / e.path for e in entries])
    torch.testing.assert_close(feats["all"].features, expect.half().float(), atol=2e-3, rtol=2e-3)
    with pytest.raises(CacheMismatch, match="model='toy'"):
        load_features(path, model="ViT-B-32")
    monkeypatch.setenv("MINCLIP_FEATURES", str(tmp_path))
    found = real_features("domainnet", model="toy", pretrained=ckpt)
    assert found is not None and found["test"].meta["split"] == "test" and "toy" in found["test"].meta["name"]
    assert real_features("pacs", model="toy", pretrained=ckpt) is None  # no PACS cache: the book uses ToyWorld


def test_extraction_resumes_from_its_chunks_and_refuses_another_model(toy, fake_dn, tmp_path):
    ckpt, model, preprocess = toy
    image_root, entries = X.dataset_entries("domainnet", fake_dn, ["clipart"])
    meta = {"dataset": "domainnet", "model": "toy", "pretrained": str(ckpt)}
    calls = []

    class Counting:  # the model's preprocess, counting its calls; fails on call number fail_at
        def __init__(self, fail_at=None):
            self.fail_at = fail_at

        def __call__(self, im):
            calls.append(1)
            if len(calls) == self.fail_at:
                raise OSError("disk pulled out")
            return preprocess(im)

        def __repr__(self):
            return repr(preprocess)

    out = tmp_path / "cache"
    with pytest.raises(RuntimeError, match="cannot read"):  # the 7th image fails: chunk 0 (5 images) is saved
        X.extract(model, Counting(7), image_root, entries, out, meta, batch_size=2, chunk_size=5, workers=1,
                  progress=False)
    assert (out / "chunks/00000.pt").is_file() and not read_meta(out)["complete"]
    with pytest.raises(FileNotFoundError, match="incomplete"):
        load_features(out)
    calls.clear()
    X.extract(model, Counting(), image_root, entries, out, meta, batch_size=2, chunk_size=5, progress=False)
    assert len(calls) == len(entries) - 5  # chunk 0 was not encoded again
    fresh = X.extract(model, preprocess, image_root, entries, tmp_path / "fresh", meta, chunk_size=5, progress=False)
    assert torch.equal(load_features(out)["all"].features, load_features(fresh)["all"].features)
    with pytest.raises(CacheMismatch, match="model='toy'"):
        X.extract(model, preprocess, image_root, entries, out, {**meta, "model": "ViT-B-32"}, progress=False)
    with pytest.raises(CacheMismatch, match="another image list"):
        X.extract(model, preprocess, image_root, entries[:4], out, meta, chunk_size=5, progress=False)


def test_real_features_reads_the_config_file(tmp_path, monkeypatch):
    monkeypatch.delenv("MINCLIP_FEATURES", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert real_features("pacs") is None  # nothing configured
    (tmp_path / "config").mkdir()
    (tmp_path / "config/minclip_unlearn.yaml").write_text(f"features: {tmp_path / 'feats'}\n")
    assert real_features("pacs") is None  # configured, but nothing extracted yet
    path = cache_dir(tmp_path / "feats", "pacs", "ViT-B-32", "openai")
    path.mkdir(parents=True)
    (path / "meta.json").write_text('{"dataset": "pacs", "model": "ViT-B-16", "pretrained_tag": "openai", "complete": true}')
    with pytest.raises(CacheMismatch, match="ViT-B-16"):  # a cache of another model is refused, not used
        real_features("pacs")
    (path / "meta.json").write_text('{"dataset": "pacs", "model": "ViT-B-32", "pretrained_tag": "openai", "complete": false}')
    with pytest.warns(UserWarning, match="incomplete"):
        assert real_features("pacs") is None


def test_the_scripts_run_as_files_from_any_folder(tmp_path):
    """`python data_scripts/X.py --help` works (one interpreter runs all four, as the imports dominate the time)."""
    code = (f"import runpy, sys\n"
            f"for name in ['pacs', 'domainnet', 'extract_features', 'fake_data']:\n"
            f"    sys.argv = [{str(ROOT / 'data_scripts')!r} + '/' + name + '.py', '--help']\n"
            f"    try:\n"
            f"        runpy.run_path(sys.argv[0], run_name='__main__')\n"
            f"    except SystemExit as e:\n"
            f"        assert e.code == 0, name\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    for words in ("pacs.py download --root DATA", "domainnet.py download --root DATA", "--pretrained", "fake"):
        assert words in r.stdout
