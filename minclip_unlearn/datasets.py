"""Datasets as the method sees them: pre-projection image features with class and domain labels."""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .paradigms import ConceptGrid, grid_for


@dataclass
class FeatureSet:
    """N images of a grid as pre-projection features (N, D), class labels (N,) and domain labels (N,)."""

    features: torch.Tensor
    labels: torch.Tensor
    domains: torch.Tensor
    grid: ConceptGrid
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.features.shape[0]

    def subset(self, keep: torch.Tensor) -> "FeatureSet":
        """(N,) bool or index tensor -> the FeatureSet of those rows."""
        return FeatureSet(self.features[keep], self.labels[keep], self.domains[keep], self.grid, dict(self.meta))


# ---------------------------------------------------------------- cached features of real datasets
# Written by data_scripts/extract_features.py, read here. One cache per dataset and model:
#
#     $MINCLIP_FEATURES/{dataset}/{model}-{tag}/meta.json     model, pretrained, pretrained_sha256, preprocess,
#                                                              versions, subset, n_images, dim, complete
#     $MINCLIP_FEATURES/{dataset}/{model}-{tag}/features.pt   {"features": (N, D) float16 pre-projection (visual.proj
#                                                              skipped), "labels": (N,), "domains": (N,),
#                                                              "paths": [N relative image paths], "splits": [N names]}
#
# dataset: pacs | domainnet; tag: the pretrained tag ("openai"), a checkpoint's file stem and the first 8 hex digits
# of its sha256 ("open_clip_pytorch_model-1a2b3c4d": two checkpoints with one file name get two caches), or "random".
# A checkpoint is identified by its content: meta.json records its sha256 and a cache of other content is refused.
# Splits: PACS train / crossval (its official lists; every image is in exactly one), DomainNet train / test.
FEATURES_ENV = "MINCLIP_FEATURES"
META_FILE, FEATURES_FILE = "meta.json", "features.pt"
_TITLES = {"pacs": "PACS", "domainnet": "DomainNet"}


_SHA_FILE = "checkpoint-sha256.json"  # in the package cache: {resolved path: [size, mtime_ns, sha256]}
_sha_memo: dict[tuple[str, int, int], str] = {}


class CacheMismatch(ValueError):
    """A feature cache made with another model, pretrained tag, checkpoint or dataset than the one asked for."""


class CacheCorrupt(ValueError):
    """A feature cache (or one of its chunks) whose shapes, counts or values are wrong; the message names the file."""


def _sha_store() -> Path:
    from .cache import cache_dir as package_cache

    return package_cache(_SHA_FILE)


