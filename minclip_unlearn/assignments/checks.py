"""The checkers a student calls from an assignment notebook; the grader calls the same ones.

Each checker takes what the student wrote (a function, or a dict of reported numbers), measures every
property the method promises on fixed, seeded cases, prints a report and returns a :class:`Result` with
per-check points and feedback that names the property, the measured error and the likely cause.
Nothing here raises because of the student's code: an exception, a ``None`` ("not implemented yet") or a
wrong shape becomes a failed check with a message.
"""
from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..nullspace import hard_projector, orth as reference_orth
from .results import NOT_IMPLEMENTED, Check, Result

TOL = 1e-6
Tensor = torch.Tensor


@contextlib.contextmanager
def one_thread():
    """Run torch and BLAS on one thread: the toy CLIP and the probes are tiny, and on a busy CPU one thread is
    many times faster than several fighting for the cores."""
    from threadpoolctl import threadpool_limits  # scikit-learn's own dependency: BLAS threads too

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(before)


def _as_matrix(out) -> Tensor:
    """A torch tensor or anything numpy can read -> float64 torch tensor (raises if it cannot)."""
    if torch.is_tensor(out):
        return out.detach().cpu().double()
    arr = np.asarray(out, dtype=np.float64)
    return torch.from_numpy(arr)


def _call(fn: Callable, args: tuple, kwargs: dict, rows: int, cols: int | None = None) -> tuple[Tensor | None, str | None]:
    """Run the student's fn -> (matrix, None) or (None, why it is unusable)."""
    try:
        out = fn(*(a.clone() for a in args), **kwargs)  # clones: a function that edits its input in place changes nothing here
    except Exception as e:  # noqa: BLE001 - any error in student code becomes feedback
        return None, f"your function raised {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": ")
    if out is None:
        return None, f"{NOT_IMPLEMENTED} (your function returned None)"
    try:
        M = _as_matrix(out)
    except Exception:  # noqa: BLE001
        return None, f"your function returned a {type(out).__name__}, not a matrix (a torch tensor or numpy array)"
    if M.ndim != 2 or M.shape[0] != rows or (cols is not None and M.shape[1] != cols):
        want = f"({rows}, {cols})" if cols is not None else f"({rows}, r)"
        return None, f"your function returned shape {tuple(M.shape)}, expected {want}"
    if not torch.isfinite(M).all():
        return None, "your function returned NaN or inf"
    return M, None


def _maxabs(A: Tensor) -> float:
    return float(A.abs().max()) if A.numel() else 0.0


def _e(x: float) -> str:
    """A measured error, short: 0.31, 2.4e-09."""
    return f"{x:.2g}" if 1e-3 <= abs(x) < 1e3 else f"{x:.1e}"


# ====================================================================== assignment 1, part A: orth
@dataclass(frozen=True)
class OrthCase:
    name: str
    what: str
    A: Tensor
    energy: float | None = None


def orth_cases() -> list[OrthCase]:
    """Fixed, seeded matrices: full column rank, rank-deficient, more columns than rows, a clear energy gap."""
    g = torch.Generator().manual_seed(1)
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


