"""Feature caches let nothing wrong in (issue 16): a checkpoint is identified by its content, not its file name;
chunks and caches with wrong shapes, counts or NaN are refused on write and read, naming the file; a resume
re-encodes a bad chunk."""
import json
import os

import pytest
import torch

from data_scripts import extract_features as X
from data_scripts.fake_data import make_fake_domainnet
from minclip_unlearn import datasets as DS
from minclip_unlearn.datasets import CacheCorrupt, CacheMismatch, cache_dir, load_features, read_meta


@pytest.fixture(autouse=True)
def package_cache(tmp_path, monkeypatch):
    """A fresh package cache (where checkpoint digests are remembered) and an empty in-process memo."""
    monkeypatch.setenv("MINCLIP_CACHE", str(tmp_path / "pkgcache"))
    monkeypatch.setattr(DS, "_sha_memo", {})


@pytest.fixture(scope="module")
def toy_models():
    """Two different random-init ToyWorld CLIPs: (model, preprocess) each."""
    import open_clip

    from minclip_unlearn.toyworld import TOY_CLIP_NAME

    out = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model, _, preprocess = open_clip.create_model_and_transforms(TOY_CLIP_NAME)
        out.append((model.eval(), preprocess))
    return out


@pytest.fixture(scope="module")
def fake_dn(tmp_path_factory):
    root = tmp_path_factory.mktemp("dn")
    make_fake_domainnet(root, domains=("clipart",), n_classes=2, per_class=3)
    return root


def _extract(model, preprocess, ckpt, fake_dn, out_root, **kw):
    image_root, entries = X.dataset_entries("domainnet", fake_dn, ["clipart"])
    out = cache_dir(out_root, "domainnet", "toy", ckpt)
    meta = {"dataset": "domainnet", "model": "toy", "pretrained": str(ckpt)}
    return X.extract(model, preprocess, image_root, entries, out, meta, chunk_size=5, batch_size=4, progress=False,
                     **kw), entries


def test_two_checkpoints_with_one_file_name_get_two_caches(toy_models, fake_dn, tmp_path):
    a, b = tmp_path / "a/open_clip_pytorch_model.bin", tmp_path / "b/open_clip_pytorch_model.bin"
    for path, (model, _) in zip((a, b), toy_models):
        path.parent.mkdir()
        torch.save(model.state_dict(), path)
    assert cache_dir(tmp_path, "pacs", "toy", a) != cache_dir(tmp_path, "pacs", "toy", b)
    out_a, _ = _extract(*toy_models[0], a, fake_dn, tmp_path / "feats")
    out_b, _ = _extract(*toy_models[1], b, fake_dn, tmp_path / "feats")
    fa = load_features(out_a, model="toy", pretrained=a)["all"].features
    fb = load_features(out_b, model="toy", pretrained=b)["all"].features
    assert not torch.equal(fa, fb)  # before: the second extraction said "already complete" and served fa
    assert read_meta(out_a)["pretrained_sha256"] == DS.checkpoint_sha256(a)
    with pytest.raises(CacheMismatch, match="same name, other weights"):
        load_features(out_a, model="toy", pretrained=b)  # a's cache asked for with b's content: refused
    with pytest.raises(CacheMismatch, match="same name, other weights"):  # and extraction into it is refused too
        X.extract(*toy_models[1], *X.dataset_entries("domainnet", fake_dn, ["clipart"]), out_a,
                  {"dataset": "domainnet", "model": "toy", "pretrained": str(b)}, chunk_size=5, progress=False)


