"""The assignments: their parts and checks, the names each part grades, what each forbids, and how long it takes.

Points, maximums and check columns come from here (the check specs), never from a notebook.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import a1_projector, a2_probe, a3_off_target
from .course import solutions_dir
from .results import Result
from .runner import CheckSpec

METADATA_KEY = "minclip_assignment"  # notebook metadata: {"id": ..., "title": ..., "version": ...}


@dataclass(frozen=True)
class Part:
    """One graded part: its checks, the notebook names it grades, the package functions it forbids."""

    part: str
    names: tuple[str, ...]          # what the student must define (keep the starter's names)
    checks: tuple[CheckSpec, ...]
    forbidden: tuple[str, ...] = ()  # the package's reference implementation for this part

    @property
    def max_points(self) -> float:
        return sum(c.points for c in self.checks)


@dataclass(frozen=True)
class Assignment:
    id: str
    title: str
    filename: str              # of the solution and of the starter (book/assignments/, release)
    minutes: int               # estimated student time
    parts: tuple[Part, ...]
    goals: tuple[str, ...]     # learning goals, for the instructors' page and the README
    aliases: tuple[str, ...]   # words in a file name that identify the assignment when metadata is missing
    task: Callable[[int], dict]                   # seed -> the run's fresh inputs (plain data, sent to the kernel)
    score: Callable[[Any, dict], list[Result]]    # (values from the kernel, task) -> one Result per part

    @property
    def max_points(self) -> float:
        return sum(p.max_points for p in self.parts)

    @property
    def check_columns(self) -> list[str]:
        return [f"{p.part}.{c.name}" for p in self.parts for c in p.checks]

    def solution_path(self) -> Path:
        return solutions_dir() / self.filename


def _a1_task(seed: int) -> dict:
    return {"seed": seed, **a1_projector.grader_inputs(seed)}


def _a1_score(values: Any, task: dict) -> list[Result]:
    return a1_projector.grade(values, task["seed"])


ASSIGNMENTS: dict[str, Assignment] = {
    a.id: a
    for a in [
        Assignment(
            id="projector",
            title="Assignment 1: the retain-protected hard projector",
            filename="a1_projector.ipynb",
            minutes=60,
            parts=(Part("orth", ("orth",), tuple(a1_projector.ORTH_CHECKS), ("orth_gram",)),
                   Part("projector", ("projector",), tuple(a1_projector.PROJECTOR_CHECKS),
                        ("hard_projector", "removed_basis", "projector_from_basis"))),
            goals=(
                "build an orthonormal basis with an SVD, with a rank tolerance and an energy cut (rho)",
                "protect the retain span: remove only the part of the forget directions no retained concept needs",
                "verify a projector by its algebra: symmetry, idempotence, retain preservation, forget residual, "
                "strength alpha, rank",
            ),
            aliases=("projector", "a1"),
            task=_a1_task,
            score=_a1_score,
        ),
        Assignment(
            id="probe_attack",
            title="Assignment 2: attack a forgotten model with a linear probe",
            filename="a2_probe_attack.ipynb",
            minutes=45,
            parts=(Part("probe_attack", ("report", *a2_probe.FUNCTIONS), tuple(a2_probe.CHECKS),
                        ("probe_reference", "_probe_reference", "recovery_probe")),),
            goals=(
                "forget a class of ToyWorld with minclip_unlearn.unlearn and measure forget and retain accuracy",
                "fit a logistic-regression recovery probe on edited image embeddings",
                "tell zero-shot forgetting (no alignment with the text) from erasure (no linearly decodable "
                "information), and say which one the edit achieves",
            ),
            aliases=("probe", "attack", "a2"),
            task=a2_probe.fresh_task,
            score=a2_probe.grade,
        ),
        Assignment(
            id="off_target",
            title="Assignment 3: domain-specific forgetting and its off-target effect",
            filename="a3_off_target.ipynb",
            minutes=45,
            parts=(Part("off_target", ("report", *a3_off_target.FUNCTIONS), tuple(a3_off_target.CHECKS),
                        ("off_target_reference", "_off_target_reference", "rule_references", "_rule_references")),),
            goals=(
                "state a domain-specific request as a forget mask and run it with minclip_unlearn.unlearn",
                "measure the off-target effect: the forgotten cell, the same class in other domains, other classes",
                "show what retain protection buys by comparing with an edit that ignores the retain set",
            ),
            aliases=("off", "target", "domain", "a3"),
            task=a3_off_target.fresh_task,
            score=a3_off_target.grade,
        ),
    ]
}


def identify(metadata: dict | None, filename: str | Path) -> Assignment | None:
    """Notebook metadata `minclip_assignment.id` first; else a known id or alias as a word in the file name."""
    meta = (metadata or {}).get(METADATA_KEY) or {}
    if isinstance(meta, dict) and meta.get("id") in ASSIGNMENTS:
        return ASSIGNMENTS[meta["id"]]
    words = set(re.split(r"[^a-z0-9]+", Path(filename).stem.lower()))
    stem = Path(filename).stem.lower()
    for a in ASSIGNMENTS.values():
        if a.id in stem or words & set(a.aliases):
            return a
    return None
