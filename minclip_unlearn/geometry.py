"""What a retain-protected linear edit can remove, known before editing and without data (METHOD.md §4d).

- `interaction_share`: the two-way decomposition X[c, m] = mu + a_c + b_m + i_cm of a (C, M, d) grid of
  cell vectors, as shares of the variance about the grand mean.
- `forgettability`: ||(I - Q_R Q_R^T) F|| / ||F||, the fraction of the forget directions' norm that lies
  outside the protected retain span, with F, R and Q_R built exactly as the edit builds them.
- `class_evidence_kept`: how much of the forgotten cells' image-side class evidence (their prototypes'
  zero-shot margin) survives the edit, from the prototypes alone.
- `auto_rho`: the data-free choice of the energy threshold rho (measured in the chapter: the class evidence
  predicts zero-shot forgetting better than the norm does).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as Fn

from . import edit
from .nullspace import gram, orth, removed_basis
from .settings import Hard

LOW_FORGETTABILITY = 0.1  # below this share of the forget norm outside the retain span, the edit removes almost nothing
AUTO_RHOS = (0.99, 0.98, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.6, 0.5)  # auto_rho tries these, largest first
AUTO_TARGET = 1.0  # auto_rho: the share of the forgotten cells' class evidence the edit must remove (1 = all of it)
AUTO_KEEP = 0.9  # auto_rho: the share of the retained cells' class evidence the edit must keep
DEFAULT_RHO = float(Hard().rho)  # the package default, which auto_rho falls back to
CELLS = ("forget", "retain", "same_class")  # the groups of cells class_evidence_kept reads
CHAPTER = "What a linear edit can forget"


def _as_numpy(X) -> np.ndarray:
    """Tensor or array -> float64 numpy array."""
    return X.detach().double().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X, dtype=np.float64)


def interaction_share(X) -> dict[str, float]:
    """(C, M, d) cell vectors -> {"class", "domain", "interaction"}: shares of variance about the grand mean (sum 1)."""
    X = _as_numpy(X)
    if X.ndim != 3 or X.shape[0] < 2 or X.shape[1] < 2:
        raise ValueError(f"X must be a (C, M, d) grid with C >= 2 and M >= 2, got shape {X.shape}")
    mu = X.mean(axis=(0, 1))
    a = X.mean(axis=1) - mu  # (C, d) class effects
    b = X.mean(axis=0) - mu  # (M, d) domain effects
    i = X - mu - a[:, None, :] - b[None, :, :]
    total = float(((X - mu) ** 2).sum())
    if total <= 0:
        raise ValueError("X has no variance about its grand mean: every cell is the same vector")
    C, M = X.shape[:2]
    return {"class": M * float((a**2).sum()) / total, "domain": C * float((b**2).sum()) / total,
            "interaction": float((i**2).sum()) / total}


def forgettability(text_dirs: torch.Tensor, mask: torch.Tensor, prototypes: torch.Tensor | None = None,
                   rho: float = 0.99) -> float:
    """(C, M, d) text, (C, M) mask, optional (C, M, n, d) prototypes -> ||(I - Q_R Q_R^T) F|| / ||F|| in [0, 1]."""
    F, R = edit.directions(text_dirs, mask.bool(), prototypes)
    F = F.double()
    if R.shape[1] == 0:
        return 1.0
    Q_R = orth(R.double(), energy=rho)  # the protected span, exactly as hard_projector builds it
    return float((F - Q_R @ (Q_R.T @ F)).norm() / F.norm())


def forgettability_map(text_dirs: torch.Tensor, prototypes: torch.Tensor | None = None,
                       rho: float = 0.99) -> np.ndarray:
    """(C, M, d) text, optional (C, M, n, d) prototypes -> (C, M) forgettability of each cell forgotten alone."""
    C, M = text_dirs.shape[:2]
    out = np.zeros((C, M))
    for c in range(C):
        for m in range(M):
            mask = torch.zeros(C, M, dtype=torch.bool)
            mask[c, m] = True
            out[c, m] = forgettability(text_dirs, mask, prototypes, rho)
    return out


def domain_free_classifier(text_dirs: torch.Tensor) -> torch.Tensor:
    """(C, M, d) text directions -> (C, d) normalised class embeddings: each class's cells averaged over domains."""
    return Fn.normalize(Fn.normalize(text_dirs.double(), dim=-1).mean(dim=1), dim=-1)


def _margins(V: torch.Tensor, labels: torch.Tensor, classifier: torch.Tensor) -> torch.Tensor:
    """(k, d) vectors, (k,) labels, (C, d) classifier -> (k,) cosine margin: own class minus best other class."""
    cos = Fn.normalize(V, dim=-1) @ classifier.T
    own = cos.gather(1, labels[:, None]).squeeze(1)
    other = cos.scatter(1, labels[:, None], -torch.inf).amax(dim=1)
    return own - other


