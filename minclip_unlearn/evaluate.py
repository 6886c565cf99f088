"""Measuring forgetting: zero-shot accuracy per grid cell, forget/retain/off-target scores, a recovery probe."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as Fn
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from .datasets import FeatureSet


@torch.no_grad()
def image_features(model, images: torch.Tensor, batch_size: int = 64, progress: bool = False) -> torch.Tensor:
    """(N, 3, H, W) preprocessed images -> (N, D) pre-projection features (visual.proj skipped)."""
    proj, device, out = model.visual.proj, next(model.parameters()).device, []
    model.visual.proj = None
    try:
        for i in tqdm(range(0, len(images), batch_size), desc="encoding images", disable=not progress):
            out.append(model.visual(images[i : i + batch_size].to(device)).float().cpu())
    finally:
        model.visual.proj = proj
    return torch.cat(out)


def embed(features: torch.Tensor, model) -> torch.Tensor:
    """(N, D) pre-projection features -> (N, d) normalised image embeddings through the model's visual.proj."""
    W = model.visual.proj.detach().float().cpu()
    return Fn.normalize(features.float() @ W, dim=-1)


def zero_shot_logits(image_emb: torch.Tensor, class_emb: torch.Tensor, scale: float = 100.0) -> torch.Tensor:
    """(N, d) image, (C, d) class embeddings -> (N, C) logits scale * cos."""
    if image_emb.shape[-1] != class_emb.shape[-1]:
        raise ValueError(f"image embeddings are {image_emb.shape[-1]}-d but class embeddings are {class_emb.shape[-1]}-d")
    return scale * Fn.normalize(image_emb, dim=-1) @ Fn.normalize(class_emb, dim=-1).T


def predict(model, data: FeatureSet, class_emb: torch.Tensor) -> torch.Tensor:
    """FeatureSet (N images) -> (N,) zero-shot class predictions over all classes of the grid."""
    return zero_shot_logits(embed(data.features, model), class_emb).argmax(-1)


def accuracy_matrix(model, data: FeatureSet, class_emb: torch.Tensor) -> np.ndarray:
    """FeatureSet -> (C, M) zero-shot accuracy per cell (NaN where a cell has no image)."""
    correct = (predict(model, data, class_emb) == data.labels).float()
    C, M = data.grid.shape
    cell = data.labels * M + data.domains
    hits = torch.zeros(C * M).index_add_(0, cell, correct)
    counts = torch.zeros(C * M).index_add_(0, cell, torch.ones_like(correct))
    return (hits / counts).reshape(C, M).numpy()


def scores(model, data: FeatureSet, class_emb: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """Zero-shot accuracy over images in forgotten cells, retained cells, and the off-target split (group_accuracy)."""
    return group_accuracy(predict(model, data, class_emb) == data.labels, data, mask)


def group_accuracy(correct: torch.Tensor, data: FeatureSet, mask: torch.Tensor) -> dict[str, float]:
    """(N,) bool hits -> accuracy over forgotten cells, retained cells, and the off-target split of the retained ones.

    'same_class_other_domains': retained cells of a class that has a forgotten cell (the hard part of
    domain-specific forgetting); 'other_classes': retained cells of classes with no forgotten cell.
    """
    correct = correct.float()
    forgotten = mask[data.labels, data.domains]
    touched_class = mask.any(dim=1)[data.labels]
    groups = {
        "forget": forgotten,
        "retain": ~forgotten,
        "same_class_other_domains": ~forgotten & touched_class,
        "other_classes": ~touched_class,
    }
    return {k: float(correct[g].mean()) if g.any() else float("nan") for k, g in groups.items()}


def recovery_probe(model, train: FeatureSet, test: FeatureSet, mask: torch.Tensor, seed: int = 0) -> dict[str, float]:
    """Fit a logistic-regression class probe on edited train embeddings; accuracy on test forget/retain images.

    High probe accuracy on forgotten cells means the class is still linearly decodable, even if zero-shot fails.
    """
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    with threadpool_limits(1):  # one BLAS thread: ~20x faster on this small fit, and no round-off that depends on the thread count
        probe.fit(embed(train.features, model).numpy(), train.labels.numpy())
        correct = torch.from_numpy(probe.predict(embed(test.features, model).numpy()) == test.labels.numpy())
    forgotten = mask[test.labels, test.domains]
    return {
        "probe_forget": float(correct[forgotten].float().mean()) if forgotten.any() else float("nan"),
        "probe_retain": float(correct[~forgotten].float().mean()) if (~forgotten).any() else float("nan"),
    }
