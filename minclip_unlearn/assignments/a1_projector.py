"""Assignment 1 checks: the student's ``orth`` and ``projector`` on seeded cases.

A student's notebook calls :func:`check_orth` / :func:`check_projector` on fixed cases (seed 0 and 1). The
grader draws a fresh seed per run, sends the cases' inputs into the kernel, gets back what the student's
functions returned as plain data (:func:`runner.invoke`), and scores those outputs here, in its own process.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..nullspace import hard_projector, orth as reference_orth
from .results import NOT_IMPLEMENTED, Result
from .runner import CheckSpec, Measured, invoke, maxabs, missing, run_checks, short, usable

TOL = 1e-6
ORTH_SEED, PROJECTOR_SEED = 1, 0  # the cases students see; the grader draws others
Tensor = torch.Tensor


# ====================================================================== part A: orth
@dataclass(frozen=True)
class OrthCase:
    name: str
    what: str
    A: Tensor
    energy: float | None = None

    def kwargs(self) -> dict:
        return {} if self.energy is None else {"energy": self.energy}


def orth_cases(seed: int = ORTH_SEED) -> list[OrthCase]:
    """Seeded (10, k) matrices: full column rank, rank-deficient, more columns than rows, a clear energy gap."""
    g = torch.Generator().manual_seed(seed)
    d = 10
    randn = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    B = randn(d, 3)
    deficient = B @ randn(3, 6)
    Qs, _ = torch.linalg.qr(randn(d, d))
    Qv, _ = torch.linalg.qr(randn(6, 6))
    s = torch.tensor([10.0, 5.0, 1.0, 0.1, 0.05, 0.01], dtype=torch.float64)
    graded = Qs[:, :6] @ torch.diag(s) @ Qv.T  # energy: 79%, 99.2%, 99.99%, ... -> energy=0.9 keeps 2
    return [
        OrthCase("tall", "A is (10, 4), full column rank", randn(d, 4)),
        OrthCase("rank_deficient", "A is (10, 6) of rank 3", deficient),
        OrthCase("wide", "A is (10, 30): more columns than dimensions, rank 10", randn(d, 30)),
        OrthCase("energy", "A is (10, 6), singular values 10, 5, 1, 0.1, ...; energy=0.9", graded, 0.9),
    ]


def orth_outcomes(fn: Callable, cases: list[OrthCase]) -> list[dict]:
    """Call the student's orth on every case -> plain outcomes (runner.invoke)."""
    return [invoke(fn, (c.A,), c.kwargs()) for c in cases]


def _on(case) -> str:
    return f"on case '{case.name}' ({case.what})"


def _orthonormal(outs) -> Measured:
    for case, Q, err in outs:
        if Q is None:
            return Measured(None, f"{err} {_on(case)}", hinted=False)
        e = maxabs(Q.T @ Q - torch.eye(Q.shape[1], dtype=Q.dtype))
        if e > TOL:
            return Measured(e, f"orthonormality failed: max |QᵀQ − I| = {short(e)} (tolerance {TOL:g}) {_on(case)}")
    return Measured(0.0)


def _span(outs) -> Measured:
    for case, Q, err in outs[:3]:
        if Q is None:
            return Measured(None, f"{err} {_on(case)}", hinted=False)
        rank = int(torch.linalg.matrix_rank(case.A))
        resid = float((case.A - Q @ (Q.T @ case.A)).norm() / case.A.norm())
        if resid > TOL:
            return Measured(resid, f"span incomplete: ‖A − QQᵀA‖/‖A‖ = {short(resid)} (tolerance {TOL:g}) "
                            f"{_on(case)}, with {Q.shape[1]} columns for rank {rank} — keep every singular direction "
                            "above tol·s_max", hinted=False)
        if Q.shape[1] != rank:
            return Measured(1.0, f"wrong number of columns: {Q.shape[1]} for A of rank {rank} {_on(case)} — keep "
                            "only singular directions with s > tol·s_max; a QR of A keeps one column per column of A, "
                            "even where A has fewer independent directions", hinted=False)
    return Measured(0.0)


def _energy(outs) -> Measured:
    case, Q, err = outs[3]
    if Q is None:
        return Measured(None, f"{err} {_on(case)}", hinted=False)
    ref = reference_orth(case.A, energy=case.energy)
    if Q.shape[1] != ref.shape[1] or maxabs(Q @ Q.T - ref @ ref.T) > 1e-5:
        return Measured(1.0, f"energy truncation failed: {Q.shape[1]} columns, expected {ref.shape[1]} {_on(case)}")
    return Measured(0.0)