def check_orth(fn: Callable | None, verbose: bool = True) -> Result:
    """Check a student's ``orth(A, tol=1e-6, energy=None)``: orthonormal columns, the same span (and rank) as
    A, and energy truncation. Prints a report; returns a Result (3 points)."""
    checks = {
        "orthonormal": Check("orthonormal", "orthonormal columns  QᵀQ = I", 1),
        "span": Check("span", "same span as A, one column per independent direction", 1),
        "energy": Check("energy", "energy truncation keeps the fewest leading directions reaching rho", 1),
    }
    result = Result("projector", "orth", list(checks.values()))
    if not callable(fn):
        return _finish_missing(result, "orth", verbose)
    outs = {}
    for case in orth_cases():
        kwargs = {} if case.energy is None else {"energy": case.energy}
        outs[case.name] = (case, *_call(fn, (case.A,), kwargs, case.A.shape[0]))
    if all(err and err.startswith(NOT_IMPLEMENTED) for _, _, err in outs.values()):
        return _finish_missing(result, "orth", verbose)

    def fail(name: str, msg: str) -> None:
        checks[name].passed, checks[name].message = False, msg

    for name in checks:
        checks[name].passed = True
    # orthonormal
    for case, Q, err in outs.values():
        if Q is None:
            fail("orthonormal", f"{err} on case '{case.name}' ({case.what})")
            break
        e = _maxabs(Q.T @ Q - torch.eye(Q.shape[1], dtype=Q.dtype))
        if e > TOL:
            fail("orthonormal", f"orthonormality failed: max |QᵀQ − I| = {_e(e)} (tolerance {TOL:g}) on case "
                 f"'{case.name}' ({case.what}) — return the left singular vectors U of an SVD (or Q of a QR), "
                 "not A itself or A with normalised columns")
            break
    # span and rank
    for key in ("tall", "rank_deficient", "wide"):
        case, Q, err = outs[key]
        if Q is None:
            fail("span", f"{err} on case '{case.name}' ({case.what})")
            break
        rank = int(torch.linalg.matrix_rank(case.A))
        resid = float((case.A - Q @ (Q.T @ case.A)).norm() / case.A.norm())
        if resid > TOL:
            fail("span", f"span incomplete: ‖A − QQᵀA‖/‖A‖ = {_e(resid)} (tolerance {TOL:g}) on case '{case.name}' "
                 f"({case.what}), with {Q.shape[1]} columns for rank {rank} — keep every singular direction above "
                 "tol·s_max")
            break
        if Q.shape[1] != rank:
            fail("span", f"wrong number of columns: {Q.shape[1]} for A of rank {rank} on case '{case.name}' "
                 f"({case.what}) — keep only singular directions with s > tol·s_max; a QR of A keeps one column "
                 "per column of A, even where A has fewer independent directions")
            break
    # energy
    case, Q, err = outs["energy"]
    ref = reference_orth(case.A, energy=case.energy)
    if Q is None:
        fail("energy", f"{err} on case '{case.name}' ({case.what})")
    elif Q.shape[1] != ref.shape[1] or _maxabs(Q @ Q.T - ref @ ref.T) > 1e-5:
        fail("energy", f"energy truncation failed: {Q.shape[1]} columns, expected {ref.shape[1]} on case "
             f"'{case.name}' ({case.what}) — keep the fewest leading singular directions whose squared singular "
             "values reach the fraction energy of the total (cumsum(s²)/sum(s²) ≥ energy)")
    return _finish(result, verbose)


# ====================================================================== assignment 1, part B: projector
@dataclass(frozen=True)
class ProjectorCase:
    name: str
    what: str
    F: Tensor
    R: Tensor
    alpha: float
    rho: float


def projector_cases() -> list[ProjectorCase]:
    """Fixed, seeded (F, R, alpha, rho): generic, partial strength, alpha = 0, a forget direction inside the
    retain span (F̃ rank-deficient), and more retain columns than dimensions (needs the energy cut)."""
    g = torch.Generator().manual_seed(0)
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
    ref = hard_projector(case.F, case.R, alpha=case.alpha, rho=case.rho)
    if _maxabs(P - ref) <= 1e-5:
        return ""
    for P_wrong, why in _typical_mistakes(case).values():
        if _maxabs(P - P_wrong) <= 1e-5:
            return why
    return ""


