"""The edit: W' = W P^T on `model.visual.proj`, reversible, saved as a plain open_clip state_dict + a record."""
from __future__ import annotations

import copy
import datetime
from dataclasses import asdict

import torch

from . import __version__, geometry
from .logit_edit import logit_matrix
from .models import has_visual_proj
from .nullspace import gram, hard_projector, kept_fraction, orth, removed_basis, retain_gram, soft_projector
from .paradigms import ConceptGrid, validate_mask
from .saving import check_writable, load_record, record_path, save_edited  # noqa: F401 (edit.save_edited, ...)
from .settings import METHODS, SETTINGS, Hard, Logit, Soft, method_name, settings_for  # noqa: F401 (edit.Hard, ...)

MODES = ("multimodal", "text")


SUPPORTED = "open_clip VisionTransformer CLIPs with a visual.proj matrix (ViT-B-32, ViT-B-16, ViT-L-14, ..., and 'toy')"


def cell_directions(text_dirs: torch.Tensor, mask: torch.Tensor, prototypes: torch.Tensor | None = None) -> torch.Tensor:
    """(C, M, d) text, (C, M) mask, optional (C, M, n, d) prototypes -> (C, M, 1 + n, d) directions of every cell."""
    if text_dirs.ndim != 3 or tuple(text_dirs.shape[:2]) != tuple(mask.shape):
        raise ValueError(f"text directions must be (C, M, d) matching the mask {tuple(mask.shape)}, got {tuple(text_dirs.shape)}")
    cells = text_dirs.unsqueeze(2)  # (C, M, 1, d)
    if prototypes is not None:
        if prototypes.ndim != 4 or prototypes.shape[:2] != text_dirs.shape[:2] or prototypes.shape[-1] != text_dirs.shape[-1]:
            raise ValueError(f"prototypes must be (C, M, n, d) = {tuple(text_dirs.shape[:2])} x n x {text_dirs.shape[-1]}, got {tuple(prototypes.shape)}")
        cells = torch.cat([cells, prototypes.to(text_dirs.dtype)], dim=2)
    return cells


