"""Assignment 2 checks: the probe attack's report against the checker's own run of the experiment.

The grader also re-runs the student's functions (``zero_shot_predictions``, ``cell_accuracy``, ``fit_probe``,
``probe_predictions``) on a class it draws per run, at a fixed rho; a number check then passes only when the
report's number and the fresh number both match the reference, so a recorded answer does not pass. The report
names the rho of its edit (the starter takes the book's rule, ``Lab.choose_rho``); the checker re-runs at it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..geometry import DEFAULT_RHO
from ..paradigms import TOYWORLD_CLASSES
from .course import references
from .results import NOT_IMPLEMENTED, Result
from .runner import CheckSpec, Measured, all_failed, blank, finish, fresh_values, grade_report, missing, number, run_checks

PROBE_KEYS = {
    "zero_shot_forget_before": "zero-shot accuracy on the forgotten cells, original model",
    "zero_shot_forget_after": "zero-shot accuracy on the forgotten cells, edited model",
    "zero_shot_retain_after": "zero-shot accuracy on the retained cells, edited model",
    "probe_forget_before": "probe accuracy on the forgotten cells, original model",
    "probe_forget_after": "probe accuracy on the forgotten cells, edited model",
}
PROBE_N_PER_CELL = 20       # images per cell in each of the train and test splits
FRESH_RHO = 0.8             # the energy threshold of the grader's fresh re-run (a fixed one: it only checks that
                            # the student's functions reproduce the reference); reports name their own rho
ZERO_SHOT_TOL = 0.01        # zero-shot numbers are deterministic: they must match
PROBE_TOL = 0.1             # a probe with other settings (C, scaling, iterations) lands within this
DECODABLE_THRESHOLD = 0.5   # "still decodable": the probe recovers the class on more than half of its images
FUNCTIONS = ("zero_shot_predictions", "cell_accuracy", "fit_probe", "probe_predictions")
IN_COURSE = ("the checker's reference run is not installed (course mode): your instructor's grader compares "
             "this number")


def report_rho(report: dict) -> tuple[float | None, str]:
    """A report's energy threshold (unlearn's default when it names none) -> (rho, "") or (None, why it is invalid)."""
    rho = report.get("rho", DEFAULT_RHO)  # a report without "rho" used unlearn's default
    if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not 0.0 < rho <= 1.0:
        return None, f"report['rho'] = {rho!r}: use the energy threshold you passed to unlearn, in (0, 1]"
    return float(rho), ""


def probe_reference(forgotten_class: str, n_per_cell: int = PROBE_N_PER_CELL, rho: float = FRESH_RHO) -> dict | None:
    """The reference run (references.probe_reference), or None where it is not installed."""
    module = references()
    return None if module is None else module.probe_reference(forgotten_class, n_per_cell, rho)


def _compare(key: str, tol: float, mistakes: dict[str, str]):
    """A number of the report against the reference: value, range, tolerance, and the likely mistake."""
    def measure(ctx) -> Measured:
        report, ref = ctx["report"], ctx["ref"]
        raw, v = report.get(key), number(report.get(key))
        if v is None:
            return Measured(None, f"{NOT_IMPLEMENTED}: report[{key!r}] is None" if raw is None else
                            f"report[{key!r}] = {raw!r} is not a number")
        if not 0.0 <= v <= 1.0:
            return Measured(None, f"report[{key!r}] = {v:g} is not an accuracy in [0, 1] (report fractions, not "
                            "percentages)")
        if ref is None:
            return Measured(None, IN_COURSE)
        want = ref[key]
        if abs(v - want) > tol:
            cause = next((why for other, why in mistakes.items()
                          if abs(v - ref[other]) <= min(tol, 0.005) + 1e-9 and abs(ref[other] - want) > tol), "")
            return Measured(abs(v - want), f"{key} = {v:.3f}, the checker measures {want:.3f} (tolerance {tol:g}) — "
                            f"{PROBE_KEYS[key]}", cause=cause, hinted=False)
        return Measured(abs(v - want))
    return measure


def _conclusion(ctx) -> Measured:
    said, ref = ctx["report"].get("still_decodable"), ctx["ref"]
    if said is None:
        return Measured(None, f"{NOT_IMPLEMENTED}: report['still_decodable'] is None (answer True or False)")
    if not isinstance(said, (bool, np.bool_)):
        return Measured(None, f"report['still_decodable'] = {said!r}: answer True or False")
    if ref is None:
        return Measured(None, IN_COURSE)
    after = ref["probe_forget_after"]
    truth, close = after > DECODABLE_THRESHOLD, abs(after - DECODABLE_THRESHOLD) < 0.05
    if bool(said) == truth or close:
        return Measured(0.0)
    return Measured(1.0, (
        f"still_decodable = {bool(said)}, but a probe on the edited embeddings recovers the class on "
        f"{after:.0%} of its test images (chance {ref['chance']:.0%}, threshold {DECODABLE_THRESHOLD:.0%}) — "
        "zero-shot forgetting removes the class's alignment with its text, not necessarily the information itself"
        if truth else f"still_decodable = {bool(said)}, but the probe recovers the class on only {after:.0%} of "
        f"its test images (threshold {DECODABLE_THRESHOLD:.0%})"))


CHECKS = [
    CheckSpec("zs_before", "zero-shot forget accuracy before the edit", 1, _compare(
        "zero_shot_forget_before", ZERO_SHOT_TOL, {
            "zero_shot_forget_after": "you measured the edited model; 'before' is the original lab.model",
            "zero_shot_retain_before": "you averaged over the retained cells; use the forgotten cells (mask True)"}),
        ZERO_SHOT_TOL),
    CheckSpec("zs_after", "zero-shot forget accuracy after the edit", 2, _compare(
        "zero_shot_forget_after", ZERO_SHOT_TOL, {
            "zero_shot_forget_before": "that is the original model's accuracy: evaluate the edited model that "
                                       "unlearn() returned (it returns a new model and leaves lab.model unchanged)",
            "zero_shot_retain_after": "you averaged over the retained cells; use the forgotten cells (mask True)",
            "zero_shot_all_after": "you averaged over all test images; use only the forgotten cells"}),
        ZERO_SHOT_TOL),
    CheckSpec("zs_retain", "zero-shot retain accuracy after the edit", 1, _compare(
        "zero_shot_retain_after", ZERO_SHOT_TOL, {
            "zero_shot_retain_before": "that is the original model's accuracy: evaluate the edited model",
            "zero_shot_all_after": "you averaged over all test images; use only the retained cells (mask False)"}),
        ZERO_SHOT_TOL),
    CheckSpec("probe_before", "probe accuracy on the forgotten cells before the edit", 1, _compare(
        "probe_forget_before", PROBE_TOL, {
            "zero_shot_forget_before": "that is the zero-shot accuracy: fit a logistic-regression probe on the train "
                                       "embeddings and score it on the test images of the forgotten cells"}),
        PROBE_TOL),
    CheckSpec("probe_after", "probe accuracy on the forgotten cells after the edit", 3, _compare(
        "probe_forget_after", PROBE_TOL, {
            "zero_shot_forget_after": "that is the zero-shot accuracy: fit a logistic-regression probe on the edited "
                                      "train embeddings and score it on the test images of the forgotten cells",
            "probe_raw_features": "that is a probe on the pre-projection features, which the edit never touches: "
                                  "fit it on the edited embeddings embed(features, edited)",
            "probe_retain_after": "you scored the probe on the retained cells; use the forgotten cells"}),
        PROBE_TOL),
    CheckSpec("conclusion", "conclusion: is the class still linearly decodable?", 2, _conclusion),
]
NUMBER_OF = {"zs_before": "zero_shot_forget_before", "zs_after": "zero_shot_forget_after",
             "zs_retain": "zero_shot_retain_after", "probe_before": "probe_forget_before",
             "probe_after": "probe_forget_after"}
TOLERANCE = {s.name: s.tol for s in CHECKS}


def check_probe_attack(report: dict | None, verbose: bool = True) -> Result:
    """Check the numbers of the probe-attack assignment against the checker's own run of the same experiment.

    report: {"forgotten_class": str, "rho": float in (0, 1] (default 0.99, unlearn's), "zero_shot_forget_before", "zero_shot_forget_after",
    "zero_shot_retain_after", "probe_forget_before", "probe_forget_after": float in [0, 1],
    "still_decodable": bool, "explanation": str (read by the instructor, not scored)}.
    Prints a report; returns a Result (10 points).
    """
    result = blank("probe_attack", "probe_attack", CHECKS)
    if not isinstance(report, dict):
        return missing("probe_attack", "probe_attack", CHECKS, "report", verbose)
    result.notes = {"explanation": str(report.get("explanation") or "").strip()[:4000]}
    cls = report.get("forgotten_class")
    if cls not in TOYWORLD_CLASSES:
        return all_failed(result, f"report['forgotten_class'] is {cls!r}, not a ToyWorld class "
                          f"({', '.join(TOYWORLD_CLASSES)}): the checker cannot recompute your experiment", verbose)
    n = report.get("n_per_cell", PROBE_N_PER_CELL)
    if isinstance(n, bool) or not isinstance(n, int) or not 5 <= n <= 100:
        return all_failed(result, f"report['n_per_cell'] = {n!r}: use an int between 5 and 100 (the starter uses "
                          f"{PROBE_N_PER_CELL})", verbose)
    if all(report.get(k) is None for k in [*PROBE_KEYS, "still_decodable"]):
        result = missing("probe_attack", "probe_attack", CHECKS, "every number of the report", verbose=False)
        result.notes = {"explanation": str(report.get("explanation") or "").strip()[:4000]}
        return finish(result, verbose)
    rho, why = report_rho(report)
    if rho is None:
        return all_failed(result, why, verbose)
    ref = probe_reference(cls, n, rho)
    scored = run_checks("probe_attack", "probe_attack", CHECKS, {"report": report, "ref": ref})
    scored.notes = result.notes | {"forgotten_class": cls}
    return finish(scored, verbose)


def fresh_task(seed: int) -> dict:
    """The class the grader's run forgets when it re-runs the student's functions (plain data)."""
    return {"forgotten_class": TOYWORLD_CLASSES[seed % len(TOYWORLD_CLASSES)], "rho": FRESH_RHO,
            "n_per_cell": PROBE_N_PER_CELL}


def gate(result: Result, fresh: Any, task: dict) -> Result:
    """Fail every number check the student's functions do not reproduce on the grader's fresh class."""
    ref = probe_reference(task["forgotten_class"], task["n_per_cell"], task["rho"])
    values, why = fresh_values(fresh)
    for c in result.checks:
        key = NUMBER_OF.get(c.name)
        if key is None or not c.passed:
            continue
        v = number(values.get(key)) if isinstance(values, dict) else None
        if v is None or ref is None or abs(v - ref[key]) > TOLERANCE[c.name]:
            got = (f"give {key} = {v:.3f} where the checker measures {ref[key]:.3f}" if v is not None and ref
                   else f"gave no {key} ({why})")
            c.passed = False
            c.message = (f"the grader re-ran your functions ({', '.join(FUNCTIONS)}) on the class "
                         f"{task['forgotten_class']!r}; they {got}: the report must come from your functions")
    return result


def grade(values: Any, task: dict) -> list[Result]:
    """Score the kernel's values {"report": ..., "fresh": ...} -> [Result] (in the grader's process)."""
    return grade_report(values, task, check_probe_attack, gate)