PROJECTOR_PROPERTY = {
    "symmetry": "symmetry", "idempotence": "idempotence", "retain": "retain preservation",
    "forget": "forget residual", "alpha0": "α = 0 → I", "rank": "rank bound", "agreement": "agreement with hard_projector",
}
PROJECTOR_HINTS = {
    "symmetry": "I − α UUᵀ is symmetric; an asymmetric P usually comes from U Vᵀ (both SVD factors) instead of U Uᵀ, "
                "or from a basis of the rows instead of the columns",
    "idempotence": "is U orthonormal? Take U from an SVD of F̃ (orth), not F̃ itself; is the sign of α right?",
    "retain": "did you project F onto the complement of the retain span before taking its basis?",
    "forget": "P₁ must remove every direction of F̃ = (I − Q_R Q_Rᵀ) F: is U a basis of all of F̃ (every column, "
              "not only the first)? is the sign of α right?",
    "alpha0": "with α = 0 nothing is removed: P_0 = I − 0·UUᵀ = I",
    "rank": "I − P₁ = UUᵀ has rank ≤ k_f: U needs at most one column per forget direction, and none for directions "
            "F̃ does not have",
    "agreement": "compare your steps with METHOD.md §4a: Q_R = orth(R, energy=rho), F̃ = (I − Q_R Q_Rᵀ)F, "
                 "U = orth(F̃), P = I − αUUᵀ",
}


def check_projector(fn: Callable | None, verbose: bool = True) -> Result:
    """Check a student's ``projector(F, R, alpha=1.0, rho=0.99)`` (the retain-protected hard projector P_α).

    On fixed, seeded cases it measures, with numbers: shape, symmetry, idempotence at α=1, retain preservation
    P Q_R = Q_R, forget residual P₁F̃ = 0, α=0 -> I, rank(I − P₁) ≤ k_f, and agreement with
    ``minclip_unlearn.nullspace.hard_projector``. Prints a report; returns a Result (10 points).
    """
    checks = {
        "shape": Check("shape", "returns a finite (d, d) matrix on every case", 1),
        "symmetry": Check("symmetry", "symmetry  P = Pᵀ", 1),
        "idempotence": Check("idempotence", "idempotence at α=1  P₁² = P₁", 1),
        "retain": Check("retain", "retain preservation  P Q_R = Q_R", 2),
        "forget": Check("forget", "forget residual annihilated  P₁ F̃ = 0", 2),
        "alpha0": Check("alpha0", "α = 0 gives the identity", 1),
        "rank": Check("rank", "rank(I − P₁) ≤ k_f", 1),
        "agreement": Check("agreement", "agrees with minclip_unlearn.nullspace.hard_projector", 1),
    }
    result = Result("projector", "projector", list(checks.values()))
    if not callable(fn):
        return _finish_missing(result, "projector", verbose)
    cases = projector_cases()
    outs = [(c, *_call(fn, (c.F, c.R), {"alpha": c.alpha, "rho": c.rho}, c.F.shape[0], c.F.shape[0])) for c in cases]
    if all(err and err.startswith(NOT_IMPLEMENTED) for _, _, err in outs):
        return _finish_missing(result, "projector", verbose)

    def measure(name: str, applies: Callable[[ProjectorCase], bool], error: Callable[[ProjectorCase, Tensor], float],
                label: str, tol: float = TOL) -> None:
        """Pass unless a case it applies to is unusable or has error > tol; the first failure is the message."""
        check = checks[name]
        for case, P, err in outs:
            if not applies(case):
                continue
            if P is None:
                check.passed, check.message = False, f"{err} on case '{case.name}' ({case.what})"
                return
            e = error(case, P)
            if e > tol:
                why = _diagnose(case, P)
                check.passed = False
                check.message = (f"{PROJECTOR_PROPERTY[name]} failed: {label} = {_e(e)} (tolerance {tol:g}) on case "
                                 f"'{case.name}' ({case.what}) — {PROJECTOR_HINTS[name]}"
                                 + (f"\nLikely cause: {why}" if why else ""))
                return
        check.passed = True

    always = lambda c: True  # noqa: E731
    full = lambda c: c.alpha == 1.0  # noqa: E731
    unusable = [(c, err) for c, P, err in outs if P is None]
    checks["shape"].passed = not unusable
    if unusable:
        checks["shape"].message = f"{unusable[0][1]} on case '{unusable[0][0].name}' ({unusable[0][0].what})"
    measure("symmetry", always, lambda c, P: _maxabs(P - P.T), "max |P − Pᵀ|")
    measure("idempotence", full, lambda c, P: _maxabs(P @ P - P), "max |P₁² − P₁|")
    measure("retain", always, lambda c, P: _maxabs(P @ _q_r(c) - _q_r(c)), "max |P Q_R − Q_R|")
    measure("forget", full, lambda c, P: _maxabs(P @ _f_tilde(c)) / float(torch.linalg.matrix_norm(c.F, 2)),
            "max |P₁ F̃| / ‖F‖₂")
    measure("alpha0", lambda c: c.alpha == 0.0, lambda c, P: _maxabs(P - torch.eye(P.shape[0], dtype=P.dtype)),
            "max |P₀ − I|")
    measure("rank", full, lambda c, P: float(_rank(torch.eye(P.shape[0], dtype=P.dtype) - P) - c.F.shape[1]),
            "rank(I − P₁) − k_f", tol=0)
    measure("agreement", always, lambda c, P: _maxabs(P - hard_projector(c.F, c.R, alpha=c.alpha, rho=c.rho)),
            "max |P − hard_projector(F, R, alpha, rho)|", tol=1e-5)
    return _finish(result, verbose)


