"""Assignment 3 checks: domain-specific forgetting and its off-target effect, against the checker's own run.

The report names its energy threshold rho (the starter takes the book's rule, ``Lab.choose_rho``); the checker
re-runs the experiment at that rho. Where the protected edit removes (next to) nothing from the chosen cell, or
the drops to compare are too close, the two conclusion checks fail and name the cells where the question is real.
As for assignment 2, the grader re-runs the student's ``group_accuracies`` and ``unprotected_edit`` on a
class and domain it draws per run (at a fixed rho); a number check passes only when the report and the fresh run
both match.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..paradigms import TOYWORLD_CLASSES, TOYWORLD_DOMAINS
from .a2_probe import FRESH_RHO, PROBE_N_PER_CELL, ZERO_SHOT_TOL, report_rho
from .course import references
from .results import NOT_IMPLEMENTED, Result
from .runner import CheckSpec, Measured, all_failed, blank, finish, fresh_values, grade_report, missing, number, run_checks

GROUPS = {
    "forget": "the forgotten cell(s)",
    "same_class_other_domains": "the same class in the other domains",
    "other_classes": "the other classes",
}
OFF_TARGET_CHOICES = ("same_class_other_domains", "other_classes")
OFF_TARGET_MARGIN = 0.03  # two drops closer than this cannot be told apart: the question is empty
REAL_DROP = 0.1           # the protected edit must remove at least this much of the forgotten cell's accuracy
CHAPTER_6 = "the geometry of chapter 6, 'What a linear edit can forget'"
FUNCTIONS = ("group_accuracies", "unprotected_edit")
IN_COURSE = ("the checker's reference run is not installed (course mode): your instructor's grader compares "
             "these numbers")


def off_target_reference(forgotten_class: str, forgotten_domain: str, rho: float) -> dict | None:
    """The reference run at rho (references.off_target_reference), or None where it is not installed."""
    module = references()
    return None if module is None else module.off_target_reference(forgotten_class, forgotten_domain,
                                                                   PROBE_N_PER_CELL, rho)


def rule_references() -> dict | None:
    """Every cell at the book's rule for rho (references.rule_references), or None where it is not installed."""
    module = references()
    return None if module is None else module.rule_references(PROBE_N_PER_CELL)


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


def why_empty(ref: dict) -> str:
    """'' when both questions have an answer in this reference run, else why not (part of one line)."""
    drop, same, other = _drops(ref), "same_class_other_domains", "other_classes"
    p, u = drop["protected"], drop["unprotected"]
    if p["forget"] < REAL_DROP - 1e-6:  # accuracies are float32 means: 2 of 20 images is 0.0999...
        return (f"the protected edit removes {p['forget']:+.2f} of the forgotten cell's accuracy (less than "
                f"{REAL_DROP:g}): at this rho the retained cells' span covers the cell's directions, so the edit "
                f"removed nothing from that cell ({CHAPTER_6})")
    if abs(p[same] - p[other]) < OFF_TARGET_MARGIN:
        return (f"with the protected edit the two retained groups drop by {p[same]:+.2f} and {p[other]:+.2f}, "
                f"closer than {OFF_TARGET_MARGIN:g}: no group loses more")
    if abs(u[same] - p[same]) < OFF_TARGET_MARGIN:
        return (f"the same class in the other domains drops by {u[same]:+.2f} without retain protection and by "
                f"{p[same]:+.2f} with it, closer than {OFF_TARGET_MARGIN:g}: protection changes nothing to compare")
    return ""


def real_cells() -> list[tuple[str, str, float]] | None:
    """(class, domain, rule's rho) of every cell whose questions have an answer at the rule's rho; None in course
    mode."""
    rule = rule_references()
    if rule is None:
        return None
    return [(*cell.split("/"), run["rho"]) for cell, run in rule.items() if not why_empty(run["ref"])]


def _empty_question(ctx) -> Measured | None:
    """A failed Measured when the chosen (cell, rho) leaves the conclusions without an answer, else None."""
    why = why_empty(ctx["ref"])
    if not why:
        return None
    cells = real_cells() or []
    listed = ", ".join(f"{c}/{d} (rho {r:g})" for c, d, r in cells) or "none"
    cls, dom = ctx["cell"]
    return Measured(1.0, f"the question is empty for {cls!r} in {dom!r} at rho = {ctx['rho']:g}: {why}; choose a "
                    f"cell where it is real at the rule's rho (RHO = lab.choose_rho(mask, prototypes)): {listed}",
                    hinted=False)


def _largest(ctx) -> Measured:
    said, ref = ctx["report"].get("largest_off_target"), ctx["ref"]
    if said is None:
        return Measured(None, f"{NOT_IMPLEMENTED}: report['largest_off_target'] is None")
    if said not in OFF_TARGET_CHOICES:
        return Measured(None, f"report['largest_off_target'] = {said!r}: answer one of "
                        f"{', '.join(map(repr, OFF_TARGET_CHOICES))}")
    if ref is None:
        return Measured(None, IN_COURSE)
    empty = _empty_question(ctx)
    if empty is not None:
        return empty
    drop = _drops(ref)["protected"]
    truth = max(OFF_TARGET_CHOICES, key=lambda g: drop[g])
    if said == truth:
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
    empty = _empty_question(ctx)
    if empty is not None:
        return empty
    drop, same = _drops(ref), "same_class_other_domains"
    if bool(said) == (drop["unprotected"][same] > drop["protected"][same]):
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

    report: {"forgotten_class", "forgotten_domain", "rho": float in (0, 1] (default 0.99, unlearn's),
    "before", "protected", "unprotected": {group: accuracy} with groups "forget", "same_class_other_domains",
    "other_classes"; "largest_off_target": one of those two names; "protection_helps": bool;
    "explanation": str (read by the instructor)}.
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
    rho, why = report_rho(report)
    if rho is None:
        result = blank("off_target", "off_target", CHECKS)
        result.notes = notes
        return all_failed(result, why, verbose)
    ref = off_target_reference(cls, dom, rho)
    ctx = {"report": report, "ref": ref, "cell": (cls, dom), "rho": rho}
    result = run_checks("off_target", "off_target", CHECKS, ctx)
    result.notes = notes | {"forgotten": f"{cls} in {dom}"}
    return finish(result, verbose)


def fresh_task(seed: int) -> dict:
    """The cell the grader's run forgets when it re-runs the student's functions (plain data)."""
    return {"forgotten_class": TOYWORLD_CLASSES[seed % len(TOYWORLD_CLASSES)],
            "forgotten_domain": TOYWORLD_DOMAINS[(seed // len(TOYWORLD_CLASSES)) % len(TOYWORLD_DOMAINS)],
            "rho": FRESH_RHO, "n_per_cell": PROBE_N_PER_CELL}


def gate(result: Result, fresh: Any, task: dict) -> Result:
    """Fail every number check the student's functions do not reproduce on the grader's fresh cell."""
    ref = off_target_reference(task["forgotten_class"], task["forgotten_domain"], task["rho"])
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
