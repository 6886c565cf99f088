"""The dial world: an embedding-level synthetic CLIP whose cell interaction strength kappa is a dial.

Each cell (c, m) has a shared concept vector e_cm = a_c + w b_m + kappa g_cm (Gaussian a, b, g of unit
expected norm, w = `domain_weight`). The text direction is t_cm = normalise(e_cm + gap * c_T); the image
side mixes e_cm with an image-only code e'_cm of the same kind (share `private`) and sits in another cone,
u_cm = normalise(sqrt(1 - private^2) e_cm + private e'_cm + gap * c_I), with c_T, c_I two fixed cone
vectors (the modality gap). Images are u_cm plus Gaussian noise of norm about `noise`; prototypes are
noisier copies of u_cm (`proto_noise`), the image-side directions a synthesiser would find.

The "model" is a tiny nn.Module whose `visual.proj` is the (d, d) identity, so features are pre-projection
features (D = d) and `unlearn`, `scores`, `accuracy_matrix`, `recovery_probe` run on it unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as Fn
from torch import nn

from ..datasets import FeatureSet
from ..geometry import interaction_share
from ..paradigms import DOMAINNET_DOMAINS, PACS_CLASSES, PACS_DOMAINS, ConceptGrid, domainnet_classes


class _Visual(nn.Module):
    """The image tower's last step only: a (d, d) projection, identity at construction."""

    def __init__(self, d: int):
        super().__init__()
        self.proj = nn.Parameter(torch.eye(d))


class DialModel(nn.Module):
    """A stand-in CLIP for the dial world: `.visual.proj` is an identity (d, d) nn.Parameter."""

    def __init__(self, d: int):
        super().__init__()
        self.visual = _Visual(d)
        self.minclip_source = {"model": "dial", "pretrained": None}


@dataclass
class DialWorld:
    """A dial world: grid, model, (C, M, d) text directions, (C, d) classifier, train/test images, prototypes."""

    grid: ConceptGrid
    model: DialModel
    text_dirs: torch.Tensor  # (C, M, d) normalised
    classifier: torch.Tensor  # (C, d) normalised, domain-free
    train: FeatureSet
    test: FeatureSet
    prototypes: torch.Tensor  # (C, M, n, d) normalised
    image_means: torch.Tensor  # (C, M, d) normalised noise-free image cell means
    params: dict

    @property
    def source(self) -> str:
        """One line for figure titles: which world, with its dials."""
        p = self.params
        return (f"model: dial world ({p['classes']}x{p['domains']}, kappa={p['kappa']:g}, gap={p['gap']:g}, "
                f"private={p['private']:g}, noise={p['noise']:g}, d={p['d']}, seed={p['seed']})")


def dial_grid(classes: int = 7, domains: int = 4) -> ConceptGrid:
    """A ConceptGrid named 'dial': PACS names for 7 x 4, DomainNet names for 345 x 6, else c0.. x m0.."""
    if (classes, domains) == (7, 4):
        names, doms = PACS_CLASSES, PACS_DOMAINS
    elif (classes, domains) == (345, 6):
        names, doms = domainnet_classes(), DOMAINNET_DOMAINS
    else:
        if classes < 2 or domains < 2:
            raise ValueError(f"a dial world needs at least 2 classes and 2 domains, got {classes} x {domains}")
        names, doms = tuple(f"c{i}" for i in range(classes)), tuple(f"m{j}" for j in range(domains))
    return ConceptGrid("dial", tuple(names), tuple(doms))


def _codes(rng: np.random.Generator, C: int, M: int, d: int, kappa: float, domain_weight: float) -> np.ndarray:
    """(C, M, d) concept vectors a_c + w b_m + kappa g_cm, each Gaussian term of unit expected norm.

    g_cm is drawn independently for every cell: kappa = 0 is an exactly additive code, and as kappa grows
    the cells become independent (interaction share -> (1 - 1/C)(1 - 1/M), the share of independent cells).
    """
    a = rng.standard_normal((C, 1, d)) / np.sqrt(d)
    b = rng.standard_normal((1, M, d)) / np.sqrt(d)
    g = rng.standard_normal((C, M, d)) / np.sqrt(d)
    return a + domain_weight * b + kappa * g


