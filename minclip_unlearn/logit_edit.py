"""The logit-constrained edit: the book's own extension (METHOD.md §4e), not in Paper A/B, LEACE, INLP, UCE or MACE.

Zero-shot needs each retained image's class ranking, not its whole embedding. So constrain logits:
minimise ||P - I||_F subject to
- held logits: t_k^T P r = t_k^T r for every retained direction r of a cell (c, m) and every class k
  that is not forgotten in domain m (c itself included);
- forget logits: t_s^T P f = target(f) for every direction f of a forgotten cell (s, m).

Each constraint is <t r^T, P> = value, so Delta = P - I = sum_j lambda_j t_j r_j^T with the Gram
(T T^T) o (R R^T). That system has one row per (direction, class) pair: ~2 million at DomainNet scale.
The structure avoids it. The held constraints of class k say Delta^T t_k is orthogonal to W_k, the span
of the retained directions in the domains where k is held. For the three paradigms these spans are
nested (W_S within W_all), so R^d splits into orthogonal layers L_1, L_2, ..., L_perp; on layer l the
held classes H_l are fixed and the min-norm edit moves the forgotten class's embedding residualised
against them. What is left is one small system over the forget directions only (k_f x k_f):

    Delta = sum_j c_j sum_l (U N_l a_{s_j}) (Pi_l f_j)^T,   G_ij = sum_l (Pi_l f_i . Pi_l f_j)(a_{s_i}^T N_l a_{s_j}),

with U an orthonormal basis of the class embeddings, a_s = U^T t_s, N_l the projector off the held
classes' coordinates (from an eigendecomposition of their small Gram) and G c = b solved by lstsq.
Soft version: N_l -> (I + mu A_l A_l^T)^{-1} (a penalty mu on every held logit over unit directions of
its span) and G -> G + I / lam (a penalty lam on the forget targets); mu, lam -> inf is the hard edit.
Column convention as in nullspace.py: P maps a column embedding h to P h.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .nullspace import orth

Tensor = torch.Tensor
OUTSIDE = ("free", "held")  # the logits on what no retained direction spans: unconstrained, or all held


@dataclass
class Layer:
    """One layer of R^d: an orthonormal basis E (d, q) and the classes whose logits are held on it."""

    basis: Tensor
    held: list[int]


def targets(classifier: Tensor, F: Tensor, classes: Tensor, gamma: float = 1.0) -> Tensor:
    """(C, d) class embeddings, F (d, k), (k,) forgotten class of each column -> (k,) target logits.

    The mean of the other classes' logits on f, minus gamma of their standard deviation: the forgotten
    class then ranks among the other classes (gamma = 0: at their mean; gamma = 1: one spread below).
    """
    C = classifier.shape[0]
    if C < 2:
        raise ValueError(f"the logit edit needs at least 2 classes, got {C}")
    L = (classifier.double() @ F.double()).T  # (k, C)
    others = torch.ones_like(L, dtype=torch.bool)
    others[torch.arange(L.shape[0]), classes] = False
    Lo = L[others].reshape(L.shape[0], C - 1)
    return Lo.mean(1) - gamma * Lo.std(1, correction=0)


def held_domains(mask: Tensor) -> list[list[int]]:
    """(C, M) forget mask -> for each class, the domains where its logit is held (where it is not forgotten)."""
    return [torch.nonzero(~row).flatten().tolist() for row in mask.bool()]


def domain_chain(mask: Tensor) -> list[list[int]]:
    """(C, M) mask -> the distinct non-empty held-domain sets, smallest first; ValueError unless nested."""
    sets = sorted({tuple(h) for h in held_domains(mask) if h}, key=len)
    for small, big in zip(sets, sets[1:]):
        if not set(small) <= set(big):
            raise ValueError(
                "the logit edit needs nested held domains (true for forget_classes, forget_classes_in_domains and "
                f"forget_domains masks); this mask holds classes in domain sets {[list(s) for s in sets]}")
    return [list(s) for s in sets]


def spectral_norm(A: Tensor) -> float:
    """(d, k) -> its largest singular value, from the eigenvalues of the smaller of its two Grams."""
    G = A.T @ A if A.shape[1] <= A.shape[0] else A @ A.T
    return float(torch.linalg.eigvalsh(G)[-1].clamp_min(0).sqrt())


def layers(cells: Tensor, mask: Tensor, rho: float = 1.0, tol: float = 1e-6) -> list[Layer]:
    """(C, M, n, d) directions, (C, M) mask -> orthogonal layers of the retained span, with their held classes.

    Layer i spans the retained directions of the i-th held-domain set beyond those of the one before;
    rho keeps, per layer, the fewest leading directions with that share of its energy (1.0: all).
    """
    C, M, n, d = cells.shape
    held = held_domains(mask)
    out, Q, done = [], cells.new_zeros(d, 0, dtype=torch.float64), set()
    for doms in domain_chain(mask):
        new = [m for m in doms if m not in done]
        block = cells[:, new][~mask[:, new]].reshape(-1, d).double().T  # retained directions of the new domains
        if block.shape[1] == 0:
            continue
        scale = spectral_norm(block)
        E = orth(block - Q @ (Q.T @ block), tol=tol, energy=rho, scale=scale)
        out.append(Layer(E, [k for k in range(C) if set(doms) <= set(held[k])]))
        Q, done = torch.cat([Q, E], 1), done | set(new)
    return out


def class_filter(A: Tensor, held: list[int], mu: float | None, tol: float = 1e-9) -> Tensor:
    """(p, C) class coordinates, held classes -> (p, p) filter: hard, the projector off their span; soft, (I + mu A_H A_H^T)^-1."""
    p = A.shape[0]
    if not held:
        return torch.eye(p, dtype=A.dtype)
    AH = A[:, held]
    e, V = torch.linalg.eigh(AH @ AH.T)
    if mu is None:
        keep = (e <= tol * max(float(e.max()), 1e-300)).to(A.dtype)
    else:
        keep = 1.0 / (1.0 + mu * e.clamp_min(0))
    return (V * keep) @ V.T


def logit_delta(cells: Tensor, mask: Tensor, classifier: Tensor, gamma: float = 1.0, rho: float = 1.0,
                lam: float | None = None, mu: float | None = None, outside: str = "free", tol: float = 1e-6) -> Tensor:
    """(C, M, n, d) directions, (C, M) mask, (C, d) class embeddings -> Delta (d, d), the min-norm P - I.

    lam / mu: None for hard constraints on the forget targets / held logits, a weight for the soft version.
    """
    C, M, n, d = cells.shape
    if tuple(mask.shape) != (C, M) or tuple(classifier.shape) != (C, d):
        raise ValueError(f"need cells (C, M, n, d), mask (C, M), classifier (C, d); got {tuple(cells.shape)}, "
                         f"{tuple(mask.shape)}, {tuple(classifier.shape)}")
    if (lam is not None and lam <= 0) or (mu is not None and mu < 0):
        raise ValueError(f"lam must be > 0 and mu >= 0 (or None for hard constraints), got lam={lam}, mu={mu}")
    mask = mask.bool()
    if not mask.any():
        return torch.zeros(d, d, dtype=torch.float64)
    T = classifier.double()
    F = cells[mask].double()  # (k_cells, n, d)
    cls = torch.nonzero(mask)[:, 0].repeat_interleave(n)  # forgotten class of each forget direction
    F = F.reshape(-1, d).T  # (d, k_f)
    b = targets(T, F, cls, gamma) - (T[cls] * F.T).sum(1)  # logit change each forget direction needs
    U = orth(T.T, tol=1e-9)  # (d, p) basis of the class embeddings
    A = U.T @ T.T  # (p, C) class coordinates
    G = torch.zeros(F.shape[1], F.shape[1], dtype=torch.float64)
    if outside not in OUTSIDE:
        raise ValueError(f"unknown outside {outside!r}; valid: {', '.join(OUTSIDE)}")
    outside_held = list(range(C)) if outside == "held" else []
    parts, rest = [], F.clone()
    for layer in layers(cells, mask, rho, tol) + [None]:  # None: what no retained direction spans
        Fl = layer.basis @ (layer.basis.T @ F) if layer is not None else rest
        rest = rest - Fl
        N = class_filter(A, layer.held if layer is not None else outside_held, mu)
        G += (Fl.T @ Fl) * (A[:, cls].T @ N @ A[:, cls])
        parts.append((U @ (N @ A[:, cls]), Fl))
    scale = float(((F * F).sum(0) * (T[cls] * T[cls]).sum(1)).max())  # G's diagonal before any filter
    return sum((left * solve_psd(G, b, scale, lam, tol)) @ Fl.T for left, Fl in parts)


def solve_psd(G: Tensor, b: Tensor, scale: float, lam: float | None = None, tol: float = 1e-6) -> Tensor:
    """(k, k) PSD Gram, (k,) b -> (k,) c: (G + I/lam) c = b for the soft targets, else G^+ b (eigh, cutoff tol*scale)."""
    if lam is not None:
        return torch.linalg.solve(G + torch.eye(G.shape[0], dtype=G.dtype) / lam, b)
    e, V = torch.linalg.eigh(G)
    keep = e > tol * scale  # directions the held logits leave free; the rest cannot move (rank deficiency)
    return V[:, keep] @ ((V[:, keep].T @ b) / e[keep])


def logit_projector(cells: Tensor, mask: Tensor, classifier: Tensor, gamma: float = 1.0, alpha: float = 1.0,
                    rho: float = 1.0, lam: float | None = None, mu: float | None = None, outside: str = "free") -> Tensor:
    """(C, M, n, d) directions, (C, M) mask, (C, d) class embeddings -> P (d, d) = I + alpha Delta (cells' dtype)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha (strength) must be in [0, 1], got {alpha}")
    d = cells.shape[-1]
    P = torch.eye(d, dtype=torch.float64) + alpha * logit_delta(cells, mask, classifier, gamma, rho, lam, mu, outside)
    return P.to(cells.dtype)


def logit_matrix(settings, cells: Tensor, mask: Tensor, classifier: Tensor | None, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """settings.Logit, (C, M, k, d) cells, (C, M) mask, (C, d) classifier -> (P (d, d), Q (d, r)) with P - I = Q (...)."""
    if classifier is None:
        raise ValueError("method='logit' needs classifier=C, the (num_classes, d) class embeddings "
                         "(prompts.class_embeddings or lab.classifier)")
    if tuple(classifier.shape) != (cells.shape[0], cells.shape[-1]):
        raise ValueError(f"classifier must be (num_classes, d) = {(cells.shape[0], cells.shape[-1])}, "
                         f"got {tuple(classifier.shape)}")
    T = torch.nn.functional.normalize(classifier.double(), dim=-1)
    P = logit_projector(cells.double(), mask, T, settings.gamma, settings.alpha, settings.rho, settings.lam,
                        settings.mu, settings.outside).to(dtype)
    return P, orth(T.T)  # P - I = sum of class-embedding columns times rows

