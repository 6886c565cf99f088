"""What the grader's appended cell runs inside the student's kernel: call the student's names, return plain data.

Nothing here scores anything, and nothing it returns is trusted: the grader validates every value on arrival
and decides points, maximums and statuses in its own process (grade.py). A notebook that replaces these
functions can only change the values the grader receives, which the grader then checks like any other.
"""
from __future__ import annotations

import json
from typing import Any

MAX_TEXT = 4000


def plain(value: Any, depth: int = 0) -> Any:
    """value -> JSON-able data (str, finite float, int, bool, None, lists and str-keyed dicts), bounded."""
    if depth > 4:
        return None
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if isinstance(value, dict):
        return {str(k)[:100]: plain(v, depth + 1) for k, v in list(value.items())[:50]}
    if isinstance(value, (list, tuple)):
        return [plain(v, depth + 1) for v in list(value)[:50]]
    if type(value).__name__ in ("bool_", "bool"):  # numpy's bool
        return bool(value)
    if isinstance(value, int) or type(value).__name__.startswith(("int", "uint")):
        return int(value) if abs(int(value)) < 2**53 else None
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        return f"<{type(value).__name__}>"
    return v if v == v and abs(v) != float("inf") else None


def a1_values(ns: dict, inputs: dict) -> dict:
    """Call the notebook's orth and projector on the grader's cases -> {"orth": [...], "projector": [...]}."""
    import torch

    from .runner import invoke

    out = {}
    for name in ("orth", "projector"):
        fn = ns.get(name)
        if not callable(fn):
            out[name] = [{"none": True}] * len(inputs[name])
            continue
        out[name] = [invoke(fn, tuple(torch.tensor(a, dtype=torch.float64) for a in case["args"]), case["kwargs"])
                     for case in inputs[name]]
    return out


def a2_values(ns: dict, task: dict) -> dict:
    """The notebook's report, and its four functions re-run on the grader's class."""
    out: dict = {"report": plain(ns.get("report"))}
    fns = {name: ns.get(name) for name in ("zero_shot_predictions", "cell_accuracy", "fit_probe", "probe_predictions")}
    if not all(callable(f) for f in fns.values()):
        out["fresh"] = {"error": f"missing: {', '.join(n for n, f in fns.items() if not callable(f))}"}
        return out
    try:
        from minclip_unlearn.edit import unlearn
        from minclip_unlearn.lab import open_lab
        from minclip_unlearn.paradigms import forget_classes

        lab = open_lab("toyworld", n_per_cell=task["n_per_cell"])
        mask = forget_classes(lab.grid, task["forgotten_class"])
        edited = unlearn(lab.model, lab.grid, mask, lab.text_dirs, lab.prototypes(progress=False), rho=task["rho"])
        acc, pred = fns["cell_accuracy"], fns["zero_shot_predictions"]
        zs_before, zs_after = pred(lab.model, lab.test), pred(edited, lab.test)
        probed = {name: fns["probe_predictions"](fns["fit_probe"](m, lab.train), m, lab.test)
                  for name, m in (("before", lab.model), ("after", edited))}
        out["fresh"] = {"values": plain({
            "zero_shot_forget_before": acc(zs_before, lab.test, mask),
            "zero_shot_forget_after": acc(zs_after, lab.test, mask),
            "zero_shot_retain_after": acc(zs_after, lab.test, ~mask),
            "probe_forget_before": acc(probed["before"], lab.test, mask),
            "probe_forget_after": acc(probed["after"], lab.test, mask),
        })}
    except Exception as e:  # noqa: BLE001 - student code
        out["fresh"] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
    return out


def a3_values(ns: dict, task: dict) -> dict:
    """The notebook's report, and group_accuracies / unprotected_edit re-run on the grader's cell (at its rho)."""
    out: dict = {"report": plain(ns.get("report"))}
    group, unprotected = ns.get("group_accuracies"), ns.get("unprotected_edit")
    if not (callable(group) and callable(unprotected)):
        out["fresh"] = {"error": "missing: group_accuracies or unprotected_edit"}
        return out
    try:
        from minclip_unlearn.edit import unlearn
        from minclip_unlearn.lab import open_lab
        from minclip_unlearn.paradigms import forget_classes_in_domains

        lab = open_lab("toyworld", n_per_cell=task["n_per_cell"])
        mask = forget_classes_in_domains(lab.grid, task["forgotten_class"], task["forgotten_domain"])
        protected = unlearn(lab.model, lab.grid, mask, lab.text_dirs, lab.prototypes(progress=False),
                            rho=task["rho"])
        edited = unprotected(lab.model, mask)
        out["fresh"] = {"values": plain({
            "before": group(lab.model, lab.test, mask),
            "protected": group(protected, lab.test, mask),
            "unprotected": None if edited is None else group(edited, lab.test, mask),
        })}
    except Exception as e:  # noqa: BLE001 - student code
        out["fresh"] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
    return out


VALUES = {"projector": a1_values, "probe_attack": a2_values, "off_target": a3_values}


def collect(assignment_id: str, ns: dict, task_json: str) -> str:
    """The grading cell's work: the values the grader needs from this notebook, as one JSON text."""
    try:
        values = VALUES[assignment_id](ns, json.loads(task_json))
    except Exception as e:  # noqa: BLE001 - a notebook that broke the environment
        values = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
    return json.dumps(values, allow_nan=False, default=str)