def _rank(A: Tensor, tol: float = 1e-6) -> int:
    s = torch.linalg.svdvals(A)
    return int((s > tol).sum())


# ====================================================================== assignment 2: the probe attack
PROBE_KEYS = {
    "zero_shot_forget_before": "zero-shot accuracy on the forgotten cells, original model",
    "zero_shot_forget_after": "zero-shot accuracy on the forgotten cells, edited model",
    "zero_shot_retain_after": "zero-shot accuracy on the retained cells, edited model",
    "probe_forget_before": "probe accuracy on the forgotten cells, original model",
    "probe_forget_after": "probe accuracy on the forgotten cells, edited model",
}
PROBE_N_PER_CELL = 20       # images per cell in each of the train and test splits
PROBE_RHO = 0.8             # the starter's energy threshold (ToyWorld's classes share most directions)
ZERO_SHOT_TOL = 0.01        # zero-shot numbers are deterministic: they must match
PROBE_TOL = 0.1             # a probe with other settings (C, scaling, iterations) lands within this
DECODABLE_THRESHOLD = 0.5   # "still decodable": the probe recovers the class on more than half of its images


def probe_reference(forgotten_class: str, n_per_cell: int = PROBE_N_PER_CELL, rho: float = PROBE_RHO) -> dict[str, float]:
    """The checker's own run of assignment 2 (see _probe_reference), on one torch thread."""
    with one_thread():
        return _probe_reference(forgotten_class, n_per_cell, rho)


