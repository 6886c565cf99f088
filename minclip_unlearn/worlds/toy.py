"""The grid part of ToyWorld as a dataset, the shipped toy CLIP, and its features (cached by the checkpoint's content).

The book forgets from the 7 x 4 grid (classes x PACS-like styles); the toy CLIP was trained on the whole world
(33 classes x 10 styles). The trained checkpoint ships inside the package, so every reader gets the same model.
"""
from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path

import numpy as np
import open_clip
import torch

from ..cache import atomic_torch_save, cache_dir
from ..datasets import FeatureSet
from ..paradigms import TOYWORLD_CLASSES as CLASSES
from ..paradigms import TOYWORLD_DOMAINS as DOMAINS
from ..paradigms import grid_for
from .render import IMAGE_SIZE, render
from .toy_model import RECIPE, SPLITS, TOY_CLIP_NAME, recipe_hash, tokenizer, world_hash

CHECKPOINT = f"{TOY_CLIP_NAME}-v{RECIPE['version']}.pt"  # package data: minclip_unlearn/data/<CHECKPOINT> (+ .json)


class ToyWorld(torch.utils.data.Dataset):
    """n_per_cell images of every grid cell (class, domain); item i -> (image (3, H, W) in [0, 1], class, domain).

    Image i is drawn from its own seed (split, seed, i): reproducible, and no two splits share a seed.
    """

    def __init__(self, split: str = "train", n_per_cell: int = 100, seed: int = 0):
        if split not in ("train", "test"):
            raise ValueError(f"unknown split {split!r}; valid: train, test")
        self.split, self.n_per_cell, self.seed = split, n_per_cell, seed

    def __len__(self) -> int:
        return len(CLASSES) * len(DOMAINS) * self.n_per_cell

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        c, m = divmod(i // self.n_per_cell, len(DOMAINS))
        image, _ = render(CLASSES[c], DOMAINS[m], np.random.default_rng((SPLITS[self.split], self.seed, i)))
        return torch.from_numpy(image).permute(2, 0, 1), c, m


def toy_images(split: str = "test", n_per_cell: int = 50, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> images (N, 3, H, W) in [0, 1], labels (N,), domains (N,); N = 28 * n_per_cell, cell by cell."""
    ds = ToyWorld(split, n_per_cell, seed)
    images, labels, domains = zip(*(ds[i] for i in range(len(ds))))
    return torch.stack(images), torch.tensor(labels), torch.tensor(domains)


def sample_grid_figure(seed: int = 0, per_cell: int = 1):
    """A labelled classes x domains grid of sample images -> matplotlib Figure."""
    import matplotlib.pyplot as plt

    images, _, _ = toy_images("train", per_cell, seed)
    C, M = len(CLASSES), len(DOMAINS)
    fig, axes = plt.subplots(C, M * per_cell, figsize=(1.1 * M * per_cell + 0.8, 1.1 * C + 0.4), squeeze=False)
    for k, ax in enumerate(axes.flat):
        c, col = divmod(k, M * per_cell)
        m, j = divmod(col, per_cell)
        ax.imshow(images[(c * M + m) * per_cell + j].permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_xticks([]), ax.set_yticks([])
        if c == 0 and j == 0:
            ax.set_title(DOMAINS[m], fontsize=9)
        if col == 0:
            ax.set_ylabel(CLASSES[c], fontsize=9)
    fig.suptitle(f"ToyWorld's grid ({IMAGE_SIZE} px): classes x domains, seed {seed}", fontsize=10)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- the shipped model
def checkpoint_path() -> Path:
    """The toy CLIP checkpoint shipped in the package (fp16 state_dict); its metadata is beside it (.json)."""
    return Path(str(resources.files("minclip_unlearn").joinpath("data", CHECKPOINT)))


def checkpoint_meta(path: str | os.PathLike | None = None) -> dict:
    """The metadata written beside a checkpoint by data_scripts/train_toy_clip.py ({} if there is none)."""
    meta = Path(path or checkpoint_path()).with_suffix(".json")
    return json.loads(meta.read_text()) if meta.is_file() else {}


def load_toy_clip(pretrained: str | os.PathLike | None = None, device: str = "cpu"):
    """None (the shipped checkpoint) | checkpoint path -> (model.eval(), preprocess, tokenizer). Never trains."""
    path = Path(pretrained) if pretrained is not None else checkpoint_path()
    if not path.is_file():
        raise FileNotFoundError(f"no toy CLIP checkpoint at {path}; make one with: python data_scripts/train_toy_clip.py --out {path}")
    model, _, preprocess = open_clip.create_model_and_transforms(TOY_CLIP_NAME, pretrained=str(path), device=device)
    return model.eval(), preprocess, tokenizer()


def stale_reasons(meta: dict) -> list[str]:
    """What differs between a checkpoint's metadata and the world and recipe of this code ([] when it matches)."""
    now = {"world_hash": world_hash(), "recipe_hash": recipe_hash()}
    return [f"{k}: checkpoint {meta.get(k)!r}, code {v!r}" for k, v in now.items() if meta.get(k) != v]


# ---------------------------------------------------------------- features, cached by what made them
def tower_fingerprint(model) -> str:
    """A sha256 of the image tower's weights, visual.proj excluded (pre-projection features do not depend on it)."""
    h = hashlib.sha256()
    for name, p in sorted(model.visual.state_dict().items()):
        if name != "proj":
            h.update(name.encode())
            h.update(p.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:20]


@torch.no_grad()
def toy_features(model, split: str = "test", n_per_cell: int = 50, seed: int = 0, cache: bool = True) -> FeatureSet:
    """ToyWorld grid images through the image tower, visual.proj skipped -> FeatureSet of (N, D) pre-projection features.

    Cached on disk ($MINCLIP_CACHE/features) under the image tower's fingerprint and the world's hash, so the
    chapters and tests draw and encode the images once per model.
    """
    from ..evaluate import image_features
    from ..prototypes import pixel_stats

    meta = {"data": f"ToyWorld {split} split ({n_per_cell} per cell, seed {seed})", "model": "toy CLIP",
            "name": f"ToyWorld {split} split, toy CLIP"}
    path = cache_dir("features", f"toyworld-{world_hash()}-{tower_fingerprint(model)}-{split}-{n_per_cell}-{seed}.pt")
    if cache and path.is_file():
        saved = torch.load(path, weights_only=True)
        return FeatureSet(saved["features"], saved["labels"], saved["domains"], grid_for("toyworld"), meta)
    images, labels, domains = toy_images(split, n_per_cell, seed)
    mean, std = pixel_stats(model)
    features = image_features(model, (images - mean) / std)
    if cache:
        atomic_torch_save(path, {"features": features, "labels": labels, "domains": domains})
    return FeatureSet(features, labels, domains, grid_for("toyworld"), meta)


def domain_accuracy(model, tokenizer, data: FeatureSet) -> dict[str, float]:
    """Zero-shot accuracy per domain with the domain-free class prompts -> {domain: accuracy}."""
    from ..evaluate import accuracy_matrix
    from ..prompts import class_embeddings

    acc = accuracy_matrix(model, data, class_embeddings(model, tokenizer, data.grid))
    return {m: float(np.nanmean(acc[:, j])) for j, m in enumerate(data.grid.domains)}