def split_cells(cells: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(C, M, k, d) cell directions, (C, M) mask -> F (d, k_f) of the masked cells, R (d, k_r) of the others."""
    d = cells.shape[-1]
    return cells[mask].reshape(-1, d).T, cells[~mask].reshape(-1, d).T


def directions(text_dirs: torch.Tensor, mask: torch.Tensor, prototypes: torch.Tensor | None = None):
    """(C, M, d) text, (C, M) mask, optional (C, M, n, d) prototypes -> F (d, k_f), R (d, k_r)."""
    return split_cells(cell_directions(text_dirs, mask, prototypes), mask)


def all_cells_gram(text_dirs: torch.Tensor, prototypes: torch.Tensor | None = None) -> torch.Tensor:
    """(C, M, d) text, optional (C, M, n, d) prototypes -> (d, d) float64 Gram of every cell's directions.

    Computed once per model, grid and mode (prototypes for mode="multimodal", None for "text"), it makes
    each unlearn(..., gram=G) cost O(d^3 + d^2 k_f) whatever the number of retained cells.
    """
    cells = cell_directions(text_dirs, torch.ones(text_dirs.shape[:2], dtype=torch.bool), prototypes)
    return gram(cells.reshape(-1, cells.shape[-1]).T)


def projector(
    F: torch.Tensor, R: torch.Tensor, method: str = "hard",
    alpha: float = 1.0, rho: float = 0.99, lam: float = 100.0, mu: float = 10.0,
) -> torch.Tensor:
    """F (d, k_f), R (d, k_r) -> P (d, d): the retain-protected hard projector, or the soft CCUP form."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    if method == "logit":
        raise ValueError("method='logit' needs each cell's directions and the class embeddings: use "
                         "unlearn(..., method='logit', classifier=C) or logit_edit.logit_projector")
    if method == "hard":
        return hard_projector(F, R, alpha=alpha, rho=rho)
    return soft_projector(F, R, lam=lam, mu=mu)


def kept(P: torch.Tensor, A: torch.Tensor) -> float:
    """P (d, d), A (d, k) -> ||P A|| / ||A||: the fraction of the directions' norm that survives P."""
    return float((P.double() @ A.double()).norm() / A.double().norm())


def kept_lowrank(P: torch.Tensor, A: torch.Tensor, Q: torch.Tensor) -> float:
    """kept(P, A) in O(d^2 r + d r k), for P (d, d) whose P - I has its range in span(Q), Q (d, r) orthonormal.

    P A = A + Q M with M = Q^T (P - I) A, so ||P A||^2 = ||(I - Q Q^T) A||^2 + ||Q^T A + M||^2.
    """
    A, Q = A.double(), Q.double()
    QA = Q.T @ A
    M = (Q.T @ P.double() - Q.T) @ A
    outside = (A.norm() ** 2 - QA.norm() ** 2).clamp_min(0)
    return float((outside + (QA + M).norm() ** 2).sqrt() / A.norm())


def checked_proj(model) -> torch.Tensor:
    """Model -> its visual.proj W (D, d), or one clear error naming the supported models."""
    if not has_visual_proj(model):
        raise ValueError(f"{type(getattr(model, 'visual', model)).__name__} has no visual.proj; supported: {SUPPORTED}")
    return model.visual.proj


def write_proj(model, new_proj, record: dict | None, inplace: bool):
    """Copy the model (unless inplace), keep its original visual.proj once, set W <- new_proj(W in float64), log record."""
    edited = model if inplace else copy.deepcopy(model)
    W = edited.visual.proj
    with torch.no_grad():
        if getattr(edited, "minclip_original_proj", None) is None:
            edited.minclip_original_proj = W.detach().clone()
        W.copy_(new_proj(W.double()).to(W.dtype))
    edited.minclip_records = list(getattr(edited, "minclip_records", [])) + [record or {}]
    return edited


def apply_projector(model, P: torch.Tensor, record: dict | None = None, inplace: bool = False):
    """Model + P (d, d) -> model whose visual.proj is W P^T; the original W is kept for restore()."""
    W = checked_proj(model)
    if P.shape != (W.shape[1], W.shape[1]):
        raise ValueError(f"P must be ({W.shape[1]}, {W.shape[1]}) for visual.proj of shape {tuple(W.shape)}, got {tuple(P.shape)}")
    if not torch.isfinite(P).all():
        raise ValueError("P contains NaN or inf")
    return write_proj(model, lambda W64: W64 @ P.double().T.to(W64.device), record, inplace)


def apply_basis(model, U: torch.Tensor, alpha: float = 1.0, record: dict | None = None, inplace: bool = False):
    """Model + orthonormal U (d, r) -> visual.proj W - alpha (W U) U^T = W P^T for P = I - alpha U U^T; O(D d r)."""
    W = checked_proj(model)
    if U.ndim != 2 or U.shape[0] != W.shape[1] or not torch.isfinite(U).all():
        raise ValueError(f"U must be a finite ({W.shape[1]}, r) basis for visual.proj of shape {tuple(W.shape)}")
    U64 = U.double().to(W.device)
    return write_proj(model, lambda W64: W64 - alpha * (W64 @ U64) @ U64.T, record, inplace)


def edit_matrix(settings: Hard | Soft | Logit, F: torch.Tensor, R: torch.Tensor, cells: torch.Tensor,
                mask: torch.Tensor, classifier: torch.Tensor | None,
                G_R: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """One method's edit and what the record says about it: rank removed, norm kept of F and R.

    The edit is the removed basis U (d, r) for Hard (P = I - alpha U U^T), else P (d, d). The retain Gram
    G_R = R R^T (d, d), if given, stands in for R in the hard basis, its retain kept fraction and the soft P.
    """
    if isinstance(settings, Hard):
        a, U = settings.alpha, removed_basis(F, R, rho=settings.rho, retain_gram=G_R)
        kept_r = kept_fraction(U, a, R) if G_R is None else kept_fraction(U, a, gram=G_R)
        geometry.warn_if_low(U, F, stacklevel=4)
        return U, {"rank_removed": U.shape[1] if a > 0 else 0, "forget_norm_kept": kept_fraction(U, a, F),
                   "retain_norm_kept": kept_r}
    if isinstance(settings, Soft):
        P, Q = soft_projector(F, R, lam=settings.lam, mu=settings.mu, retain_gram=G_R), orth(F)  # P - I = -lam F F^T A^-1
    else:
        P, Q = logit_matrix(settings, cells, mask, classifier, F.dtype)
    D = Q.T.double() @ (P.double() - torch.eye(P.shape[0], dtype=torch.float64))  # (r, d): P - I = Q D
    rtol = torch.finfo(P.dtype).eps * P.shape[0]  # P's own round-off is not a removed direction
    rank = int(torch.linalg.matrix_rank(D, rtol=rtol)) if D.numel() and D.abs().max() > 0 else 0
    return P, {"rank_removed": rank, "forget_norm_kept": kept_lowrank(P, F, Q), "retain_norm_kept": kept_lowrank(P, R, Q)}


def unlearn(
    model, grid: ConceptGrid, mask: torch.Tensor, text_dirs: torch.Tensor, prototypes: torch.Tensor | None = None,
    mode: str = "multimodal", method: str | None = None, alpha: float | None = None, rho: float | str | None = None,
    lam: float | None = None, mu: float | None = None, inplace: bool = False, *,
    classifier: torch.Tensor | None = None, settings: Hard | Soft | Logit | None = None,
    gram: torch.Tensor | None = None,
):
    """Forget the masked cells of the grid: a new model (by default) whose visual.proj has been edited.

    method: "hard" (default), "soft" or "logit" (needs classifier (C, d)); its knobs either as flat keywords
    (alpha, rho, lam, mu; None = the method's default) or as one settings object: Hard, Soft or Logit.
    gram: optional (d, d) all_cells_gram(text_dirs, prototypes used by the mode), computed once for many
    masks: hard, soft and rho="auto" then take R R^T as gram - F F^T (O(d^2 k_f)); logit ignores it.
    """
    flat = {"alpha": alpha, "rho": rho, "lam": lam, "mu": mu}
    if settings is None:
        settings = settings_for(method or "hard", **flat)
    elif any(v is not None for v in flat.values()) or method not in (None, method_name(settings)):
        raise ValueError("pass the method's knobs either as settings=... or as flat keywords (method, alpha, rho, "
                         "lam, mu), not both")
    method = method_name(settings)
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
    if mode == "multimodal" and prototypes is None:
        raise ValueError("mode='multimodal' needs prototypes (prototypes.grid_prototypes); or use mode='text'")
    mask = validate_mask(grid, mask)
    used = prototypes if mode == "multimodal" else None
    cells = cell_directions(text_dirs, mask, used)
    F, R = split_cells(cells, mask)
    G_R = None if gram is None else retain_gram(gram, F, R)  # R R^T directly when gram - F F^T would cancel
    auto = isinstance(settings, Hard) and settings.rho == "auto"
    if auto:
        settings = Hard(settings.alpha, geometry.auto_rho(text_dirs, mask, used, retain_gram=G_R))
    M, measured = edit_matrix(settings, F, R, cells, mask, classifier, G_R)
    forgotten = [[c, m] for c, row in zip(grid.classes, mask.tolist()) for m, x in zip(grid.domains, row) if x]
    knobs = asdict(settings)
    record = {
        "dataset": grid.name, "forgotten": forgotten, "mask": mask.int().tolist(),
        "classes": list(grid.classes), "domains": list(grid.domains),
        "mode": mode, "method": method, **{k: knobs.get(k) for k in ("alpha", "rho", "lam", "mu")},
        "settings": knobs, "rho_auto": auto,
        "n_prototypes": 0 if used is None else int(used.shape[2]), **measured,
        "source": dict(getattr(model, "minclip_source", {})), "minclip_unlearn": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if isinstance(settings, Hard):
        return apply_basis(model, M, settings.alpha, record, inplace)
    return apply_projector(model, M, record, inplace)


def restore(model):
    """Put the original visual.proj back, bit for bit, and drop the edit's records (in place)."""
    original = getattr(model, "minclip_original_proj", None)
    if original is None:
        raise ValueError("this model has not been edited by minclip_unlearn; nothing to restore")
    with torch.no_grad():
        model.visual.proj.copy_(original)
    del model.minclip_original_proj, model.minclip_records
    return model