@functools.lru_cache(maxsize=4)
def _probe_reference(forgotten_class: str, n_per_cell: int, rho: float) -> dict[str, float]:
    """The checker's own run of the experiment: ToyWorld lab, multimodal global forgetting of one class,
    zero-shot scores and a logistic-regression recovery probe, before and after; plus the usual wrong numbers."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ..edit import unlearn
    from ..evaluate import recovery_probe, scores
    from ..lab import open_lab
    from ..paradigms import forget_classes

    lab = open_lab("toyworld", n_per_cell=n_per_cell)
    mask = forget_classes(lab.grid, forgotten_class)
    edited = unlearn(lab.model, lab.grid, mask, lab.text_dirs, lab.prototypes(progress=False), rho=rho)
    before, after = lab.scores(lab.model, mask), lab.scores(edited, mask)
    pb, pa = recovery_probe(lab.model, lab.train, lab.test, mask), recovery_probe(edited, lab.train, lab.test, mask)
    forgotten = mask[lab.test.labels, lab.test.domains]
    # wrong numbers students often report, to name the mistake
    raw = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=0))
    raw.fit(lab.train.features.numpy(), lab.train.labels.numpy())
    raw_forget = float((raw.predict(lab.test.features[forgotten].numpy()) == lab.test.labels[forgotten].numpy()).mean())
    overall = scores(edited, lab.test, lab.classifier, torch.zeros_like(mask))["retain"]  # all images
    return {
        "zero_shot_forget_before": before["forget"], "zero_shot_forget_after": after["forget"],
        "zero_shot_retain_after": after["retain"], "zero_shot_retain_before": before["retain"],
        "probe_forget_before": pb["probe_forget"], "probe_forget_after": pa["probe_forget"],
        "probe_retain_after": pa["probe_retain"], "probe_raw_features": raw_forget,
        "zero_shot_all_after": overall, "chance": 1 / lab.grid.shape[0],
    }


def _number(x) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def check_probe_attack(report: dict | None, verbose: bool = True) -> Result:
    """Check the numbers of the probe-attack assignment against the checker's own run of the same experiment.

    report: {"forgotten_class": str, "rho": float (default 0.8), "zero_shot_forget_before", "zero_shot_forget_after",
    "zero_shot_retain_after", "probe_forget_before", "probe_forget_after": float in [0, 1],
    "still_decodable": bool, "explanation": str (read by the instructor, not scored)}.
    Prints a report; returns a Result (10 points).
    """
    checks = {
        "zs_before": Check("zs_before", "zero-shot forget accuracy before the edit", 1),
        "zs_after": Check("zs_after", "zero-shot forget accuracy after the edit", 2),
        "zs_retain": Check("zs_retain", "zero-shot retain accuracy after the edit", 1),
        "probe_before": Check("probe_before", "probe accuracy on the forgotten cells before the edit", 1),
        "probe_after": Check("probe_after", "probe accuracy on the forgotten cells after the edit", 3),
        "conclusion": Check("conclusion", "conclusion: is the class still linearly decodable?", 2),
    }
    result = Result("probe_attack", "probe_attack", list(checks.values()))
    if not isinstance(report, dict):
        return _finish_missing(result, "report", verbose)
    from ..paradigms import TOYWORLD_CLASSES

    cls = report.get("forgotten_class")
    if cls not in TOYWORLD_CLASSES:
        for c in checks.values():
            c.message = (f"report['forgotten_class'] is {cls!r}, not a ToyWorld class "
                         f"({', '.join(TOYWORLD_CLASSES)}): the checker cannot recompute your experiment")
        return _finish(result, verbose)
    n = report.get("n_per_cell", PROBE_N_PER_CELL)
    if not isinstance(n, int) or not 5 <= n <= 100:
        for c in checks.values():
            c.message = f"report['n_per_cell'] = {n!r}: use an int between 5 and 100 (the starter uses {PROBE_N_PER_CELL})"
        return _finish(result, verbose)
    if all(report.get(k) is None for k in [*PROBE_KEYS, "still_decodable"]):
        return _finish_missing(result, "every number of the report", verbose)  # nothing to compare yet
    rho = report.get("rho", PROBE_RHO)
    if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not 0.0 < rho <= 1.0:
        for c in checks.values():
            c.message = f"report['rho'] = {rho!r}: use the energy threshold you passed to unlearn, in (0, 1]"
        return _finish(result, verbose)
    ref = probe_reference(cls, n, float(rho))
    vals = {k: _number(report.get(k)) for k in PROBE_KEYS}
    result.notes = {"forgotten_class": cls, "explanation": str(report.get("explanation") or "").strip(),
                    "reference": {k: round(v, 4) for k, v in ref.items()}}

    def compare(name: str, key: str, tol: float, mistakes: dict[str, str]) -> None:
        check, v, want = checks[name], vals[key], ref[key]
        if v is None:
            raw = report.get(key)
            check.message = (f"{NOT_IMPLEMENTED}: report[{key!r}] is None" if raw is None else
                             f"report[{key!r}] = {raw!r} is not a number")
            return
        if not 0.0 <= v <= 1.0:
            check.message = f"report[{key!r}] = {v:g} is not an accuracy in [0, 1] (report fractions, not percentages)"
            return
        if abs(v - want) <= tol:
            check.passed = True
            return
        check.message = (f"{key} = {v:.3f}, the checker measures {want:.3f} (tolerance {tol:g}) — "
                         f"{PROBE_KEYS[key]}")
        for other, why in mistakes.items():
            if abs(v - ref[other]) <= min(tol, 0.005) + 1e-9 and abs(ref[other] - want) > tol:
                check.message += f"\nLikely cause: {why}"
                break

    compare("zs_before", "zero_shot_forget_before", ZERO_SHOT_TOL, {
        "zero_shot_forget_after": "you measured the edited model; 'before' is the original lab.model",
        "zero_shot_retain_before": "you averaged over the retained cells; use the forgotten cells (mask True)"})
    compare("zs_after", "zero_shot_forget_after", ZERO_SHOT_TOL, {
        "zero_shot_forget_before": "that is the original model's accuracy: evaluate the edited model that unlearn() "
                                   "returned (it returns a new model and leaves lab.model unchanged)",
        "zero_shot_retain_after": "you averaged over the retained cells; use the forgotten cells (mask True)",
        "zero_shot_all_after": "you averaged over all test images; use only the forgotten cells"})
    compare("zs_retain", "zero_shot_retain_after", ZERO_SHOT_TOL, {
        "zero_shot_retain_before": "that is the original model's accuracy: evaluate the edited model",
        "zero_shot_all_after": "you averaged over all test images; use only the retained cells (mask False)"})
    compare("probe_before", "probe_forget_before", PROBE_TOL, {
        "zero_shot_forget_before": "that is the zero-shot accuracy: fit a logistic-regression probe on the train "
                                   "embeddings and score it on the test images of the forgotten cells"})
    compare("probe_after", "probe_forget_after", PROBE_TOL, {
        "zero_shot_forget_after": "that is the zero-shot accuracy: fit a logistic-regression probe on the edited "
                                  "train embeddings and score it on the test images of the forgotten cells",
        "probe_raw_features": "that is a probe on the pre-projection features, which the edit never touches: "
                              "fit it on the edited embeddings embed(features, edited)",
        "probe_retain_after": "you scored the probe on the retained cells; use the forgotten cells"})
    # conclusion: the student's True / False against the recomputed numbers
    c, said = checks["conclusion"], report.get("still_decodable")
    truth = ref["probe_forget_after"] > DECODABLE_THRESHOLD
    close = abs(ref["probe_forget_after"] - DECODABLE_THRESHOLD) < 0.05
    if said is None:
        c.message = f"{NOT_IMPLEMENTED}: report['still_decodable'] is None (answer True or False)"
    elif not isinstance(said, (bool, np.bool_)):
        c.message = f"report['still_decodable'] = {said!r}: answer True or False"
    elif bool(said) == truth or close:
        c.passed = True
    else:
        c.message = (f"still_decodable = {bool(said)}, but a probe on the edited embeddings recovers the class on "
                     f"{ref['probe_forget_after']:.0%} of its test images (chance {ref['chance']:.0%}, threshold "
                     f"{DECODABLE_THRESHOLD:.0%}) — zero-shot forgetting removes the class's alignment with its "
                     "text, not necessarily the information itself" if truth else
                     f"still_decodable = {bool(said)}, but the probe recovers the class on only "
                     f"{ref['probe_forget_after']:.0%} of its test images (threshold {DECODABLE_THRESHOLD:.0%})")
    return _finish(result, verbose)


# ====================================================================== assignment 3: domain-specific forgetting
GROUPS = {
    "forget": "the forgotten cell(s)",
    "same_class_other_domains": "the same class in the other domains",
    "other_classes": "the other classes",
}
OFF_TARGET_CHOICES = ("same_class_other_domains", "other_classes")
OFF_TARGET_MARGIN = 0.03  # drops closer than this: either answer is accepted


def off_target_reference(forgotten_class: str, forgotten_domain: str,
                         n_per_cell: int = PROBE_N_PER_CELL) -> dict[str, dict[str, float]]:
    """The checker's own run of assignment 3 (see _off_target_reference), on one torch thread."""
    with one_thread():
        return _off_target_reference(forgotten_class, forgotten_domain, n_per_cell)