ORTH_CHECKS = [
    CheckSpec("orthonormal", "orthonormal columns  QᵀQ = I", 1, _orthonormal,
              hint="return the left singular vectors U of an SVD (or Q of a QR), not A itself or A with normalised "
                   "columns"),
    CheckSpec("span", "same span as A, one column per independent direction", 1, _span),
    CheckSpec("energy", "energy truncation keeps the fewest leading directions reaching rho", 1, _energy,
              hint="keep the fewest leading singular directions whose squared singular values reach the fraction "
                   "energy of the total (cumsum(s²)/sum(s²) ≥ energy)"),
]


def score_orth(outcomes: list, cases: list[OrthCase], verbose: bool = False) -> Result:
    """Score the outcomes of orth on the cases (plain data, validated here) -> Result (3 points)."""
    outs = [(c, *usable(o, c.A.shape[0])) for c, o in zip(cases, _padded(outcomes, len(cases)))]
    if all(err and err.startswith(NOT_IMPLEMENTED) for _, _, err in outs):
        return missing("projector", "orth", ORTH_CHECKS, "orth", verbose)
    return run_checks("projector", "orth", ORTH_CHECKS, outs, verbose)


def check_orth(fn: Callable | None, verbose: bool = True) -> Result:
    """Check a student's ``orth(A, tol=1e-6, energy=None)``: orthonormal columns, the same span (and rank) as
    A, and energy truncation. Prints a report; returns a Result (3 points)."""
    if not callable(fn):
        return missing("projector", "orth", ORTH_CHECKS, "orth", verbose)
    cases = orth_cases()
    return score_orth(orth_outcomes(fn, cases), cases, verbose)


# ====================================================================== part B: projector
@dataclass(frozen=True)
class ProjectorCase:
    name: str
    what: str
    F: Tensor
    R: Tensor
    alpha: float
    rho: float

    def kwargs(self) -> dict:
        return {"alpha": self.alpha, "rho": self.rho}


def projector_cases(seed: int = PROJECTOR_SEED) -> list[ProjectorCase]:
    """Seeded (F, R, alpha, rho): generic, partial strength, alpha = 0, a forget direction inside the
    retain span (F̃ rank-deficient), and more retain columns than dimensions (needs the energy cut)."""
    g = torch.Generator().manual_seed(seed)
    d = 16
    randn = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    F, R = randn(d, 3), randn(d, 5)
    R2 = randn(d, 4)
    F_overlap = torch.cat([R2[:, :1] * 2 - R2[:, 1:2], randn(d, 1), randn(d, 1)], 1)
    F_overlap = torch.cat([F_overlap, F_overlap[:, 1:2] * 3], 1)  # (16, 4): one column in span(R2), one duplicate
    Qs, _ = torch.linalg.qr(randn(d, d))
    R_many = Qs[:, :6] @ (5 * randn(6, 40)) + 0.01 * randn(d, 40)  # (16, 40): 6 strong directions + faint noise
    F_many = Qs[:, 4:8] @ randn(4, 2)  # partly inside the strong retain directions, partly outside
    return [
        ProjectorCase("basic", "F (16, 3), R (16, 5) random, alpha=1, rho=1", F, R, 1.0, 1.0),
        ProjectorCase("partial", "same F, R with alpha=0.5, rho=1", F, R, 0.5, 1.0),
        ProjectorCase("alpha0", "same F, R with alpha=0, rho=1", F, R, 0.0, 1.0),
        ProjectorCase("overlap", "F (16, 4) with one column inside span(R) and one duplicate column, alpha=1, rho=1",
                      F_overlap, R2, 1.0, 1.0),
        ProjectorCase("many_retain", "R (16, 40): more retain columns than dimensions, rho=0.99, alpha=1",
                      F_many, R_many, 1.0, 0.99),
    ]


def projector_outcomes(fn: Callable, cases: list[ProjectorCase]) -> list[dict]:
    """Call the student's projector on every case -> plain outcomes (runner.invoke)."""
    return [invoke(fn, (c.F, c.R), c.kwargs()) for c in cases]


def _q_r(case: ProjectorCase) -> Tensor:
    return reference_orth(case.R, tol=TOL, energy=case.rho)


def _f_tilde(case: ProjectorCase, Q_R: Tensor | None = None) -> Tensor:
    Q_R = _q_r(case) if Q_R is None else Q_R
    return case.F - Q_R @ (Q_R.T @ case.F)


