"""Datasets as the method sees them: pre-projection image features with class and domain labels."""
from __future__ import annotations

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
#     $MINCLIP_FEATURES/{dataset}/{model}-{tag}/meta.json     model, pretrained, preprocess, versions, subset, complete
#     $MINCLIP_FEATURES/{dataset}/{model}-{tag}/features.pt   {"features": (N, D) float16 pre-projection (visual.proj
#                                                              skipped), "labels": (N,), "domains": (N,),
#                                                              "paths": [N relative image paths], "splits": [N names]}
#
# dataset: pacs | domainnet; tag: the pretrained tag ("openai"), a checkpoint's file stem, or "random".
# Splits: PACS train / crossval (its official lists; every image is in exactly one), DomainNet train / test.
FEATURES_ENV = "MINCLIP_FEATURES"
META_FILE, FEATURES_FILE = "meta.json", "features.pt"
_TITLES = {"pacs": "PACS", "domainnet": "DomainNet"}


class CacheMismatch(ValueError):
    """A feature cache made with another model, pretrained tag or dataset than the one asked for."""


def pretrained_tag(pretrained) -> str:
    """None -> 'random'; a checkpoint path -> its file stem; a tag -> itself."""
    if pretrained is None:
        return "random"
    p = Path(str(pretrained))
    return p.stem if p.suffix or p.is_file() else str(pretrained)


def cache_dir(root: str | os.PathLike, dataset: str, model: str, pretrained) -> Path:
    """Where the cache of (dataset, model, pretrained) lives under a features root."""
    return Path(root) / dataset / f"{model}-{pretrained_tag(pretrained)}"


def check_meta(meta: dict, path, model: str | None = None, pretrained=None, dataset: str | None = None) -> None:
    """Raise CacheMismatch, naming both sides, if meta is not for the requested model / pretrained / dataset."""
    want = {"model": model, "pretrained": None if pretrained is None else pretrained_tag(pretrained), "dataset": dataset}
    have = {"model": meta.get("model"), "pretrained": meta.get("pretrained_tag"), "dataset": meta.get("dataset")}
    bad = [k for k, v in want.items() if v is not None and v != have[k]]
    if bad:
        raise CacheMismatch(
            f"the feature cache {path} was made with {', '.join(f'{k}={have[k]!r}' for k in bad)}, not "
            f"{', '.join(f'{k}={want[k]!r}' for k in bad)}: its features belong to another image tower. "
            f"Extract features for this model (data_scripts/extract_features.py) or load the matching one.")


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
    blob = torch.load(Path(path) / FEATURES_FILE, map_location="cpu", weights_only=True)
    grid = grid_for(meta["dataset"])
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
