"""Projectors that remove forget directions while protecting retain directions (METHOD.md §4).

Column convention: a projector ``P`` (d x d) maps an embedding ``h`` (a column) to ``P h``.
Direction matrices hold one direction per column: ``F`` is (d, k_f), ``R`` is (d, k_r).
"""
from __future__ import annotations

import torch

Tensor = torch.Tensor


def _check_directions(A: Tensor, name: str, d: int | None = None) -> None:
    """Raise a clear error unless A is a finite (d, k) matrix."""
    if A.ndim != 2:
        raise ValueError(f"{name} must be a (d, k) matrix of column directions, got shape {tuple(A.shape)}")
    if d is not None and A.shape[0] != d:
        raise ValueError(f"{name} has {A.shape[0]} rows but the embedding dimension is {d}")
    if not torch.isfinite(A).all():
        raise ValueError(f"{name} contains NaN or inf")


def _check_gram(G: Tensor, name: str, d: int | None = None) -> None:
    """Raise a clear error unless G is a finite square (d, d) matrix."""
    if G.ndim != 2 or G.shape[0] != G.shape[1]:
        raise ValueError(f"{name} must be a square (d, d) Gram matrix, got shape {tuple(G.shape)}")
    if d is not None and G.shape[0] != d:
        raise ValueError(f"{name} is ({G.shape[0]}, {G.shape[0]}) but the embedding dimension is {d}")
    if not torch.isfinite(G).all():
        raise ValueError(f"{name} contains NaN or inf")


def orth(A: Tensor, tol: float = 1e-6, energy: float | None = None, scale: float | None = None) -> Tensor:
    """(d, k) -> (d, r): orthonormal basis of span(A) from an SVD.

    Keeps singular directions with s > tol * scale (default scale: A's largest singular value); with
    ``energy`` = rho in (0, 1], only the fewest leading directions whose squared singular values reach
    that fraction of the total.
    """
    _check_directions(A, "A")
    if energy is not None and not 0.0 < energy <= 1.0:
        raise ValueError(f"energy (rho) must be in (0, 1], got {energy}")
    if A.shape[1] == 0:
        return A.new_zeros(A.shape[0], 0)
    A = A.double()
    if A.shape[1] > A.shape[0]:  # many columns: eigh of the small (d, d) Gram matrix A A^T = U S^2 U^T
        return orth_gram(A @ A.T, tol=tol, energy=energy, scale=scale)
    U, S, _ = torch.linalg.svd(A, full_matrices=False)
    return _truncate(U, S, tol, energy, scale)


def _truncate(U: Tensor, S: Tensor, tol: float, energy: float | None, scale: float | None) -> Tensor:
    """U (d, k), descending singular values S (k,) -> U[:, :r], r from the tolerance and the energy rho."""
    if S.numel() == 0 or S[0] <= 0:
        return U.new_zeros(U.shape[0], 0)
    r = int((S > tol * (S[0] if scale is None else scale)).sum())
    if energy is not None and energy < 1.0:
        cum = torch.cumsum(S**2, 0) / (S**2).sum()
        r = min(r, int((cum < energy - 1e-12).sum()) + 1)
    return U[:, :r]


def orth_gram(G: Tensor, tol: float = 1e-6, energy: float | None = None, scale: float | None = None) -> Tensor:
    """Gram G = A A^T (d, d) -> (d, r) float64: orth(A) without A, from eigh(G) = U S^2 U^T; O(d^3)."""
    _check_gram(G, "G")
    if energy is not None and not 0.0 < energy <= 1.0:
        raise ValueError(f"energy (rho) must be in (0, 1], got {energy}")
    S2, U = torch.linalg.eigh(G.double())
    return _truncate(U.flip(1), S2.flip(0).clamp_min(0).sqrt(), tol, energy, scale)


def gram(A: Tensor) -> Tensor:
    """(d, k) column directions -> (d, d) float64 Gram matrix A A^T; O(d^2 k), the one cost that grows with k."""
    _check_directions(A, "A")
    A = A.double()
    return A @ A.T


def retain_gram(all_gram: Tensor, F: Tensor, R: Tensor | None = None, max_ratio: float = 100.0) -> Tensor:
    """Gram of all directions G (d, d), forget F (d, k_f) -> (d, d) retain Gram R R^T = G - F F^T; O(d^2 k_f).

    The difference cancels digits when the forget part dominates G: if ||G|| > max_ratio * ||G - F F^T||
    (Frobenius), the retain directions R (d, k_r) are needed and their Gram is computed directly.
    """
    _check_directions(F, "F")
    _check_gram(all_gram, "the Gram of every cell's directions (edit.all_cells_gram)", F.shape[0])
    G = all_gram.double() - gram(F)
    G = (G + G.T) / 2
    if torch.linalg.matrix_norm(all_gram.double()) <= max_ratio * torch.linalg.matrix_norm(G):
        return G
    if R is None:
        raise ValueError("the forget directions carry almost all of all_gram: G - F F^T would lose its digits; "
                         "pass R (the retain directions) to compute R R^T directly")
    _check_directions(R, "R", all_gram.shape[0])
    return gram(R)


