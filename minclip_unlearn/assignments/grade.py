"""Grade submitted notebooks: run each in a fresh kernel, then the assignment's checkers, one CSV row each.

Design: the grader does not trust what the notebook printed. It appends one cell of its own that imports the
checkers afresh and runs them on the names the starter defines (``orth``, ``projector``, ``report``, ...), and
that cell writes the results to a JSON file the grader reads back. A submission that is not a notebook, raises,
runs past the time limit, or kills its kernel gets a row with the reason and zero points; the grader never
stops on a bad submission.
"""
from __future__ import annotations

import csv
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .registry import ASSIGNMENTS, METADATA_KEY, Assignment, identify
from .results import Result

DEFAULT_TIMEOUT = 300  # seconds for a whole notebook (kernel start excluded)
GRADER_TAG = "minclip-grader"
STATUS = ("graded", "error", "timeout", "not a notebook", "unknown assignment")


@dataclass
class Row:
    """One submission's grade: status, points, per-check points, feedback and the reason for a zero."""

    submission: str
    assignment: str = ""
    status: str = "graded"
    points: float = 0.0
    max_points: float = 0.0
    reason: str = ""
    checks: dict[str, float] = field(default_factory=dict)
    feedback: str = ""
    answer: str = ""
    seconds: float = 0.0


def _collect(assignment_id: str, namespace: dict, out: str) -> None:
    """Run in the student's kernel by the grader's appended cell: check the notebook's names, write JSON."""
    results = ASSIGNMENTS[assignment_id].grade(namespace, verbose=True)
    tmp = out + ".part"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump([r.to_dict() for r in results], f)
    os.replace(tmp, out)


def grading_cell(assignment_id: str, out: str):
    import nbformat

    src = ("# Appended by the minclip_unlearn grader: run the checkers on this notebook's definitions.\n"
           "from minclip_unlearn.assignments.grade import _collect as _minclip_collect\n"
           f"_minclip_collect({assignment_id!r}, globals(), {out!r})")
    return nbformat.v4.new_code_cell(src, metadata={"tags": [GRADER_TAG]})