def checkpoint_sha256(path: str | os.PathLike) -> str:
    """A checkpoint file -> the sha256 of its bytes, computed once per (path, size, mtime) and remembered on disk."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key in _sha_memo:
        return _sha_memo[key]
    store = _sha_store()
    try:
        known = json.loads(store.read_text()) if store.is_file() else {}
    except (OSError, ValueError):
        known = {}
    if not isinstance(known, dict):  # damaged or foreign: start afresh
        known = {}
    entry = known.get(key[0])
    if isinstance(entry, list) and len(entry) == 3 and entry[:2] == [key[1], key[2]] and isinstance(entry[2], str):
        _sha_memo[key] = known[key[0]][2]
        return _sha_memo[key]
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    _sha_memo[key] = digest = h.hexdigest()
    try:
        from .cache import atomic_text

        atomic_text(store, json.dumps({**known, key[0]: [key[1], key[2], digest]}, indent=0))
    except OSError:  # a read-only cache folder: the digest is still remembered in this process
        pass
    return digest


def pretrained_sha256(pretrained) -> str | None:
    """The sha256 of pretrained if it names an existing checkpoint file, else None (a tag, or random init)."""
    return checkpoint_sha256(pretrained) if pretrained is not None and Path(str(pretrained)).is_file() else None


def pretrained_tag(pretrained) -> str:
    """None -> 'random'; a checkpoint path -> its file stem; a tag -> itself."""
    if pretrained is None:
        return "random"
    p = Path(str(pretrained))
    return p.stem if p.suffix or p.is_file() else str(pretrained)


def cache_dir(root: str | os.PathLike, dataset: str, model: str, pretrained) -> Path:
    """Where the cache of (dataset, model, pretrained) lives under a features root (a file: stem + sha256[:8])."""
    sha = pretrained_sha256(pretrained)
    tag = pretrained_tag(pretrained) + (f"-{sha[:8]}" if sha else "")
    return Path(root) / dataset / f"{model}-{tag}"


def check_meta(meta: dict, path, model: str | None = None, pretrained=None, dataset: str | None = None) -> None:
    """Raise CacheMismatch, naming both sides, if meta is not for the requested model / pretrained / dataset.

    A pretrained checkpoint file is compared by content (sha256), not by its name.
    """
    want = {"model": model, "pretrained": None if pretrained is None else pretrained_tag(pretrained), "dataset": dataset}
    have = {"model": meta.get("model"), "pretrained": meta.get("pretrained_tag"), "dataset": meta.get("dataset")}
    bad = [k for k, v in want.items() if v is not None and v != have[k]]
    if bad:
        raise CacheMismatch(
            f"the feature cache {path} was made with {', '.join(f'{k}={have[k]!r}' for k in bad)}, not "
            f"{', '.join(f'{k}={want[k]!r}' for k in bad)}: its features belong to another image tower. "
            f"Extract features for this model (data_scripts/extract_features.py) or load the matching one.")
    sha = pretrained_sha256(pretrained)
    if sha is not None and meta.get("pretrained_sha256") != sha:
        had = meta.get("pretrained_sha256")
        raise CacheMismatch(
            f"the feature cache {path} was made with " + (f"a checkpoint of sha256 {had[:12]}..." if had else
                                                           "a checkpoint whose content it did not record")
            + f", not {str(pretrained)!r} (sha256 {sha[:12]}...): same name, other weights. Extract features for "
            "this checkpoint (data_scripts/extract_features.py; --overwrite replaces the old cache).")


def check_features(blob: dict, file, meta: dict | None = None, grid: ConceptGrid | None = None) -> None:
    """Raise CacheCorrupt naming file unless blob holds (N, D) finite features and N labels, domains, paths, splits."""
    def bad(why: str):
        return CacheCorrupt(f"{file}: {why}; the feature cache is damaged: extract it again "
                            "(data_scripts/extract_features.py ... --overwrite)")

    if not isinstance(blob, dict) or not {"features", "labels", "domains", "paths", "splits"} <= set(blob):
        raise bad("expected a dict of features, labels, domains, paths and splits")
    feats = blob["features"]
    if not isinstance(feats, torch.Tensor) or feats.ndim != 2:
        raise bad(f"features must be an (N, D) tensor, got {getattr(feats, 'shape', type(feats).__name__)}")
    n = feats.shape[0]
    counts = {k: len(blob[k]) for k in ("labels", "domains", "paths", "splits")}
    if meta is not None and meta.get("n_images") is not None:
        counts["n_images in meta.json"] = meta["n_images"]
    wrong = {k: v for k, v in counts.items() if v != n}
    if wrong:
        raise bad(f"{n} feature rows but {', '.join(f'{v} {k}' for k, v in wrong.items())}")
    if meta is not None and meta.get("dim") is not None and feats.shape[1] != meta["dim"]:
        raise bad(f"features are {feats.shape[1]}-d but meta.json says {meta['dim']}")
    finite = torch.isfinite(feats).all(dim=1)
    if not finite.all():
        first = int((~finite).nonzero()[0])
        raise bad(f"{int((~finite).sum())} feature row(s) hold NaN or inf (first: {blob['paths'][first]})")
    if grid is not None and n:
        C, M = grid.shape
        for key, size in (("labels", C), ("domains", M)):
            v = torch.as_tensor(blob[key]).long()
            if v.min() < 0 or v.max() >= size:
                raise bad(f"{key} outside 0..{size - 1}")


def read_meta(path: str | os.PathLike) -> dict:
    """The meta.json of a cache folder."""
    file = Path(path) / META_FILE
    if not file.is_file():
        raise FileNotFoundError(f"no feature cache at {path} ({META_FILE} missing)")
    return json.loads(file.read_text())


def load_features(path: str | os.PathLike, model: str | None = None, pretrained=None, dataset: str | None = None,
                  dtype: torch.dtype = torch.float32) -> dict[str, FeatureSet]:
    """A cache folder -> {"all": FeatureSet, and one per split}; refuses a cache of another model or dataset.

    model / pretrained / dataset: what the caller expects (None: accept any). Features are cast to dtype.
    """
    meta = read_meta(path)
    check_meta(meta, path, model, pretrained, dataset)
    if not meta.get("complete"):
        raise FileNotFoundError(f"the feature cache {path} is incomplete (extraction interrupted): run the same "
                                "extract_features.py command again to finish it")
    file = Path(path) / FEATURES_FILE
    try:
        blob = torch.load(file, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise CacheCorrupt(f"{file} is missing although meta.json says the cache is complete: extract it again "
                           "(data_scripts/extract_features.py ... --overwrite)") from e
    except Exception as e:  # truncated or not a torch file: EOFError, UnpicklingError, RuntimeError (zip)
        raise CacheCorrupt(f"{file} cannot be read ({type(e).__name__}): the feature cache is damaged: extract it "
                           "again (data_scripts/extract_features.py ... --overwrite)") from e
    grid = grid_for(meta["dataset"])
    check_features(blob, file, meta, grid)
    info = {k: meta.get(k) for k in ("dataset", "model", "pretrained", "subset")}
    splits = np.array(blob["splits"])
    full = FeatureSet(blob["features"].to(dtype), blob["labels"].long(), blob["domains"].long(), grid, {})
    out = {}
    for name in ["all", *dict.fromkeys(blob["splits"])]:
        part = full if name == "all" else full.subset(torch.from_numpy(splits == name))
        which = "all splits" if name == "all" else f"{name} split"
        data = f"{_TITLES.get(meta['dataset'], meta['dataset'])} {which} ({len(part)} images)"
        part.meta = {**info, "split": name, "cache": str(path), "data": data, "model": meta["model"],
                     "name": f"{data}, {meta['model']} ({meta.get('pretrained_tag')})"}
        out[name] = part
    return out


def features_root() -> Path | None:
    """$MINCLIP_FEATURES, else `features:` in $XDG_CONFIG_HOME (default ~/.config)/minclip_unlearn.yaml, else None."""
    if os.environ.get(FEATURES_ENV):
        return Path(os.environ[FEATURES_ENV]).expanduser()
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "minclip_unlearn.yaml"
    if config.is_file():
        import yaml

        value = (yaml.safe_load(config.read_text()) or {}).get("features")
        return Path(str(value)).expanduser() if value else None
    return None


def real_features(dataset: str, model: str = "ViT-B-32", pretrained="openai") -> dict[str, FeatureSet] | None:
    """The cached real features of dataset for the model, or None when there are none (the book then uses ToyWorld).

    Looks in features_root()/{dataset}/{model}-{tag}/ (see the layout above). A cache made with another model is
    refused (CacheMismatch); an unfinished one is skipped with a warning.
    """
    root = features_root()
    if root is None:
        return None
    path = cache_dir(root, dataset, model, pretrained)
    if not (path / META_FILE).is_file():
        return None
    try:
        return load_features(path, model, pretrained, dataset)
    except FileNotFoundError as e:
        warnings.warn(str(e))
        return None