def _typical_mistakes(case: ProjectorCase) -> dict[str, tuple[Tensor, str]]:
    """What the usual wrong answers give on this case -> (P, diagnosis)."""
    I = torch.eye(case.F.shape[0], dtype=torch.float64)
    a = case.alpha
    Ft = _f_tilde(case)
    U = reference_orth(Ft, scale=float(torch.linalg.matrix_norm(case.F, 2)))
    U_F = reference_orth(case.F)
    Q_full = reference_orth(case.R, tol=TOL)
    U_noenergy = reference_orth(_f_tilde(case, Q_full), scale=float(torch.linalg.matrix_norm(case.F, 2)))
    U_qr, _ = torch.linalg.qr(Ft)
    return {
        "ignores_retain": (I - a * U_F @ U_F.T, "your P equals I − α·orth(F)·orth(F)ᵀ: the retain set is ignored. "
                           "Project F onto the complement of the retain span first, F̃ = (I − Q_R Q_Rᵀ) F, and take "
                           "U = orth(F̃)."),
        "not_orthonormal": (I - a * Ft @ Ft.T, "your P equals I − α·F̃F̃ᵀ: U must be an orthonormal basis of F̃ "
                            "(orth(F̃), from an SVD), not F̃ itself; only then is UUᵀ a projector."),
        "sign": (I + a * U @ U.T, "your P equals I + α·UUᵀ: the sign of α is flipped; P_α = I − α·UUᵀ."),
        "alpha_ignored": (I - U @ U.T, "your P equals I − UUᵀ whatever α is: the strength α is ignored; "
                          "P_α = I − α·UUᵀ."),
        "no_energy": (I - a * U_noenergy @ U_noenergy.T, "your P keeps every retain direction: with 40 retain "
                      "columns in 16 dimensions the retain span is all of R^16 and nothing is forgotten. Truncate "
                      "Q_R = orth(R, energy=rho) to the fraction rho of the singular-value energy."),
        "no_tolerance": (I - a * U_qr @ U_qr.T, "your U has one column per column of F̃ (e.g. a QR of F̃), but F̃ is "
                         "rank-deficient here: a forget column lies inside the retain span and one is a duplicate. "
                         "Keep only singular directions above a tolerance (orth(F̃))."),
    }


def _diagnose(case: ProjectorCase, P: Tensor) -> str:
    if maxabs(P - hard_projector(case.F, case.R, alpha=case.alpha, rho=case.rho)) <= 1e-5:
        return ""
    for P_wrong, why in _typical_mistakes(case).values():
        if maxabs(P - P_wrong) <= 1e-5:
            return why
    return ""


def _rank(A: Tensor, tol: float = 1e-6) -> int:
    return int((torch.linalg.svdvals(A) > tol).sum())


def _eye(P: Tensor) -> Tensor:
    return torch.eye(P.shape[0], dtype=P.dtype)


def _property(prop: str, label: str, applies: Callable, error: Callable, tol: float = TOL) -> Callable:
    """A measurement over the cases it applies to: the first unusable or failing case is reported."""
    def measure(outs) -> Measured:
        for case, P, err in outs:
            if not applies(case):
                continue
            if P is None:
                return Measured(None, f"{err} {_on(case)}", hinted=False)
            e = error(case, P)
            if e > tol:
                return Measured(e, f"{prop} failed: {label} = {short(e)} (tolerance {tol:g}) {_on(case)}",
                                cause=_diagnose(case, P))
        return Measured(0.0)
    return measure


def _shape(outs) -> Measured:
    bad = [(c, err) for c, P, err in outs if P is None]
    return Measured(None, f"{bad[0][1]} {_on(bad[0][0])}", hinted=False) if bad else Measured(0.0)


def _always(case) -> bool:
    return True


def _full(case) -> bool:
    return case.alpha == 1.0


