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
        S2, U = torch.linalg.eigh(A @ A.T)
        S, U = S2.flip(0).clamp_min(0).sqrt(), U.flip(1)
    else:
        U, S, _ = torch.linalg.svd(A, full_matrices=False)
    if S.numel() == 0 or S[0] <= 0:
        return A.new_zeros(A.shape[0], 0)
    r = int((S > tol * (S[0] if scale is None else scale)).sum())
    if energy is not None and energy < 1.0:
        cum = torch.cumsum(S**2, 0) / (S**2).sum()
        r = min(r, int((cum < energy - 1e-12).sum()) + 1)
    return U[:, :r].to(A.dtype)


def hard_projector(
    F: Tensor, R: Tensor | None = None, alpha: float = 1.0, rho: float = 0.99, tol: float = 1e-6
) -> Tensor:
    """F (d, k_f), R (d, k_r) -> P_alpha (d, d) = I - alpha U U^T, U = orth((I - Q_R Q_R^T) F)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha (strength) must be in [0, 1], got {alpha}")
    _check_directions(F, "F")
    d = F.shape[0]
    F64 = F.double()
    scale = float(torch.linalg.matrix_norm(F64, 2)) if F.shape[1] else 0.0
    if R is not None and R.shape[-1] > 0:
        _check_directions(R, "R", d)
        Q_R = orth(R.double(), tol=tol, energy=rho)
        F64 = F64 - Q_R @ (Q_R.T @ F64)
    U = orth(F64, tol=tol, scale=scale)  # tolerance relative to F, so round-off left by Q_R is not "forgotten"
    P = torch.eye(d, dtype=torch.float64) - alpha * (U @ U.T)
    return P.to(F.dtype)


def soft_projector(F: Tensor, R: Tensor | None = None, lam: float = 100.0, mu: float = 10.0) -> Tensor:
    """F (d, k_f), R (d, k_r) -> P* (d, d) = (I + mu R R^T)(I + lam F F^T + mu R R^T)^{-1}.

    The unique minimiser of ||P - I||^2 + lam ||P F||^2 + mu ||P R - R||^2 (CCUP, METHOD.md §4b).
    """
    if lam < 0 or mu < 0:
        raise ValueError(f"lam and mu must be >= 0, got lam={lam}, mu={mu}")
    _check_directions(F, "F")
    d = F.shape[0]
    I = torch.eye(d, dtype=torch.float64)
    F64 = F.double()
    if R is not None:
        _check_directions(R, "R", d)
    B = I + mu * (R.double() @ R.double().T) if R is not None else I.clone()
    A = B + lam * (F64 @ F64.T)
    # P A = B  <=>  A^T P^T = B^T ; A and B are symmetric, so solve A X = B and transpose.
    P = torch.linalg.solve(A, B).T
    return P.to(F.dtype)
