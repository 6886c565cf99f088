"""The concept grid (classes x domains) and the three ways to fill a forget mask (METHOD.md §2)."""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from typing import Sequence

import torch

PACS_CLASSES = ("dog", "elephant", "giraffe", "guitar", "horse", "house", "person")
PACS_DOMAINS = ("photo", "art_painting", "cartoon", "sketch")
DOMAINNET_DOMAINS = ("clipart", "infograph", "painting", "quickdraw", "real", "sketch")
TOYWORLD_CLASSES = ("circle", "square", "triangle", "star", "heart", "cross", "arrow")
TOYWORLD_DOMAINS = PACS_DOMAINS


@dataclass(frozen=True)
class ConceptGrid:
    """A dataset's grid of concepts: cell (c, m) for each class c and domain m."""

    name: str
    classes: tuple[str, ...]
    domains: tuple[str, ...]
    domain_words: dict[str, str] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        """(C, M)."""
        return len(self.classes), len(self.domains)

    def class_index(self, names: str | Sequence[str]) -> list[int]:
        """Class names -> indices; unknown names raise a ValueError listing the valid ones."""
        return _indices(names, self.classes, f"{self.name} class")

    def domain_index(self, names: str | Sequence[str]) -> list[int]:
        """Domain names -> indices; unknown names raise a ValueError listing the valid ones."""
        return _indices(names, self.domains, f"{self.name} domain")

    def empty_mask(self) -> torch.Tensor:
        """(C, M) bool, all False."""
        return torch.zeros(self.shape, dtype=torch.bool)


def _indices(names: str | Sequence[str], valid: Sequence[str], what: str) -> list[int]:
    """Names -> indices into valid, with one clear error for every unknown name."""
    names = [names] if isinstance(names, str) else list(names)
    unknown = [n for n in names if n not in valid]
    if unknown:
        shown = ", ".join(valid) if len(valid) <= 20 else ", ".join(valid[:20]) + f", ... ({len(valid)} in all)"
        raise ValueError(f"unknown {what}(s) {unknown}; valid: {shown}")
    if not names:
        raise ValueError(f"no {what} given; valid: {', '.join(valid[:20])}")
    return [list(valid).index(n) for n in names]


def domainnet_classes() -> tuple[str, ...]:
    """The 345 DomainNet class names, in label order."""
    text = resources.files("minclip_unlearn").joinpath("data/domainnet_classes.txt").read_text()
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def grid_for(dataset: str) -> ConceptGrid:
    """'pacs' | 'domainnet' | 'toyworld' -> its ConceptGrid, with the dataset's domain words."""
    from .prompts import DOMAIN_WORDS

    grids = {
        "pacs": (PACS_CLASSES, PACS_DOMAINS),
        "domainnet": (None, DOMAINNET_DOMAINS),
        "toyworld": (TOYWORLD_CLASSES, TOYWORLD_DOMAINS),
    }
    if dataset not in grids:
        raise ValueError(f"unknown dataset {dataset!r}; valid: {', '.join(grids)}")
    classes, domains = grids[dataset]
    classes = domainnet_classes() if classes is None else classes
    return ConceptGrid(dataset, tuple(classes), tuple(domains), dict(DOMAIN_WORDS[dataset]))


def validate_mask(grid: ConceptGrid, mask: torch.Tensor) -> torch.Tensor:
    """Check a (C, M) bool mask: right shape, forgets at least one cell and retains at least one."""
    if tuple(mask.shape) != grid.shape:
        raise ValueError(f"mask has shape {tuple(mask.shape)}, the {grid.name} grid is {grid.shape} (classes x domains)")
    mask = mask.bool()
    if not mask.any():
        raise ValueError("the forget mask is empty: name at least one class or domain to forget")
    if mask.all():
        raise ValueError("the forget mask covers every cell: nothing would be retained; forget fewer classes or domains")
    return mask


def forget_classes(grid: ConceptGrid, classes: str | Sequence[str]) -> torch.Tensor:
    """Global paradigm: (C, M) mask = S x M, the classes gone in every domain."""
    mask = grid.empty_mask()
    mask[grid.class_index(classes), :] = True
    return validate_mask(grid, mask)


def forget_classes_in_domains(
    grid: ConceptGrid, classes: str | Sequence[str], domains: str | Sequence[str]
) -> torch.Tensor:
    """Domain-specific paradigm: (C, M) mask = S x Q, e.g. "sketch of a dog" only."""
    mask = grid.empty_mask()
    rows, cols = grid.class_index(classes), grid.domain_index(domains)
    mask[torch.tensor(rows)[:, None], torch.tensor(cols)[None, :]] = True
    return validate_mask(grid, mask)


def forget_domains(grid: ConceptGrid, domains: str | Sequence[str]) -> torch.Tensor:
    """Complete-in-domains paradigm: (C, M) mask = C x Q, everything in those domains."""
    mask = grid.empty_mask()
    mask[:, grid.domain_index(domains)] = True
    return validate_mask(grid, mask)