def _unit(x: np.ndarray) -> np.ndarray:
    """Normalise along the last axis."""
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _images(rng: np.random.Generator, means: np.ndarray, n: int, noise: float) -> tuple[np.ndarray, ...]:
    """(C, M, d) means -> n noisy images per cell: features (C*M*n, d), labels, domains."""
    C, M, d = means.shape
    x = means[:, :, None, :] + noise * rng.standard_normal((C, M, n, d)) / np.sqrt(d)
    labels = np.repeat(np.arange(C), M * n)
    domains = np.tile(np.repeat(np.arange(M), n), C)
    return _unit(x).reshape(-1, d), labels, domains


def dial_world(classes: int = 7, domains: int = 4, kappa: float = 1.0, gap: float = 1.0, private: float = 0.5,
               noise: float = 3.0, proto_noise: float = 0.5, domain_weight: float = 1.0, d: int = 512,
               n_per_cell: int = 40, n_prototypes: int = 2, seed: int = 0) -> DialWorld:
    """A seeded dial world of classes x domains cells; kappa = 0 is an additive code, large kappa independent cells.

    Defaults, chosen for realism and not to pass any test: d = 512 (ViT-B/32's embedding), noise = 3 (the
    unedited zero-shot accuracy is then about 93-98 %, as ViT-B/32's on PACS), two prototypes per cell
    (as the book's SynthesisConfig), gap = 1 (text and image cones as far from the cell codes as the codes'
    own norm), private = 0.5 (a quarter of each image cell's code energy is invisible to text).
    n_per_cell images per cell in each of the train and test splits (DomainNet-sized: use a few).
    """
    if kappa < 0 or gap < 0 or noise < 0 or proto_noise < 0 or not 0 <= private < 1:
        raise ValueError(f"need kappa, gap, noise, proto_noise >= 0 and 0 <= private < 1; got kappa={kappa}, "
                         f"gap={gap}, noise={noise}, proto_noise={proto_noise}, private={private}")
    if d < 2 or n_per_cell < 1 or n_prototypes < 1:
        raise ValueError(f"need d >= 2, n_per_cell >= 1, n_prototypes >= 1; got {d}, {n_per_cell}, {n_prototypes}")
    grid = dial_grid(classes, domains)
    C, M = grid.shape
    rng = np.random.default_rng(seed)
    shared = _codes(rng, C, M, d, kappa, domain_weight)
    own = _codes(rng, C, M, d, kappa, domain_weight)  # the image-only part of each cell
    cone_t, cone_i = _unit(rng.standard_normal((2, d)))
    text = _unit(shared + gap * cone_t)
    mix = np.sqrt(1 - private**2) * shared + private * own
    means = _unit(mix + gap * cone_i)
    protos = _unit(means[:, :, None, :] + proto_noise * rng.standard_normal((C, M, n_prototypes, d)) / np.sqrt(d))
    classifier = _unit(text.mean(axis=1))
    splits = {}
    for split in ("train", "test"):
        x, y, m = _images(rng, means, n_per_cell, noise)
        splits[split] = FeatureSet(torch.from_numpy(x).float(), torch.from_numpy(y), torch.from_numpy(m), grid,
                                   {"name": f"dial world {split} split", "split": split})
    params = {"classes": C, "domains": M, "kappa": kappa, "gap": gap, "private": private, "noise": noise,
              "proto_noise": proto_noise, "domain_weight": domain_weight, "d": d, "n_per_cell": n_per_cell,
              "n_prototypes": n_prototypes, "seed": seed}
    t = lambda a: torch.from_numpy(a).float()  # noqa: E731
    return DialWorld(grid, DialModel(d), t(text), t(classifier), splits["train"], splits["test"], t(protos),
                     t(means), params)


def fit_kappa(share: float, side: str = "text", lo: float = 0.0, hi: float = 20.0, tol: float = 1e-3,
              **world) -> float:
    """The kappa at which the dial world's interaction share (of text directions or image cell means) is `share`.

    side: "text" (text_dirs) or "image" (noise-free image cell means); **world: other dial_world arguments.
    Bisection on kappa: the share grows with kappa from ~0 (additive) towards 1.
    """
    if side not in ("text", "image"):
        raise ValueError(f"unknown side {side!r}; valid: text, image")
    if not 0 < share < 1:
        raise ValueError(f"share must be in (0, 1), got {share}")
    world = {**world, "n_per_cell": 1, "n_prototypes": 1}

    def measured(kappa: float) -> float:
        w = dial_world(kappa=kappa, **world)
        return interaction_share(w.text_dirs if side == "text" else w.image_means)["interaction"]

    while hi - lo > tol:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if measured(mid) < share else (lo, mid)
    return (lo + hi) / 2
