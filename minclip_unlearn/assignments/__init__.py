"""Graded assignments: automatic checkers for students, and a kit for instructors (release, grade).

In a notebook::

    from minclip_unlearn.assignments import check_projector
    result = check_projector(projector)   # prints a report; result.total, result.checks, ...

On the command line (see ``python -m minclip_unlearn.assignments --help``)::

    python -m minclip_unlearn.assignments release handout/
    python -m minclip_unlearn.assignments grade submissions/ --out grades.csv
"""
from .a1_projector import check_orth, check_projector
from .a2_probe import PROBE_N_PER_CELL, check_probe_attack
from .a3_off_target import check_off_target
from .registry import ASSIGNMENTS, Assignment, identify
from .results import Check, Result

__all__ = ["check_orth", "check_projector", "check_probe_attack", "check_off_target", "PROBE_N_PER_CELL", "Check", "Result",
           "ASSIGNMENTS", "Assignment", "identify"]
