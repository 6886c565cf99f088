"""Assignment 3 checks: domain-specific forgetting and its off-target effect, against the checker's own run.

As for assignment 2, the grader re-runs the student's ``group_accuracies`` and ``unprotected_edit`` on a
class and domain it draws per run; a number check passes only when the report and the fresh run both match.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..paradigms import TOYWORLD_CLASSES, TOYWORLD_DOMAINS
from .a2_probe import PROBE_N_PER_CELL, ZERO_SHOT_TOL
from .course import references
from .results import NOT_IMPLEMENTED, Result
from .runner import CheckSpec, Measured, all_failed, blank, finish, fresh_values, grade_report, missing, number, run_checks

GROUPS = {
    "forget": "the forgotten cell(s)",
    "same_class_other_domains": "the same class in the other domains",
    "other_classes": "the other classes",
}
OFF_TARGET_CHOICES = ("same_class_other_domains", "other_classes")
OFF_TARGET_MARGIN = 0.03  # drops closer than this: either answer is accepted
FUNCTIONS = ("group_accuracies", "unprotected_edit")
IN_COURSE = ("the checker's reference run is not installed (course mode): your instructor's grader compares "
             "these numbers")


def off_target_reference(forgotten_class: str, forgotten_domain: str) -> dict | None:
    """The reference run (references.off_target_reference), or None where it is not installed."""
    module = references()
    return None if module is None else module.off_target_reference(forgotten_class, forgotten_domain,
                                                                   PROBE_N_PER_CELL)


def _groups_match(got: Any, want: dict, edit: str, groups: tuple[str, ...], ref: dict | None) -> Measured:
    """One edit's accuracies {group: value} against the reference, with the likely mistake."""
    if got is None:
        return Measured(None, f"{NOT_IMPLEMENTED}: report[{edit!r}] is None")
    if not isinstance(got, dict):
        return Measured(None, f"report[{edit!r}] must be a dict {{group: accuracy}}, got a {type(got).__name__}")
    for g in groups:
        raw, v = got.get(g), number(got.get(g))
        if v is None:
            return Measured(None, f"{NOT_IMPLEMENTED}: report[{edit!r}][{g!r}] is None" if raw is None else
                            f"report[{edit!r}][{g!r}] = {raw!r} is not a number")
        if ref is None:
            return Measured(None, IN_COURSE)
        if abs(v - want[g]) > ZERO_SHOT_TOL:
            cause = ""
            if edit in ref["retain"] and abs(v - ref["retain"][edit]) <= 0.005:
                cause = ("that is the accuracy over every retained image; split the retained cells into the same "
                         "class in other domains and the other classes")
            elif edit != "before" and abs(v - ref["before"][g]) <= 0.005 and abs(ref["before"][g] - want[g]) > ZERO_SHOT_TOL:
                cause = "that is the original model's accuracy: evaluate the edited model"
            elif edit == "protected" and abs(v - ref["unprotected"][g]) <= 0.005:
                cause = ("that is the unprotected edit's number: the protected edit is unlearn(...), which keeps the "
                         "retained cells' directions")
            return Measured(abs(v - want[g]), f"report[{edit!r}][{g!r}] = {v:.3f}, the checker measures {want[g]:.3f} "
                            f"(tolerance {ZERO_SHOT_TOL:g}) — zero-shot accuracy over {GROUPS[g]}", cause, hinted=False)
    return Measured(0.0)


def _compare(edit: str, groups: tuple[str, ...]):
    def measure(ctx) -> Measured:
        ref = ctx["ref"]
        return _groups_match(ctx["report"].get(edit), ref[edit] if ref else {}, edit, groups, ref)
    return measure


def _drops(ref: dict) -> dict:
    return {e: {g: ref["before"][g] - ref[e][g] for g in GROUPS} for e in ("protected", "unprotected")}


def _largest(ctx) -> Measured:
    said, ref = ctx["report"].get("largest_off_target"), ctx["ref"]
    if said is None:
        return Measured(None, f"{NOT_IMPLEMENTED}: report['largest_off_target'] is None")
    if said not in OFF_TARGET_CHOICES:
        return Measured(None, f"report['largest_off_target'] = {said!r}: answer one of "
                        f"{', '.join(map(repr, OFF_TARGET_CHOICES))}")
    if ref is None:
        return Measured(None, IN_COURSE)
    drop = _drops(ref)["protected"]
    truth = max(OFF_TARGET_CHOICES, key=lambda g: drop[g])
    if said == truth or abs(drop[OFF_TARGET_CHOICES[0]] - drop[OFF_TARGET_CHOICES[1]]) < OFF_TARGET_MARGIN:
        return Measured(0.0)
    return Measured(1.0, f"largest_off_target = {said!r}, but with the protected edit {GROUPS[truth]} drop by "
                    f"{drop[truth]:+.3f} and {GROUPS[said]} by {drop[said]:+.3f} (drops before − after)")