def removed_basis(
    F: Tensor, R: Tensor | None = None, rho: float = 0.99, tol: float = 1e-6, retain_gram: Tensor | None = None
) -> Tensor:
    """F (d, k_f), R (d, k_r) or its Gram R R^T (d, d) -> U (d, r) float64, r <= k_f: the basis the edit removes.

    U = orth((I - Q_R Q_R^T) F), Q_R = orth(R, energy=rho). With retain_gram, Q_R comes from eigh of the
    (d, d) Gram, so the cost is O(d^3 + d^2 k_f) whatever k_r is.
    """
    _check_directions(F, "F")
    d = F.shape[0]
    F64 = F.double()
    scale = float(torch.linalg.matrix_norm(F64, 2)) if F.shape[1] else 0.0
    if retain_gram is not None:
        _check_gram(retain_gram, "retain_gram", d)
        Q_R = orth_gram(retain_gram, tol=tol, energy=rho)
        F64 = F64 - Q_R @ (Q_R.T @ F64)
    elif R is not None and R.shape[-1] > 0:
        _check_directions(R, "R", d)
        Q_R = orth(R.double(), tol=tol, energy=rho)
        F64 = F64 - Q_R @ (Q_R.T @ F64)
    return orth(F64, tol=tol, scale=scale)  # tolerance relative to F, so round-off left by Q_R is not "forgotten"


def projector_from_basis(U: Tensor, alpha: float = 1.0, dtype: torch.dtype | None = None) -> Tensor:
    """U (d, r) orthonormal -> P_alpha (d, d) = I - alpha U U^T (in dtype, default U's)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha (strength) must be in [0, 1], got {alpha}")
    U64 = U.double()
    P = torch.eye(U.shape[0], dtype=torch.float64) - alpha * (U64 @ U64.T)
    return P.to(dtype or U.dtype)


def kept_fraction(U: Tensor, alpha: float = 1.0, A: Tensor | None = None, gram: Tensor | None = None) -> float:
    """||P A|| / ||A|| for P = I - alpha U U^T, from U (d, r) and A (d, k) or its Gram A A^T (d, d), without P.

    With the Gram: ||P A||^2 = tr(G) - (2 alpha - alpha^2) tr(U^T G U), O(d^2 r). Prefer A when ||P A|| is
    near 0 (the forget side): the Gram form subtracts two nearly equal numbers there.
    """
    U64 = U.double()
    if A is not None:
        A64 = A.double()
        return float((A64 - alpha * (U64 @ (U64.T @ A64))).norm() / A64.norm())
    if gram is None:
        raise ValueError("kept_fraction needs A (d, k) or its Gram A A^T (d, d)")
    G = gram.double()
    total = torch.trace(G)
    removed = (2 * alpha - alpha**2) * ((G @ U64) * U64).sum()  # tr(U^T G U)
    return float((total - removed).clamp_min(0).sqrt() / total.sqrt())


def hard_projector(
    F: Tensor, R: Tensor | None = None, alpha: float = 1.0, rho: float = 0.99, tol: float = 1e-6,
    retain_gram: Tensor | None = None,
) -> Tensor:
    """F (d, k_f), R (d, k_r) -> P_alpha (d, d) = I - alpha U U^T, U = orth((I - Q_R Q_R^T) F).

    Pass retain_gram = R R^T (d, d) instead of R for the O(d^3 + d^2 k_f) path (see retain_gram()).
    """
    return projector_from_basis(removed_basis(F, R, rho=rho, tol=tol, retain_gram=retain_gram), alpha, F.dtype)


def soft_projector(F: Tensor, R: Tensor | None = None, lam: float = 100.0, mu: float = 10.0,
                   retain_gram: Tensor | None = None) -> Tensor:
    """F (d, k_f), R (d, k_r) -> P* (d, d) = (I + mu R R^T)(I + lam F F^T + mu R R^T)^{-1}.

    The unique minimiser of ||P - I||^2 + lam ||P F||^2 + mu ||P R - R||^2 (CCUP, METHOD.md §4b).
    retain_gram = R R^T (d, d) may stand in for R: the cost is then O(d^3 + d^2 k_f).
    """
    if lam < 0 or mu < 0:
        raise ValueError(f"lam and mu must be >= 0, got lam={lam}, mu={mu}")
    _check_directions(F, "F")
    d = F.shape[0]
    I = torch.eye(d, dtype=torch.float64)
    F64 = F.double()
    if retain_gram is not None:
        _check_gram(retain_gram, "retain_gram", d)
        G_R = retain_gram.double()
    elif R is not None:
        _check_directions(R, "R", d)
        G_R = R.double() @ R.double().T
    else:
        G_R = None
    B = I + mu * G_R if G_R is not None else I.clone()
    A = B + lam * (F64 @ F64.T)
    # P A = B  <=>  A^T P^T = B^T ; A and B are symmetric, so solve A X = B and transpose.
    P = torch.linalg.solve(A, B).T
    return P.to(F.dtype)
