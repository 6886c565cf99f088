"""The assignments: what each one grades, from which names of the student's notebook, and how long it takes."""
from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable

from .checks import check_off_target, check_orth, check_probe_attack, check_projector
from .results import Result

METADATA_KEY = "minclip_assignment"  # notebook metadata: {"id": ..., "title": ..., "version": ...}


@dataclass(frozen=True)
class Part:
    """One graded part: the checker, applied to the notebook's global `name`."""

    part: str
    name: str          # the function / variable the student must define (keep the starter's name)
    checker: Callable  # checker(obj, verbose=...) -> Result


@dataclass(frozen=True)
class Assignment:
    id: str
    title: str
    filename: str              # of the solution (package data) and of the starter (book/assignments/, release)
    minutes: int               # estimated student time
    parts: tuple[Part, ...]
    goals: tuple[str, ...]     # learning goals, for the instructors' page and the README
    aliases: tuple[str, ...]   # words in a file name that identify the assignment when metadata is missing

    def grade(self, namespace: dict, verbose: bool = False) -> list[Result]:
        """Run every checker on the notebook's globals (a missing name counts as not implemented)."""
        return [p.checker(namespace.get(p.name), verbose=verbose) for p in self.parts]

    def blank(self) -> list[Result]:
        """The results of an empty submission: every check at zero, with its maximum (for table columns)."""
        return [p.checker(None, verbose=False) for p in self.parts]

    @property
    def max_points(self) -> float:
        return sum(r.max_total for r in self.blank())

    @property
    def check_columns(self) -> list[str]:
        return [col for r in self.blank() for col in r.points]

    def solution_path(self) -> Path:
        return Path(str(resources.files("minclip_unlearn.assignments").joinpath("solutions", self.filename)))


ASSIGNMENTS: dict[str, Assignment] = {
    a.id: a
    for a in [
        Assignment(
            id="projector",
            title="Assignment 1: the retain-protected hard projector",
            filename="a1_projector.ipynb",
            minutes=60,
            parts=(Part("orth", "orth", check_orth), Part("projector", "projector", check_projector)),
            goals=(
                "build an orthonormal basis with an SVD, with a rank tolerance and an energy cut (rho)",
                "protect the retain span: remove only the part of the forget directions no retained concept needs",
                "verify a projector by its algebra: symmetry, idempotence, retain preservation, forget residual, "
                "strength alpha, rank",
            ),
            aliases=("projector", "a1"),
        ),
        Assignment(
            id="probe_attack",
            title="Assignment 2: attack a forgotten model with a linear probe",
            filename="a2_probe_attack.ipynb",
            minutes=45,
            parts=(Part("probe_attack", "report", check_probe_attack),),
            goals=(
                "forget a class of ToyWorld with minclip_unlearn.unlearn and measure forget and retain accuracy",
                "fit a logistic-regression recovery probe on edited image embeddings",
                "tell zero-shot forgetting (no alignment with the text) from erasure (no linearly decodable "
                "information), and say which one the edit achieves",
            ),
            aliases=("probe", "attack", "a2"),
        ),
        Assignment(
            id="off_target",
            title="Assignment 3: domain-specific forgetting and its off-target effect",
            filename="a3_off_target.ipynb",
            minutes=45,
            parts=(Part("off_target", "report", check_off_target),),
            goals=(
                "state a domain-specific request as a forget mask and run it with minclip_unlearn.unlearn",
                "measure the off-target effect: the forgotten cell, the same class in other domains, other classes",
                "show what retain protection buys by comparing with an edit that ignores the retain set",
            ),
            aliases=("off", "target", "domain", "a3"),
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