def _error_text(e: Exception) -> str:
    """A short reason from an nbclient error: the exception name and message, not the whole traceback."""
    ename, evalue = getattr(e, "ename", None), getattr(e, "evalue", None)
    if ename:
        return f"{ename}: {evalue}".strip().rstrip(":")
    lines = [line for line in str(e).strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else type(e).__name__


def _failing_cell(nb) -> int | None:
    """Index of the first code cell whose output is an error (after execution)."""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            return i
    return None


def grade_one(path: str | os.PathLike, timeout: float = DEFAULT_TIMEOUT, assignment: str | None = None,
              allow_errors: bool = False, kernel_name: str = "python3") -> Row:
    """Grade one submission -> Row. Never raises for a bad submission."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    path = Path(path)
    row, start = Row(submission=str(path)), time.monotonic()
    try:
        try:
            nb = nbformat.read(path, as_version=4)
            nbformat.validate(nb)
        except Exception as e:  # noqa: BLE001 - unreadable, not JSON, not a notebook: all the same to a student
            why = (str(e).splitlines() or [""])[0].split(": '")[0][:160]
            row.status, row.reason = "not a notebook", f"cannot read {path.name} as a Jupyter notebook ({type(e).__name__}: {why})"
            return row
        a = ASSIGNMENTS.get(assignment) if assignment else identify(nb.metadata, path)
        if a is None:
            row.status = "unknown assignment"
            row.reason = (f"which assignment is {path.name}? No '{METADATA_KEY}' id in its metadata and no "
                          f"known name in the file name ({', '.join(ASSIGNMENTS)}); pass --assignment")
            return row
        row.assignment, row.max_points = a.id, a.max_points
        row.checks = {col: 0.0 for col in a.check_columns}
        for cell in nb.cells:  # a fresh run: no stale outputs, no earlier grader cell
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        nb.cells = [c for c in nb.cells if GRADER_TAG not in c.get("metadata", {}).get("tags", [])]
        with tempfile.TemporaryDirectory(prefix="minclip-grade-") as work:
            out = os.path.join(work, "_minclip_results.json")
            nb.cells.append(grading_cell(a.id, out))
            deadline = time.monotonic() + timeout
            client = NotebookClient(
                nb, timeout=timeout, timeout_func=lambda cell: max(1.0, deadline - time.monotonic()),
                kernel_name=kernel_name, allow_errors=allow_errors, shutdown_kernel="immediate",
                resources={"metadata": {"path": work}}, startup_timeout=120,
            )
            try:
                client.execute()
            except CellTimeoutError:
                row.status, row.reason = "timeout", (f"the notebook ran past the time limit of {timeout:g} s (an endless loop? "
                                                     "or a busy machine: raise --timeout)")
                return row
            except DeadKernelError as e:
                row.status, row.reason = "error", f"the kernel died ({_error_text(e)}): out of memory, or the notebook exited"
                return row
            except CellExecutionError as e:
                cell = _failing_cell(nb)
                where = "the grading cell" if cell == len(nb.cells) - 1 else f"code cell {cell}" if cell is not None else "a cell"
                row.status, row.reason = "error", f"{where} raised {_error_text(e)}"
                return row
            except Exception as e:  # noqa: BLE001 - a kernel that cannot start, a broken cell, ...
                row.status, row.reason = "error", f"could not run the notebook: {type(e).__name__}: {_error_text(e)}"
                return row
            if not os.path.exists(out):
                row.status, row.reason = "error", "the grading cell wrote no result (did the notebook stop the kernel?)"
                return row
            results = [Result.from_dict(d) for d in json.loads(Path(out).read_text(encoding="utf-8"))]
        if allow_errors and (bad := _failing_cell(nb)) is not None:
            row.reason = f"code cell {bad} raised an error; graded with the definitions that ran (--allow-errors)"
        row.points = sum(r.total for r in results)
        for r in results:
            row.checks.update(r.points)
        row.feedback = " | ".join(f for f in (r.feedback() for r in results) if f)
        row.answer = " ".join(str(r.notes.get("explanation", "")) for r in results).strip()
        return row
    finally:
        row.seconds = round(time.monotonic() - start, 1)


def expand(submissions) -> list[Path]:
    """Files as given; a folder -> its files (not hidden), sorted."""
    out = []
    for s in map(Path, submissions):
        out += sorted(p for p in s.iterdir() if p.is_file() and not p.name.startswith(".")) if s.is_dir() else [s]
    return out


def write_csv(rows: list[Row], path: str | os.PathLike) -> list[str]:
    """One row per submission; a column per check of every assignment present. Returns the header."""
    cols = list(dict.fromkeys(c for a in ASSIGNMENTS.values() if any(r.assignment == a.id for r in rows)
                              for c in a.check_columns))
    header = ["submission", "assignment", "status", "points", "max_points", "reason", *cols, "feedback", "answer", "seconds"]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for r in rows:
            w.writerow([r.submission, r.assignment, r.status, f"{r.points:g}", f"{r.max_points:g}", r.reason,
                        *(f"{r.checks[c]:g}" if c in r.checks else "" for c in cols), r.feedback, r.answer, r.seconds])
    return header


def grade(submissions, out: str | os.PathLike = "grades.csv", timeout: float = DEFAULT_TIMEOUT,
          assignment: str | None = None, allow_errors: bool = False, progress: bool = True) -> list[Row]:
    """Grade every submission (files or folders) and write the CSV; returns the rows."""
    from tqdm.auto import tqdm

    paths, rows = expand(submissions), []
    bar = tqdm(paths, desc="grading", unit="notebook", disable=not progress)
    for p in bar:
        bar.set_postfix_str(p.name[-30:])
        rows.append(grade_one(p, timeout=timeout, assignment=assignment, allow_errors=allow_errors))
    write_csv(rows, out)
    return rows


def summary(rows: list[Row]) -> str:
    """A few lines for the terminal: one per submission."""
    return "\n".join(f"{r.points:>5g}/{r.max_points:<4g} {r.status:<18} {Path(r.submission).name}"
                     + (f"  ({r.reason})" if r.reason else "") for r in rows)


__all__ = ["grade", "grade_one", "write_csv", "Row", "DEFAULT_TIMEOUT", "Assignment", "STATUS"]