PROJECTOR_CHECKS = [
    CheckSpec("shape", "returns a finite (d, d) matrix on every case", 1, _shape),
    CheckSpec("symmetry", "symmetry  P = Pᵀ", 1, _property(
        "symmetry", "max |P − Pᵀ|", _always, lambda c, P: maxabs(P - P.T)), TOL,
        "I − α UUᵀ is symmetric; an asymmetric P usually comes from U Vᵀ (both SVD factors) instead of U Uᵀ, "
        "or from a basis of the rows instead of the columns"),
    CheckSpec("idempotence", "idempotence at α=1  P₁² = P₁", 1, _property(
        "idempotence", "max |P₁² − P₁|", _full, lambda c, P: maxabs(P @ P - P)), TOL,
        "is U orthonormal? Take U from an SVD of F̃ (orth), not F̃ itself; is the sign of α right?"),
    CheckSpec("retain", "retain preservation  P Q_R = Q_R", 2, _property(
        "retain preservation", "max |P Q_R − Q_R|", _always, lambda c, P: maxabs(P @ _q_r(c) - _q_r(c))), TOL,
        "did you project F onto the complement of the retain span before taking its basis?"),
    CheckSpec("forget", "forget residual annihilated  P₁ F̃ = 0", 2, _property(
        "forget residual", "max |P₁ F̃| / ‖F‖₂", _full,
        lambda c, P: maxabs(P @ _f_tilde(c)) / float(torch.linalg.matrix_norm(c.F, 2))), TOL,
        "P₁ must remove every direction of F̃ = (I − Q_R Q_Rᵀ) F: is U a basis of all of F̃ (every column, "
        "not only the first)? is the sign of α right?"),
    CheckSpec("alpha0", "α = 0 gives the identity", 1, _property(
        "α = 0 → I", "max |P₀ − I|", lambda c: c.alpha == 0.0, lambda c, P: maxabs(P - _eye(P))), TOL,
        "with α = 0 nothing is removed: P_0 = I − 0·UUᵀ = I"),
    CheckSpec("rank", "rank(I − P₁) ≤ k_f", 1, _property(
        "rank bound", "rank(I − P₁) − k_f", _full, lambda c, P: float(_rank(_eye(P) - P) - c.F.shape[1]), tol=0),
        0, "I − P₁ = UUᵀ has rank ≤ k_f: U needs at most one column per forget direction, and none for "
        "directions F̃ does not have"),
    CheckSpec("agreement", "agrees with minclip_unlearn.nullspace.hard_projector", 1, _property(
        "agreement with hard_projector", "max |P − hard_projector(F, R, alpha, rho)|", _always,
        lambda c, P: maxabs(P - hard_projector(c.F, c.R, alpha=c.alpha, rho=c.rho)), tol=1e-5), 1e-5,
        "compare your steps with METHOD.md §4a: Q_R = orth(R, energy=rho), F̃ = (I − Q_R Q_Rᵀ)F, "
        "U = orth(F̃), P = I − αUUᵀ"),
]
PROJECTOR_PROPERTY = {s.name: s.title for s in PROJECTOR_CHECKS if s.name != "shape"}


def score_projector(outcomes: list, cases: list[ProjectorCase], verbose: bool = False) -> Result:
    """Score the outcomes of projector on the cases (plain data, validated here) -> Result (10 points)."""
    outs = [(c, *usable(o, c.F.shape[0], c.F.shape[0])) for c, o in zip(cases, _padded(outcomes, len(cases)))]
    if all(err and err.startswith(NOT_IMPLEMENTED) for _, _, err in outs):
        return missing("projector", "projector", PROJECTOR_CHECKS, "projector", verbose)
    return run_checks("projector", "projector", PROJECTOR_CHECKS, outs, verbose)


def check_projector(fn: Callable | None, verbose: bool = True) -> Result:
    """Check a student's ``projector(F, R, alpha=1.0, rho=0.99)`` (the retain-protected hard projector P_α).

    On seeded cases it measures, with numbers: shape, symmetry, idempotence at α=1, retain preservation
    P Q_R = Q_R, forget residual P₁F̃ = 0, α=0 -> I, rank(I − P₁) ≤ k_f, and agreement with
    ``minclip_unlearn.nullspace.hard_projector``. Prints a report; returns a Result (10 points).
    """
    if not callable(fn):
        return missing("projector", "projector", PROJECTOR_CHECKS, "projector", verbose)
    cases = projector_cases()
    return score_projector(projector_outcomes(fn, cases), cases, verbose)


def _padded(outcomes, n: int) -> list:
    """Exactly n outcomes: a list from a kernel may be short, long or not a list."""
    outcomes = list(outcomes) if isinstance(outcomes, list) else []
    return (outcomes + [None] * n)[:n]


# ====================================================================== for the grader
def grader_inputs(seed: int) -> dict:
    """The cases of one grading run as plain data, to send into the kernel."""
    return {"orth": [{"args": [c.A.tolist()], "kwargs": c.kwargs()} for c in orth_cases(seed)],
            "projector": [{"args": [c.F.tolist(), c.R.tolist()], "kwargs": c.kwargs()}
                          for c in projector_cases(seed + 1)]}


def grade(values: dict, seed: int) -> list[Result]:
    """Score the kernel's values {"orth": [outcome...], "projector": [...]} on the run's cases -> Results."""
    values = values if isinstance(values, dict) else {}
    return [score_orth(values.get("orth"), orth_cases(seed)),
            score_projector(values.get("projector"), projector_cases(seed + 1))]


PARTS = {"orth": ORTH_CHECKS, "projector": PROJECTOR_CHECKS}
