"""Baselines the closed-form edit is compared with (METHOD.md §5): prompt removal and gradient ascent.

- Prompt removal drops classes from the label set of one zero-shot classifier. It changes no weight.
- Gradient ascent fine-tunes `visual.proj` for a few steps: raise the cross-entropy of the forget
  images, keep it low on the retain images (the training-based family, as in Kravets & Namboodiri,
  WACV 2025). Its images are synthesized prototypes (`prototypes.synthesize`), so it uses no real data.
"""
from __future__ import annotations

import copy
import os
import time
from typing import Sequence

import torch
import torch.nn.functional as Fn

from .datasets import FeatureSet
from .evaluate import embed, group_accuracy, image_features, zero_shot_logits
from .cache import atomic_torch_save
from .prototypes import SynthesisConfig, cache_path, pixel_stats, synthesize_in_chunks


# ---------------------------------------------------------------- (i) prompt removal
def removed_classes(mask: torch.Tensor) -> list[int]:
    """(C, M) forget mask -> indices of the classes with at least one forgotten cell (the ones to drop)."""
    return mask.any(dim=1).nonzero().flatten().tolist()


def prompt_removal_logits(image_emb: torch.Tensor, class_emb: torch.Tensor, removed: Sequence[int]) -> torch.Tensor:
    """(N, d) images, (C, d) classes -> (N, C) logits with the removed classes' columns set to -inf."""
    removed = list(removed)
    if len(removed) >= class_emb.shape[0]:
        raise ValueError(f"prompt removal would drop all {class_emb.shape[0]} classes; nothing left to predict")
    logits = zero_shot_logits(image_emb, class_emb)
    logits[:, removed] = float("-inf")
    return logits


def prompt_removal_predict(model, data: FeatureSet, class_emb: torch.Tensor, removed: Sequence[int]) -> torch.Tensor:
    """FeatureSet (N images) -> (N,) zero-shot predictions over the remaining classes only."""
    return prompt_removal_logits(embed(data.features, model), class_emb, removed).argmax(-1)


def prompt_removal_scores(model, data: FeatureSet, class_emb: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """Like evaluate.scores, for the label set without the mask's classes (an image of a dropped class always counts as wrong)."""
    return group_accuracy(prompt_removal_predict(model, data, class_emb, removed_classes(mask)) == data.labels, data, mask)


# ---------------------------------------------------------------- (iv) gradient ascent on visual.proj
def prototype_images(model, text_dirs: torch.Tensor, grid, cfg: SynthesisConfig = SynthesisConfig(),
                     cache_dir: str | os.PathLike | None = None, progress: bool = False) -> dict:
    """(C, M, d) text directions -> {"prototypes": (C, M, n, d), "images": (C, M, n, 3, H, W), "seconds"}, disk-cached.

    The same chunks and seeds as prototypes.grid_prototypes, so the prototypes are the same; the synthesized
    pixels (which grid_prototypes does not keep) and the synthesis wall time are kept as well.
    """
    proto_path = cache_path(model, text_dirs, grid, cfg, cache_dir)  # grid_prototypes' file, same key
    path = proto_path.with_name(f"{proto_path.stem}-images.pt")
    if path.exists():
        return torch.load(path, weights_only=True)
    start = time.perf_counter()
    protos, images = synthesize_in_chunks(model, text_dirs.reshape(-1, text_dirs.shape[-1]), cfg, progress)
    out = {"prototypes": protos.reshape(*grid.shape, cfg.n, -1),
           "images": images.reshape(*grid.shape, cfg.n, *images.shape[1:]),
           "seconds": time.perf_counter() - start}
    atomic_torch_save(path, out)
    if not proto_path.exists():  # also fill grid_prototypes' cache
        atomic_torch_save(proto_path, out["prototypes"])
    return out


def normalise_images(model, images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] -> the model's own input normalisation (as prototypes.synthesize applies it)."""
    mean, std = pixel_stats(model)
    return (images - mean) / std


def logit_margin(model, features: torch.Tensor, labels: torch.Tensor, class_emb: torch.Tensor) -> torch.Tensor:
    """(N, D) pre-projection features -> (N,) true-class logit minus the best other logit (< 0: misclassified)."""
    logits = zero_shot_logits(embed(features, model), class_emb)
    true = logits.gather(1, labels[:, None]).squeeze(1)
    return true - logits.scatter(1, labels[:, None], float("-inf")).max(1).values


def gradient_ascent_unlearn(
    model, forget_images: torch.Tensor, retain_images: torch.Tensor, forget_labels: torch.Tensor,
    retain_labels: torch.Tensor, classifier: torch.Tensor, steps: int = 30, lr: float = 1e-3,
    retain_weight: float = 1.0, seed: int = 0,
):
    """Images (N, 3, H, W) in [0, 1] + labels (N,), (C, d) classifier -> a new model with a fine-tuned visual.proj.

    Minimises  -CE(forget) + retain_weight * CE(retain)  with Adam over `visual.proj` only (the tower below it is
    frozen, so the pre-projection features are computed once). The original model is left untouched, and the
    new one keeps the original matrix for `edit.restore`.
    """
    torch.manual_seed(seed)
    f_forget = image_features(model, normalise_images(model, forget_images))
    f_retain = image_features(model, normalise_images(model, retain_images))
    edited = copy.deepcopy(model)
    W0 = model.visual.proj.detach().clone()
    W = torch.nn.Parameter(W0.float().cpu().clone())
    opt = torch.optim.Adam([W], lr=lr)
    scale = float(model.logit_scale.detach().exp()) if hasattr(model, "logit_scale") else 100.0
    text = Fn.normalize(classifier.float(), dim=-1)
    ce = lambda f, y: Fn.cross_entropy(scale * Fn.normalize(f @ W, dim=-1) @ text.T, y)  # noqa: E731
    history = []
    for _ in range(steps):
        loss_forget, loss_retain = ce(f_forget, forget_labels), ce(f_retain, retain_labels)
        loss = -loss_forget + retain_weight * loss_retain
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append((loss_forget.item(), loss_retain.item()))
    with torch.no_grad():
        edited.visual.proj.copy_(W.to(edited.visual.proj))
    edited.minclip_original_proj = getattr(model, "minclip_original_proj", W0).clone()  # restore() goes back to the very first W
    record = {"method": "gradient_ascent", "steps": steps, "lr": lr, "retain_weight": retain_weight,
              "n_forget": len(forget_images), "n_retain": len(retain_images), "ce_history": history}
    edited.minclip_records = list(getattr(model, "minclip_records", [])) + [record]
    return edited
