"""The edit: W' = W P^T on `model.visual.proj`, reversible, saved as a plain open_clip state_dict + a record."""
from __future__ import annotations

import copy
import datetime
import json
import os
from dataclasses import asdict
from pathlib import Path

import torch

from . import __version__, geometry
from .cache import atomic_write
from .logit_edit import logit_matrix
from .models import has_visual_proj
from .nullspace import hard_projector, kept_fraction, orth, projector_from_basis, removed_basis, soft_projector
from .paradigms import ConceptGrid, validate_mask
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


def directions(text_dirs: torch.Tensor, mask: torch.Tensor, prototypes: torch.Tensor | None = None):
    """(C, M, d) text, (C, M) mask, optional (C, M, n, d) prototypes -> F (d, k_f), R (d, k_r)."""
    cells = cell_directions(text_dirs, mask, prototypes)
    d = cells.shape[-1]
    return cells[mask].reshape(-1, d).T, cells[~mask].reshape(-1, d).T


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


def apply_projector(model, P: torch.Tensor, record: dict | None = None, inplace: bool = False):
    """Model + P (d, d) -> model whose visual.proj is W P^T; the original W is kept for restore()."""
    if not has_visual_proj(model):
        raise ValueError(f"{type(getattr(model, 'visual', model)).__name__} has no visual.proj; supported: {SUPPORTED}")
    W = model.visual.proj
    if P.shape != (W.shape[1], W.shape[1]):
        raise ValueError(f"P must be ({W.shape[1]}, {W.shape[1]}) for visual.proj of shape {tuple(W.shape)}, got {tuple(P.shape)}")
    if not torch.isfinite(P).all():
        raise ValueError("P contains NaN or inf")
    edited = model if inplace else copy.deepcopy(model)
    original = getattr(edited, "minclip_original_proj", None)
    with torch.no_grad():
        if original is None:
            edited.minclip_original_proj = W.detach().clone()
        new = edited.visual.proj.double() @ P.double().T.to(W.device)
        edited.visual.proj.copy_(new.to(W.dtype))
    edited.minclip_records = list(getattr(edited, "minclip_records", [])) + [record or {}]
    return edited


def edit_matrix(settings: Hard | Soft | Logit, F: torch.Tensor, R: torch.Tensor, cells: torch.Tensor,
                mask: torch.Tensor, classifier: torch.Tensor | None) -> tuple[torch.Tensor, dict]:
    """One method's P (d, d) and what the record says about it: rank removed, norm kept of F and R."""
    if isinstance(settings, Hard):
        U = removed_basis(F, R, rho=settings.rho)
        P = projector_from_basis(U, settings.alpha, F.dtype)
        rank, kept_f, kept_r = (U.shape[1] if settings.alpha > 0 else 0), kept_fraction(U, settings.alpha, F), \
            kept_fraction(U, settings.alpha, R)
        geometry.warn_if_low(U, F, stacklevel=4)
        return P, {"rank_removed": rank, "forget_norm_kept": kept_f, "retain_norm_kept": kept_r}
    if isinstance(settings, Soft):
        P, Q = soft_projector(F, R, lam=settings.lam, mu=settings.mu), orth(F)  # P - I = -lam F F^T A^-1
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
):
    """Forget the masked cells of the grid: a new model (by default) whose visual.proj has been edited.

    method: "hard" (default), "soft" or "logit" (needs classifier (C, d)); its knobs either as flat keywords
    (alpha, rho, lam, mu; None = the method's default) or as one settings object: Hard, Soft or Logit.
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
    F, R = directions(text_dirs, mask, used)
    auto = isinstance(settings, Hard) and settings.rho == "auto"
    if auto:
        settings = Hard(settings.alpha, geometry.auto_rho(text_dirs, mask, used))
    P, measured = edit_matrix(settings, F, R, cells, mask, classifier)
    forgotten = [[c, m] for i, c in enumerate(grid.classes) for j, m in enumerate(grid.domains) if mask[i, j]]
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
    return apply_projector(model, P, record, inplace)


def restore(model):
    """Put the original visual.proj back, bit for bit, and drop the edit's records (in place)."""
    original = getattr(model, "minclip_original_proj", None)
    if original is None:
        raise ValueError("this model has not been edited by minclip_unlearn; nothing to restore")
    with torch.no_grad():
        model.visual.proj.copy_(original)
    del model.minclip_original_proj, model.minclip_records
    return model


def record_path(path: str | os.PathLike) -> Path:
    """Checkpoint path -> the path of its JSON record (edited.pt -> edited.json)."""
    return Path(path).with_suffix(".json")


def check_writable(path: str | os.PathLike, overwrite: bool = False) -> None:
    """Raise FileExistsError if the checkpoint or its record exists and overwrite is off."""
    for p in (Path(path), record_path(path)):
        if p.exists() and not overwrite:
            raise FileExistsError(f"{p} exists; pass overwrite=True (or --overwrite) to replace it")


def save_edited(model, path: str | os.PathLike, overwrite: bool = False) -> tuple[Path, Path]:
    """Write the plain open_clip state_dict to path and the edit records to path.json; never overwrite silently."""
    check_writable(path, overwrite)
    path, rec = Path(path), record_path(path)
    atomic_write(path, lambda f: torch.save(model.state_dict(), f))
    atomic_write(rec, lambda f: f.write(json.dumps(getattr(model, "minclip_records", []), indent=2).encode()))
    return path, rec


def load_record(path: str | os.PathLike) -> list[dict]:
    """Checkpoint path (or its .json) -> the list of edit records saved beside it."""
    return json.loads(record_path(path).read_text())