def _helps(ctx) -> Measured:
    said, ref = ctx["report"].get("protection_helps"), ctx["ref"]
    if said is None:
        return Measured(None, f"{NOT_IMPLEMENTED}: report['protection_helps'] is None (answer True or False)")
    if not isinstance(said, (bool, np.bool_)):
        return Measured(None, f"report['protection_helps'] = {said!r}: answer True or False")
    if ref is None:
        return Measured(None, IN_COURSE)
    drop, same = _drops(ref), "same_class_other_domains"
    gain = drop["unprotected"][same] - drop["protected"][same]
    if bool(said) == (gain > 0) or abs(gain) < OFF_TARGET_MARGIN:
        return Measured(0.0)
    return Measured(1.0, f"protection_helps = {bool(said)}, but the same class in the other domains drops by "
                    f"{drop['unprotected'][same]:+.3f} without retain protection and by {drop['protected'][same]:+.3f} "
                    "with it")


CHECKS = [
    CheckSpec("before", "accuracy of the three groups before the edit", 1, _compare("before", tuple(GROUPS))),
    CheckSpec("protected_forget", "protected edit: accuracy on the forgotten cell", 1,
              _compare("protected", ("forget",))),
    CheckSpec("protected_same", "protected edit: the same class in the other domains", 1,
              _compare("protected", ("same_class_other_domains",))),
    CheckSpec("protected_other", "protected edit: the other classes", 1, _compare("protected", ("other_classes",))),
    CheckSpec("unprotected", "unprotected edit (no retain set): the three groups", 2,
              _compare("unprotected", tuple(GROUPS))),
    CheckSpec("largest", "conclusion: which retained group loses more with the protected edit", 2, _largest),
    CheckSpec("helps", "conclusion: does retain protection shield the same class in other domains?", 2, _helps),
]
NUMBERS_OF = {"before": ("before", tuple(GROUPS)), "protected_forget": ("protected", ("forget",)),
              "protected_same": ("protected", ("same_class_other_domains",)),
              "protected_other": ("protected", ("other_classes",)), "unprotected": ("unprotected", tuple(GROUPS))}


def check_off_target(report: dict | None, verbose: bool = True) -> Result:
    """Check the numbers and conclusions of the domain-specific forgetting assignment against the checker's run.

    report: {"forgotten_class", "forgotten_domain", "before", "protected", "unprotected": {group: accuracy} with
    groups "forget", "same_class_other_domains", "other_classes"; "largest_off_target": one of those two
    names; "protection_helps": bool; "explanation": str (read by the instructor)}.
    Prints a report; returns a Result (10 points).
    """
    if not isinstance(report, dict):
        return missing("off_target", "off_target", CHECKS, "report", verbose)
    notes = {"explanation": str(report.get("explanation") or "").strip()[:4000]}
    cls, dom = report.get("forgotten_class"), report.get("forgotten_domain")
    if cls not in TOYWORLD_CLASSES or dom not in TOYWORLD_DOMAINS:
        result = blank("off_target", "off_target", CHECKS)
        result.notes = notes
        return all_failed(result, f"report['forgotten_class'] = {cls!r} and report['forgotten_domain'] = {dom!r} "
                          f"must be a ToyWorld class ({', '.join(TOYWORLD_CLASSES)}) and domain "
                          f"({', '.join(TOYWORLD_DOMAINS)})", verbose)
    if all(report.get(k) is None for k in ["before", "protected", "unprotected", "largest_off_target",
                                           "protection_helps"]):
        result = missing("off_target", "off_target", CHECKS, "every entry of the report")
        result.notes = notes
        return finish(result, verbose)
    ref = off_target_reference(cls, dom)
    result = run_checks("off_target", "off_target", CHECKS, {"report": report, "ref": ref})
    result.notes = notes | {"forgotten": f"{cls} in {dom}"}
    return finish(result, verbose)


def fresh_task(seed: int) -> dict:
    """The cell the grader's run forgets when it re-runs the student's functions (plain data)."""
    return {"forgotten_class": TOYWORLD_CLASSES[seed % len(TOYWORLD_CLASSES)],
            "forgotten_domain": TOYWORLD_DOMAINS[(seed // len(TOYWORLD_CLASSES)) % len(TOYWORLD_DOMAINS)],
            "n_per_cell": PROBE_N_PER_CELL}


def gate(result: Result, fresh: Any, task: dict) -> Result:
    """Fail every number check the student's functions do not reproduce on the grader's fresh cell."""
    ref = off_target_reference(task["forgotten_class"], task["forgotten_domain"])
    values, why = fresh_values(fresh)
    for c in result.checks:
        if c.name not in NUMBERS_OF or not c.passed:
            continue
        edit, groups = NUMBERS_OF[c.name]
        got = values.get(edit) if isinstance(values, dict) else None
        m = (_groups_match(got, ref[edit], edit, groups, ref) if ref is not None and got is not None
             else Measured(None, why))
        if m.error is None or m.error > ZERO_SHOT_TOL:
            c.passed = False
            c.message = (f"the grader re-ran your functions ({', '.join(FUNCTIONS)}) on {task['forgotten_class']!r} "
                         f"in {task['forgotten_domain']!r}: {m.text}; the report must come from your functions")
    return result


def grade(values: Any, task: dict) -> list[Result]:
    """Score the kernel's values {"report": ..., "fresh": ...} -> [Result] (in the grader's process)."""
    return grade_report(values, task, check_off_target, gate)