def class_evidence_kept(text_dirs: torch.Tensor, mask: torch.Tensor, prototypes: torch.Tensor | None = None,
                        rho: float = 0.99, classifier: torch.Tensor | None = None, cells: str = "forget") -> float:
    """Share of the zero-shot class evidence of the forgotten (or retained) cells that survives the hard edit.

    Evidence: the mean cosine margin (own class minus best other class) of the cells' prototypes (their text
    directions when no prototypes are given) against `classifier` (C, d) (default: `domain_free_classifier`),
    after the edit divided by before. Data-free. cells="forget": 1 = untouched, 0 = the margin is gone,
    < 0 = they now read as another class; cells="retain": what the retained cells keep (1 = all);
    cells="same_class": what the retained cells of a class with a forgotten cell keep (NaN if none).
    """
    F, R = edit.directions(text_dirs, mask.bool(), prototypes)
    return _evidence_kept(removed_basis(F, R, rho=rho), text_dirs, mask, prototypes, classifier, cells)


def _evidence_kept(U: torch.Tensor, text_dirs: torch.Tensor, mask: torch.Tensor, prototypes: torch.Tensor | None,
                   classifier: torch.Tensor | None, cells: str) -> float:
    """Removed basis U (d, r) of the edit P = I - U U^T -> mean margin after / before over the forgotten or
    retained cells' vectors (class_evidence_kept); P v = v - U (U^T v) costs O(d r) per vector."""
    if cells not in CELLS:
        raise ValueError(f"unknown cells {cells!r}; valid: {', '.join(CELLS)}")
    mask = mask.bool()
    vectors = (prototypes if prototypes is not None else text_dirs.unsqueeze(2)).double()
    classifier = domain_free_classifier(text_dirs) if classifier is None else Fn.normalize(classifier.double(), dim=-1)
    chosen = {"forget": mask, "retain": ~mask, "same_class": ~mask & mask.any(dim=1, keepdim=True)}[cells]
    if not chosen.any():
        return float("nan")
    V = vectors[chosen]  # (k, n, d)
    labels = torch.nonzero(chosen)[:, 0].repeat_interleave(V.shape[1])
    V = V.reshape(-1, V.shape[-1])
    before = _margins(V, labels, classifier).mean()
    if before <= 0:
        return float("nan")  # no evidence to keep or lose: these directions do not read as their class at all
    U = U.double()
    return float(_margins(V - (V @ U) @ U.T, labels, classifier).mean() / before)


def auto_rho(text_dirs: torch.Tensor, mask: torch.Tensor, prototypes: torch.Tensor | None = None,
             target: float = AUTO_TARGET, rhos: tuple[float, ...] = AUTO_RHOS, keep: float = AUTO_KEEP,
             measure: str = "evidence", classifier: torch.Tensor | None = None,
             retain_gram: torch.Tensor | None = None) -> float:
    """The data-free energy threshold: the largest rho in `rhos` whose edit removes `target` and keeps `keep`.

    measure="evidence" (default): the forgotten cells lose at least `target` of their class evidence
    (1 - class_evidence_kept >= target) while the retained cells keep at least `keep` of theirs, both
    all together and those of the classes that lose a cell (the same class in other domains).
    measure="forgettability": forgettability(rho) >= target (no retain condition).
    When no rho qualifies: DEFAULT_RHO (the package default; the edit then warns if it removes little).
    Cost: the retain Gram R R^T once (or retain_gram (d, d), given), then one eigh and one SVD of F's
    residual per rho tried, largest rho first.
    """
    if measure not in ("forgettability", "evidence"):
        raise ValueError(f"unknown measure {measure!r}; valid: forgettability, evidence")
    F, R = edit.directions(text_dirs, mask.bool(), prototypes)
    G_R = gram(R) if retain_gram is None and measure == "evidence" else retain_gram
    for rho in sorted(rhos, reverse=True):
        if measure == "forgettability":
            if forgettability(text_dirs, mask, prototypes, rho) >= target:
                return float(rho)
            continue
        U = removed_basis(F, rho=rho, retain_gram=G_R)
        removed = 1.0 - _evidence_kept(U, text_dirs, mask, prototypes, classifier, "forget")
        retain = _evidence_kept(U, text_dirs, mask, prototypes, classifier, "retain")
        same = _evidence_kept(U, text_dirs, mask, prototypes, classifier, "same_class")  # NaN: no such cells
        if removed >= target and retain >= keep and (np.isnan(same) or same >= keep):
            return float(rho)
    return DEFAULT_RHO


def low_forgettability_message(frac: float) -> str:
    """Forgettability in [0, 1] -> the one-line warning that the edit removes almost nothing."""
    return (f"the edit removes almost nothing: only {100 * frac:.0f}% of the forget directions lie outside the "
            f"protected retain span; see the chapter '{CHAPTER}' (lower rho, or use rho='auto')")


def warn_if_low(U: torch.Tensor, F: torch.Tensor, stacklevel: int = 2) -> None:
    """Removed basis U (d, r), forget directions F (d, k_f): warn in one line when ||U^T F|| / ||F|| (= forgettability)
    is below LOW_FORGETTABILITY."""
    frac = float((U.T.double() @ F.double()).norm() / F.double().norm())
    if frac < LOW_FORGETTABILITY:
        warnings.warn(low_forgettability_message(frac), stacklevel=stacklevel)

