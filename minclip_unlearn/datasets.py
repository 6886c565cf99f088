"""Datasets as the method sees them: pre-projection image features with class and domain labels."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .paradigms import ConceptGrid


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
