"""The lab bench of the book: a model, its grid, featurised train/test splits and a classifier for one dataset.

Real cached features are used when present (see datasets.real_features); otherwise the ToyWorld stand-in,
announced by a visible banner. Every figure made from a Lab names its source (`lab.source`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch

from . import edit, evaluate, prompts, prototypes
from .datasets import FeatureSet, pretrained_tag, real_features
from .models import load_clip
from .paradigms import ConceptGrid, grid_for

RHOS = (0.99, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6)  # the energy thresholds choose_rho tries, in this order
REAL_DATA_HELP = {
    "pacs": "python data_scripts/pacs.py download --root DATA",
    "domainnet": "python data_scripts/domainnet.py download --root DATA --per-class 20",
}


@dataclass
class Lab:
    """Everything a chapter needs: model, tokenizer, grid, train/test FeatureSets, (C, d) zero-shot classifier."""

    model: torch.nn.Module
    tokenizer: object
    grid: ConceptGrid
    train: FeatureSet
    test: FeatureSet
    source: str
    real: bool
    model_name: str = "toy CLIP"  # for figure labels, e.g. 'ViT-B-32 (openai)'
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def classifier(self) -> torch.Tensor:
        """(C, d) normalised domain-free class embeddings (the text tower is never edited)."""
        if "classifier" not in self._cache:
            self._cache["classifier"] = prompts.class_embeddings(self.model, self.tokenizer, self.grid)
        return self._cache["classifier"]

    @property
    def text_dirs(self) -> torch.Tensor:
        """(C, M, d) domain-aware text direction of every cell."""
        if "text_dirs" not in self._cache:
            self._cache["text_dirs"] = prompts.text_directions(self.model, self.tokenizer, self.grid)
        return self._cache["text_dirs"]

    def prototypes(self, cfg: prototypes.SynthesisConfig = prototypes.SynthesisConfig(),
                   progress: bool = True) -> torch.Tensor:
        """(C, M, n, d) visual prototypes of every cell (synthesised once, then read from the disk cache)."""
        return prototypes.grid_prototypes(self.model, self.text_dirs, self.grid, cfg, progress=progress)

    def all_cells_gram(self, protos: torch.Tensor | None = None, mode: str = "multimodal") -> torch.Tensor:
        """(d, d) Gram of every cell's directions for this mode (protos used in multimodal only), cached per
        mode and per protos object: pass it to edit.unlearn(..., gram=...) for each mask."""
        used = protos if mode == "multimodal" else None
        cached = self._cache.get(("gram", mode))
        if cached is None or cached[0] is not used:  # keyed by identity: the cache holds the protos it was made from
            cached = self._cache[("gram", mode)] = (used, edit.all_cells_gram(self.text_dirs, used))
        return cached[1]

    def accuracy(self, model=None) -> np.ndarray:
        """(C, M) zero-shot accuracy of model (default: the unedited one) on the test split."""
        return evaluate.accuracy_matrix(model or self.model, self.test, self.classifier)

    def scores(self, model, mask: torch.Tensor) -> dict[str, float]:
        """Forget / retain / off-target accuracy of model on the test split for this mask."""
        return evaluate.scores(model, self.test, self.classifier, mask)

    def choose_rho(self, mask: torch.Tensor, protos: torch.Tensor | None = None, mode: str = "multimodal",
                   rhos: tuple[float, ...] = RHOS, tolerance: float = 0.01) -> float:
        """The book's rule for the energy threshold, stated before any test score is seen.

        On the training split, among the rhos whose edit keeps retain accuracy within `tolerance` of the
        unedited model's, pick the one with the lowest forget accuracy (the first in `rhos` on a tie);
        0.99, the package default, when none qualifies. protos: (C, M, n, d) prototypes, for multimodal.
        """
        def train_scores(model) -> dict[str, float]:
            return evaluate.scores(model, self.train, self.classifier, mask)

        base, G = train_scores(self.model), self.all_cells_gram(protos, mode)
        ok = {}
        for rho in rhos:
            s = train_scores(edit.unlearn(self.model, self.grid, mask, self.text_dirs, protos, mode=mode, rho=rho,
                                          gram=G))
            if s["retain"] >= base["retain"] - tolerance:
                ok[rho] = s["forget"]
        return min(ok, key=ok.get) if ok else 0.99


def banner(dataset: str) -> None:
    """Print a visible notice that the real dataset is missing and ToyWorld stands in for it."""
    lines = [
        f"REAL {dataset.upper()} FEATURES NOT FOUND: this chapter runs on the ToyWorld stand-in",
        "(a 7 shapes x 4 styles grid of a larger world, and the small CLIP the package ships). Figures say so.",
        f"For the real data: {REAL_DATA_HELP[dataset]}, then",
        f"python data_scripts/extract_features.py --dataset {dataset} ... and set MINCLIP_FEATURES.",
    ]
    width = max(map(len, lines)) + 4
    print("!" * width, *(f"! {line:<{width - 4}} !" for line in lines), "!" * width, sep="\n")


def open_lab(dataset: str = "toyworld", model: str | None = None, pretrained: str | None = None,
             n_per_cell: int = 50) -> Lab:
    """'pacs' | 'domainnet' | 'toyworld' -> a Lab on real cached features if present, else on ToyWorld.

    The real features are those of `model` / `pretrained`: by default $MINCLIP_MODEL / $MINCLIP_PRETRAINED,
    else ViT-B-32 / openai (what data_scripts/extract_features.py uses unless told otherwise).
    """
    grid_for(dataset)  # validates the name
    model = model or os.environ.get("MINCLIP_MODEL") or "ViT-B-32"
    pretrained = pretrained or os.environ.get("MINCLIP_PRETRAINED") or "openai"
    if dataset != "toyworld":
        feats = real_features(dataset, model, pretrained)
        if feats is not None:
            clip, _, tokenizer = load_clip(model, pretrained)
            test = feats.get("test") or feats["crossval"]
            source = f"model: {model} ({pretrained}) · data: {test.meta['name']}"
            return Lab(clip, tokenizer, test.grid, feats["train"], test, source, real=True,
                       model_name=f"{model} ({pretrained_tag(pretrained)})")
        banner(dataset)
    from .toyworld import toy_features

    clip, _, tokenizer = load_clip("toy")
    train = toy_features(clip, "train", n_per_cell=n_per_cell, seed=1)
    test = toy_features(clip, "test", n_per_cell=n_per_cell)
    source = f"model: toy CLIP · data: ToyWorld held-out test split ({len(test)} images)"
    return Lab(clip, tokenizer, test.grid, train, test, source, real=False)
