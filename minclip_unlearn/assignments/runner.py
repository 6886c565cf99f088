"""The check runner: a check is a name, points, a measurement, a tolerance and a hint.

A measurement looks at what is being graded (the student's outputs on the cases, a report) and returns a
:class:`Measured`: an error (None when nothing could be measured) and the text that explains it. The runner
passes a check when the error is at most its tolerance and writes the failure message otherwise. Nothing
here calls student code: :func:`invoke` does that, and turns whatever happens into plain data.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from .results import NOT_IMPLEMENTED, Check, Result

Tensor = torch.Tensor
MAX_ROWS, MAX_COLS = 64, 256  # the largest matrix an output may be: bigger ones are refused on arrival


@dataclass(frozen=True)
class Measured:
    """What a measurement found: error (None: could not measure), text (what and where), a likely cause."""

    error: float | None
    text: str = ""
    cause: str = ""
    hinted: bool = True  # append the check's hint to a failure


@dataclass(frozen=True)
class CheckSpec:
    """One check: name, title, points, measure(subject) -> Measured, tolerance, hint."""

    name: str
    title: str
    points: float
    measure: Callable[[Any], Measured]
    tol: float = 0.0
    hint: str = ""

    def message(self, m: Measured) -> str:
        """The failure message: the measurement's text, the hint, the likely cause."""
        text = m.text + (f" — {self.hint}" if m.hinted and self.hint else "")
        return text + (f"\nLikely cause: {m.cause}" if m.cause else "")


def blank(assignment: str, part: str, specs: list[CheckSpec]) -> Result:
    """The Result with every check at zero (its columns and maximum)."""
    return Result(assignment, part, [Check(s.name, s.title, s.points) for s in specs])


def run_checks(assignment: str, part: str, specs: list[CheckSpec], subject: Any, verbose: bool = False) -> Result:
    """Measure every check on subject -> Result (prints the report when verbose)."""
    result = blank(assignment, part, specs)
    for spec, check in zip(specs, result.checks):
        m = spec.measure(subject)
        check.passed = m.error is not None and m.error <= spec.tol
        check.message = "" if check.passed else spec.message(m)
    return finish(result, verbose)


def missing(assignment: str, part: str, specs: list[CheckSpec], what: str, verbose: bool = False) -> Result:
    """Every check failed with "not implemented yet (what is missing or None)"."""
    result = blank(assignment, part, specs)
    for c in result.checks:
        c.message = f"{NOT_IMPLEMENTED} ({what} is missing or None)"
    return finish(result, verbose)


def all_failed(result: Result, message: str, verbose: bool = False) -> Result:
    """Every check failed with the same message (an unusable report, say)."""
    for c in result.checks:
        c.passed, c.message = False, message
    return finish(result, verbose)


def finish(result: Result, verbose: bool) -> Result:
    if verbose:
        print(result.report())
    return result


# ---------------------------------------------------------------- student calls, as plain data
def invoke(fn: Callable, args: tuple, kwargs: dict) -> dict:
    """Call fn(*args, **kwargs) -> plain data: {"value": nested lists} | {"none": True} | {"raised": text}
    | {"type": name} (not a matrix). Arguments are cloned, so an in-place edit changes nothing."""
    try:
        out = fn(*(a.clone() for a in args), **kwargs)
    except Exception as e:  # noqa: BLE001 - any error in student code becomes feedback
        first = str(e).splitlines()[0] if str(e) else ""
        return {"raised": f"{type(e).__name__}: {first}".rstrip(": ")}
    if out is None:
        return {"none": True}
    try:
        arr = out.detach().cpu().double().numpy() if torch.is_tensor(out) else np.asarray(out, dtype=np.float64)
    except Exception:  # noqa: BLE001
        return {"type": type(out).__name__}
    if arr.size > 4 * MAX_ROWS * MAX_COLS:
        return {"shape": list(arr.shape)}
    return {"value": arr.tolist()}


def usable(outcome: Any, rows: int, cols: int | None = None) -> tuple[Tensor | None, str | None]:
    """Validate one outcome of invoke (it may come from a kernel: any JSON) -> (matrix, None) or (None, why)."""
    if not isinstance(outcome, dict) or len(outcome) != 1:
        return None, "the grader received no usable output for this case"
    key, val = next(iter(outcome.items()))
    if key == "none":
        return None, f"{NOT_IMPLEMENTED} (your function returned None)"
    if key == "raised":
        return None, f"your function raised {str(val)[:200]}"
    if key == "type":
        return None, f"your function returned a {str(val)[:40]}, not a matrix (a torch tensor or numpy array)"
    want = f"({rows}, {cols})" if cols is not None else f"({rows}, r)"
    if key == "shape":
        return None, f"your function returned shape {tuple(val)}, expected {want}"
    if key != "value":
        return None, "the grader received no usable output for this case"
    M = matrix(val)
    if M is None:
        return None, "your function returned something that is not a matrix of numbers"
    if M.ndim != 2 or M.shape[0] != rows or (cols is not None and M.shape[1] != cols):
        return None, f"your function returned shape {tuple(M.shape)}, expected {want}"
    if not torch.isfinite(M).all():
        return None, "your function returned NaN or inf"
    return M, None


def matrix(value: Any) -> Tensor | None:
    """Nested lists of numbers (at most MAX_ROWS x MAX_COLS, any ndim) -> float64 tensor, else None."""
    if not isinstance(value, list) or len(value) > MAX_ROWS * 4:
        return None
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return None
    if arr.dtype != np.float64 or arr.size > 4 * MAX_ROWS * MAX_COLS:
        return None
    return torch.from_numpy(arr)


def number(x: Any) -> float | None:
    """A finite float, or None (bools are not numbers here)."""
    if isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError, OverflowError):
        return None
    return v if math.isfinite(v) else None


def maxabs(A: Tensor) -> float:
    return float(A.abs().max()) if A.numel() else 0.0


def short(x: float) -> str:
    """A measured error, short: 0.31, 2.4e-09."""
    return f"{x:.2g}" if 1e-3 <= abs(x) < 1e3 else f"{x:.1e}"


def grade_report(values: Any, task: dict, check: Callable[..., Result],
                 gate: Callable[[Result, Any, dict], Result]) -> list[Result]:
    """The kernel's values {"report": ..., "fresh": ...} -> [Result]: check the report, then gate it on the fresh run."""
    values = values if isinstance(values, dict) else {}
    report = values.get("report")
    return [gate(check(report if isinstance(report, dict) else None, verbose=False), values.get("fresh"), task)]


def fresh_values(fresh: Any) -> tuple[dict | None, str]:
    """The kernel's fresh run {"values": ..., "error": ...} -> (its values or None, why they may be missing)."""
    values = fresh.get("values") if isinstance(fresh, dict) else None
    why = (str(fresh.get("error"))[:300] if isinstance(fresh, dict) and fresh.get("error") else
           "the grader received no values from them")
    return values, why