def test_checkpoint_digest_is_computed_once_per_path_size_and_mtime(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    path.write_bytes(b"weights" * 1000)
    calls = []
    real = DS.hashlib.sha256

    def counting(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(DS.hashlib, "sha256", counting)
    first = DS.checkpoint_sha256(path)
    assert first == real(path.read_bytes()).hexdigest()
    assert DS.checkpoint_sha256(path) == first and len(calls) == 1  # memo in this process
    monkeypatch.setattr(DS, "_sha_memo", {})  # a new process: read from the package cache
    assert DS.checkpoint_sha256(path) == first and len(calls) == 1
    path.write_bytes(b"other weights" * 1000)  # new content, size and mtime: computed again
    assert DS.checkpoint_sha256(path) != first and len(calls) == 2


def test_a_chunk_with_fewer_rows_is_re_encoded_on_resume(toy_models, fake_dn, tmp_path, capsys):
    model, preprocess = toy_models[0]
    ckpt = tmp_path / "toy.pt"
    torch.save(model.state_dict(), ckpt)
    out = cache_dir(tmp_path / "feats", "domainnet", "toy", ckpt)
    image_root, entries = X.dataset_entries("domainnet", fake_dn, ["clipart"])
    meta = {"dataset": "domainnet", "model": "toy", "pretrained": str(ckpt)}
    calls = []

    def failing(im):  # encodes chunk 0 (5 images), then fails: the run stops with chunk 0 saved
        calls.append(1)
        if len(calls) == 6:
            raise OSError("disk pulled out")
        return preprocess(im)

    with pytest.raises(RuntimeError):
        X.extract(model, _Same(failing, preprocess), image_root, entries, out, meta, chunk_size=5, batch_size=5,
                  workers=1, progress=False)
    chunk = out / "chunks/00000.pt"
    torch.save(torch.load(chunk)[:3], chunk)  # a short chunk, as a bug or a bad disk could leave
    X.extract(model, preprocess, image_root, entries, out, meta, chunk_size=5, batch_size=5, progress=False)
    assert "3 rows for 5 images; encoding it again" in capsys.readouterr().out
    feats = load_features(out)["all"]
    assert len(feats) == len(entries) == 12  # before: marked complete, then an IndexError on load
    fresh = X.extract(model, preprocess, image_root, entries, tmp_path / "fresh", meta, chunk_size=5, progress=False)
    assert torch.equal(feats.features, load_features(fresh)["all"].features)


class _Same:
    """A preprocess stand-in that calls fn but has the model's preprocess repr (so the cache meta matches)."""

    def __init__(self, fn, like):
        self.fn, self.like = fn, like

    def __call__(self, im):
        return self.fn(im)

    def __repr__(self):
        return repr(self.like)


def test_nan_features_are_refused_on_write(toy_models, fake_dn, tmp_path):
    model, preprocess = toy_models[0]
    with torch.no_grad():
        nan_model = _nan_copy(model)  # its image tower returns NaN for every image
    image_root, entries = X.dataset_entries("domainnet", fake_dn, ["clipart"])
    out = tmp_path / "cache"
    with pytest.raises(CacheCorrupt, match=r"chunk 0 of .*NaN or inf \(e\.g\. clipart/"):
        X.extract(nan_model, preprocess, image_root, entries, out,
                  {"dataset": "domainnet", "model": "toy", "pretrained": None}, chunk_size=5, progress=False)
    assert not (out / "chunks/00000.pt").exists() and not read_meta(out)["complete"]


def _nan_copy(model):
    import copy

    m = copy.deepcopy(model)
    m.visual.conv1.weight.fill_(float("nan"))
    return m


@pytest.fixture
def good_cache(toy_models, fake_dn, tmp_path):
    model, preprocess = toy_models[0]
    ckpt = tmp_path / "toy.pt"
    torch.save(model.state_dict(), ckpt)
    out, _ = _extract(model, preprocess, ckpt, fake_dn, tmp_path / "feats")
    return out


@pytest.mark.parametrize("damage, message", [
    ("nan", "1 feature row\\(s\\) hold NaN or inf \\(first: clipart/"),
    ("fewer_rows", "11 feature rows but 12 labels"),
    ("wide", "features are 7-d but meta.json says"),
    ("label", "labels outside 0..344"),
    ("truncated", "cannot be read"),
])
def test_a_damaged_cache_is_refused_on_read_naming_the_file(good_cache, damage, message):
    file = good_cache / "features.pt"
    blob = torch.load(file, weights_only=True)
    if damage == "nan":
        blob["features"][3, 0] = float("nan")  # before: loaded, and every NaN row predicted class 0
    elif damage == "fewer_rows":
        blob["features"] = blob["features"][:-1]
    elif damage == "wide":
        blob["features"] = blob["features"][:, :7]
    elif damage == "label":
        blob["labels"][0] = 999
    torch.save(blob, file)
    if damage == "truncated":
        file.write_bytes(file.read_bytes()[:100])
    with pytest.raises(CacheCorrupt, match=message) as e:
        load_features(good_cache)
    assert str(file) in str(e.value) and "--overwrite" in str(e.value)


def test_a_damaged_complete_cache_is_encoded_again(toy_models, fake_dn, tmp_path, capsys):
    model, preprocess = toy_models[0]
    ckpt = tmp_path / "toy.pt"
    torch.save(model.state_dict(), ckpt)
    out, _ = _extract(model, preprocess, ckpt, fake_dn, tmp_path / "feats")
    good = load_features(out)["all"].features
    (out / "features.pt").write_bytes(b"")
    _extract(model, preprocess, ckpt, fake_dn, tmp_path / "feats")
    assert "is damaged" in capsys.readouterr().out
    assert torch.equal(load_features(out)["all"].features, good)


def test_meta_count_must_match(good_cache):
    meta = json.loads((good_cache / "meta.json").read_text())
    (good_cache / "meta.json").write_text(json.dumps({**meta, "n_images": meta["n_images"] + 1}))
    with pytest.raises(CacheCorrupt, match="n_images in meta.json"):
        load_features(good_cache)
    assert os.path.isfile(good_cache / "features.pt")  # refused, never deleted by a reader


def test_extract_cli_ctrl_c_and_errors_are_one_line(fake_dn, tmp_path, monkeypatch, capsys):
    args = ["--model", "toy", "--pretrained", "none", "--dataset", "domainnet", "--root", str(fake_dn),
            "--out", str(tmp_path), "--domains", "clipart"]

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(X, "extract", interrupted)
    assert X.main(args) == 130
    assert capsys.readouterr().err.strip() == "interrupted; run the same command again to resume"
    assert X.main([*args[:-2], "--domains", "sketch"]) == 2  # no sketch lists in the fake tree
    err = capsys.readouterr().err
    assert err.startswith("error: split list") and "missing" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as e:
        X.main([*args, "--chunk-size", "0"])
    assert e.value.code == 2 and "--chunk-size must be at least 1" in capsys.readouterr().err


def test_a_damaged_digest_store_is_ignored_and_rewritten(tmp_path):
    from minclip_unlearn.cache import cache_dir as package_cache

    store = package_cache("checkpoint-sha256.json")
    store.parent.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "ckpt.pt"
    path.write_bytes(b"w" * 100)
    for junk in ('[{"assignment": "projector"}]', "not json", json.dumps({str(path.resolve()): "x"})):
        store.write_text(junk)
        DS._sha_memo.clear()
        assert DS.checkpoint_sha256(path) == DS.hashlib.sha256(b"w" * 100).hexdigest()
        assert isinstance(json.loads(store.read_text()), dict)