@functools.lru_cache(maxsize=8)
def _off_target_reference(forgotten_class: str, forgotten_domain: str,
                          n_per_cell: int = PROBE_N_PER_CELL) -> dict[str, dict[str, float]]:
    """The checker's run of assignment 3: ToyWorld, forget one class in one domain (multimodal), with retain
    protection (unlearn) and without (P = I − U Uᵀ, U = orth(F)); zero-shot accuracy of each group of cells."""
    from ..edit import apply_projector, directions, unlearn
    from ..lab import open_lab
    from ..nullspace import hard_projector as hp
    from ..paradigms import forget_classes_in_domains

    lab = open_lab("toyworld", n_per_cell=n_per_cell)
    mask = forget_classes_in_domains(lab.grid, forgotten_class, forgotten_domain)
    protos = lab.prototypes(progress=False)
    protected = unlearn(lab.model, lab.grid, mask, lab.text_dirs, protos)
    F, _ = directions(lab.text_dirs, mask, protos)
    unprotected = apply_projector(lab.model, hp(F, None))
    out = {name: {k: lab.scores(m, mask)[k] for k in GROUPS}
           for name, m in (("before", lab.model), ("protected", protected), ("unprotected", unprotected))}
    # the usual wrong number: accuracy over every retained image instead of one group
    out["retain"] = {name: lab.scores(m, mask)["retain"] for name, m in (("protected", protected), ("unprotected", unprotected))}
    return out


