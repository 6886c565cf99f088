"""The edit: W' = W P^T on `model.visual.proj`, reversible, saved as a plain open_clip state_dict + a record."""
from __future__ import annotations

import copy
import datetime
import json
import os
from pathlib import Path

import torch

from . import __version__
from .models import has_visual_proj
from .nullspace import hard_projector, soft_projector
from .paradigms import ConceptGrid, validate_mask

MODES = ("multimodal", "text")
METHODS = ("hard", "soft")
SUPPORTED = "open_clip VisionTransformer CLIPs with a visual.proj matrix (ViT-B-32, ViT-B-16, ViT-L-14, ..., and 'toy')"


def directions(text_dirs: torch.Tensor, mask: torch.Tensor, prototypes: torch.Tensor | None = None):
    """(C, M, d) text, (C, M) mask, optional (C, M, n, d) prototypes -> F (d, k_f), R (d, k_r)."""
    if text_dirs.ndim != 3 or tuple(text_dirs.shape[:2]) != tuple(mask.shape):
        raise ValueError(f"text directions must be (C, M, d) matching the mask {tuple(mask.shape)}, got {tuple(text_dirs.shape)}")
    cells = text_dirs.unsqueeze(2)  # (C, M, 1, d)
    if prototypes is not None:
        if prototypes.ndim != 4 or prototypes.shape[:2] != text_dirs.shape[:2] or prototypes.shape[-1] != text_dirs.shape[-1]:
            raise ValueError(f"prototypes must be (C, M, n, d) = {tuple(text_dirs.shape[:2])} x n x {text_dirs.shape[-1]}, got {tuple(prototypes.shape)}")
        cells = torch.cat([cells, prototypes.to(text_dirs.dtype)], dim=2)
    d = cells.shape[-1]
    return cells[mask].reshape(-1, d).T, cells[~mask].reshape(-1, d).T


def projector(
    F: torch.Tensor, R: torch.Tensor, method: str = "hard",
    alpha: float = 1.0, rho: float = 0.99, lam: float = 100.0, mu: float = 10.0,
) -> torch.Tensor:
    """F (d, k_f), R (d, k_r) -> P (d, d): the retain-protected hard projector, or the soft CCUP form."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    if method == "hard":
        return hard_projector(F, R, alpha=alpha, rho=rho)
    return soft_projector(F, R, lam=lam, mu=mu)


def kept(P: torch.Tensor, A: torch.Tensor) -> float:
    """P (d, d), A (d, k) -> ||P A|| / ||A||: the fraction of the directions' norm that survives P."""
    return float((P.double() @ A.double()).norm() / A.double().norm())


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


def unlearn(
    model, grid: ConceptGrid, mask: torch.Tensor, text_dirs: torch.Tensor, prototypes: torch.Tensor | None = None,
    mode: str = "multimodal", method: str = "hard", alpha: float = 1.0, rho: float = 0.99,
    lam: float = 100.0, mu: float = 10.0, inplace: bool = False,
):
    """Forget the masked cells of the grid: a new model (by default) whose visual.proj has been projected."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
    if mode == "multimodal" and prototypes is None:
        raise ValueError("mode='multimodal' needs prototypes (prototypes.grid_prototypes); or use mode='text'")
    mask = validate_mask(grid, mask)
    F, R = directions(text_dirs, mask, prototypes if mode == "multimodal" else None)
    P = projector(F, R, method, alpha, rho, lam, mu)
    forgotten = [[c, m] for i, c in enumerate(grid.classes) for j, m in enumerate(grid.domains) if mask[i, j]]
    record = {
        "dataset": grid.name, "forgotten": forgotten, "mask": mask.int().tolist(),
        "classes": list(grid.classes), "domains": list(grid.domains),
        "mode": mode, "method": method, "alpha": alpha, "rho": rho, "lam": lam, "mu": mu,
        "n_prototypes": 0 if prototypes is None or mode == "text" else int(prototypes.shape[2]),
        "rank_removed": int(torch.linalg.matrix_rank(torch.eye(P.shape[0], dtype=P.dtype) - P, hermitian=method == "hard")),
        "forget_norm_kept": kept(P, F), "retain_norm_kept": kept(P, R),
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
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, write in ((path, lambda f: torch.save(model.state_dict(), f)),
                          (rec, lambda f: f.write_bytes(json.dumps(getattr(model, "minclip_records", []), indent=2).encode()))):
        tmp = target.with_name(target.name + ".part")
        write(tmp)
        os.replace(tmp, target)
    return path, rec


def load_record(path: str | os.PathLike) -> list[dict]:
    """Checkpoint path (or its .json) -> the list of edit records saved beside it."""
    return json.loads(record_path(path).read_text())