def check_off_target(report: dict | None, verbose: bool = True) -> Result:
    """Check the numbers and conclusions of the domain-specific forgetting assignment against the checker's run.

    report: {"forgotten_class", "forgotten_domain", "before", "protected", "unprotected": {group: accuracy} with
    groups "forget", "same_class_other_domains", "other_classes"; "largest_off_target": one of those two
    names; "protection_helps": bool; "explanation": str (read by the instructor)}.
    Prints a report; returns a Result (10 points).
    """
    checks = {
        "before": Check("before", "accuracy of the three groups before the edit", 1),
        "protected_forget": Check("protected_forget", "protected edit: accuracy on the forgotten cell", 1),
        "protected_same": Check("protected_same", "protected edit: the same class in the other domains", 1),
        "protected_other": Check("protected_other", "protected edit: the other classes", 1),
        "unprotected": Check("unprotected", "unprotected edit (no retain set): the three groups", 2),
        "largest": Check("largest", "conclusion: which retained group loses more with the protected edit", 2),
        "helps": Check("helps", "conclusion: does retain protection shield the same class in other domains?", 2),
    }
    result = Result("off_target", "off_target", list(checks.values()))
    if not isinstance(report, dict):
        return _finish_missing(result, "report", verbose)
    from ..paradigms import TOYWORLD_CLASSES, TOYWORLD_DOMAINS

    cls, dom = report.get("forgotten_class"), report.get("forgotten_domain")
    if cls not in TOYWORLD_CLASSES or dom not in TOYWORLD_DOMAINS:
        for c in checks.values():
            c.message = (f"report['forgotten_class'] = {cls!r} and report['forgotten_domain'] = {dom!r} must be a "
                         f"ToyWorld class ({', '.join(TOYWORLD_CLASSES)}) and domain ({', '.join(TOYWORLD_DOMAINS)})")
        return _finish(result, verbose)
    if all(report.get(k) is None for k in ["before", "protected", "unprotected", "largest_off_target", "protection_helps"]):
        return _finish_missing(result, "every entry of the report", verbose)  # nothing to compare yet
    ref = off_target_reference(cls, dom)
    result.notes = {"forgotten": f"{cls} in {dom}", "explanation": str(report.get("explanation") or "").strip(),
                    "reference": {k: {g: round(v, 4) for g, v in d.items()} for k, d in ref.items()}}

    def compare(name: str, edit: str, groups: tuple[str, ...]) -> None:
        check, got = checks[name], report.get(edit)
        if got is None:
            check.message = f"{NOT_IMPLEMENTED}: report[{edit!r}] is None"
            return
        if not isinstance(got, dict):
            check.message = f"report[{edit!r}] must be a dict {{group: accuracy}}, got a {type(got).__name__}"
            return
        for g in groups:
            v, want = _number(got.get(g)), ref[edit][g]
            if v is None:
                raw = got.get(g)
                check.message = (f"{NOT_IMPLEMENTED}: report[{edit!r}][{g!r}] is None" if raw is None else
                                 f"report[{edit!r}][{g!r}] = {raw!r} is not a number")
                return
            if abs(v - want) > ZERO_SHOT_TOL:
                check.message = (f"report[{edit!r}][{g!r}] = {v:.3f}, the checker measures {want:.3f} (tolerance "
                                 f"{ZERO_SHOT_TOL:g}) — zero-shot accuracy over {GROUPS[g]}")
                if edit in ref["retain"] and abs(v - ref["retain"][edit]) <= 0.005:
                    check.message += ("\nLikely cause: that is the accuracy over every retained image; split the "
                                      "retained cells into the same class in other domains and the other classes")
                elif edit != "before" and abs(v - ref["before"][g]) <= 0.005 and abs(ref["before"][g] - want) > ZERO_SHOT_TOL:
                    check.message += "\nLikely cause: that is the original model's accuracy: evaluate the edited model"
                elif edit == "protected" and abs(v - ref["unprotected"][g]) <= 0.005:
                    check.message += ("\nLikely cause: that is the unprotected edit's number: the protected edit is "
                                      "unlearn(...), which keeps the retained cells' directions")
                return
        check.passed = True

    compare("before", "before", tuple(GROUPS))
    compare("protected_forget", "protected", ("forget",))
    compare("protected_same", "protected", ("same_class_other_domains",))
    compare("protected_other", "protected", ("other_classes",))
    compare("unprotected", "unprotected", tuple(GROUPS))

    drop = {e: {g: ref["before"][g] - ref[e][g] for g in GROUPS} for e in ("protected", "unprotected")}
    # which retained group loses more under the protected edit
    c, said = checks["largest"], report.get("largest_off_target")
    truth = max(OFF_TARGET_CHOICES, key=lambda g: drop["protected"][g])
    close = abs(drop["protected"][OFF_TARGET_CHOICES[0]] - drop["protected"][OFF_TARGET_CHOICES[1]]) < OFF_TARGET_MARGIN
    if said is None:
        c.message = f"{NOT_IMPLEMENTED}: report['largest_off_target'] is None"
    elif said not in OFF_TARGET_CHOICES:
        c.message = f"report['largest_off_target'] = {said!r}: answer one of {', '.join(map(repr, OFF_TARGET_CHOICES))}"
    elif said == truth or close:
        c.passed = True
    else:
        c.message = (f"largest_off_target = {said!r}, but with the protected edit {GROUPS[truth]} drop by "
                     f"{drop['protected'][truth]:+.3f} and {GROUPS[said]} by {drop['protected'][said]:+.3f} (drops "
                     f"before − after)")
    # does protection shield the same class in the other domains?
    c, said = checks["helps"], report.get("protection_helps")
    gain = drop["unprotected"]["same_class_other_domains"] - drop["protected"]["same_class_other_domains"]
    if said is None:
        c.message = f"{NOT_IMPLEMENTED}: report['protection_helps'] is None (answer True or False)"
    elif not isinstance(said, (bool, np.bool_)):
        c.message = f"report['protection_helps'] = {said!r}: answer True or False"
    elif bool(said) == (gain > 0) or abs(gain) < OFF_TARGET_MARGIN:
        c.passed = True
    else:
        c.message = (f"protection_helps = {bool(said)}, but the same class in the other domains drops by "
                     f"{drop['unprotected']['same_class_other_domains']:+.3f} without retain protection and by "
                     f"{drop['protected']['same_class_other_domains']:+.3f} with it")
    return _finish(result, verbose)


# ====================================================================== shared
def _finish_missing(result: Result, what: str, verbose: bool) -> Result:
    for c in result.checks:
        c.passed, c.message = False, f"{NOT_IMPLEMENTED} ({what} is missing or None)"
    return _finish(result, verbose)


def _finish(result: Result, verbose: bool) -> Result:
    if verbose:
        print(result.report())
    return result
