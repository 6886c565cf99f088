"""Student versions of the assignments, made from the reference solutions (the single source).

A solution notebook marks what students must write:

    def projector(F, R, alpha=1.0, rho=0.99):
        # BEGIN SOLUTION
        ...the reference code...
        # END SOLUTION
        # STARTER: # TODO: build U, then P = I - alpha U U^T
        # STARTER: return None

The starter drops the lines from ``# BEGIN SOLUTION`` to ``# END SOLUTION`` and un-comments the
``# STARTER:`` lines (keeping their indentation). A cell tagged ``solution`` is dropped whole. Outputs and
execution counts are cleared; the notebook metadata keeps its kernel and the assignment id.
"""
from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import nbformat

from .registry import ASSIGNMENTS, METADATA_KEY

BEGIN, END = re.compile(r"^\s*# BEGIN SOLUTION\s*$"), re.compile(r"^\s*# END SOLUTION\s*$")
STARTER = re.compile(r"^(\s*)# STARTER: ?(.*)$")
SOLUTION_TAG = "solution"
KEEP_METADATA = ("kernelspec", "language_info", METADATA_KEY)


def starter_source(source: str) -> str:
    """The student's version of one code cell's source (raises ValueError on unbalanced markers)."""
    out, inside = [], False
    for n, line in enumerate(source.splitlines(), 1):
        if BEGIN.match(line):
            if inside:
                raise ValueError(f"line {n}: BEGIN SOLUTION inside a solution block")
            inside = True
        elif END.match(line):
            if not inside:
                raise ValueError(f"line {n}: END SOLUTION without BEGIN SOLUTION")
            inside = False
        elif not inside:
            m = STARTER.match(line)
            out.append(m.group(1) + m.group(2) if m else line)
    if inside:
        raise ValueError("BEGIN SOLUTION without END SOLUTION")
    return "\n".join(out)


def make_starter(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A solution notebook -> the starter: no solution code, no outputs."""
    nb = copy.deepcopy(solution)
    nb.cells = [c for c in nb.cells if SOLUTION_TAG not in c.get("metadata", {}).get("tags", [])]
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            try:
                cell.source = starter_source(cell.source)
            except ValueError as e:
                raise ValueError(f"cell {i}: {e}") from None
            cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("execution", None)
        cell.pop("id", None)
    nb.metadata = nbformat.NotebookNode({k: v for k, v in nb.metadata.items() if k in KEEP_METADATA})
    nb.nbformat, nb.nbformat_minor = 4, 4  # no cell ids: the same starter, byte for byte, on every release
    return nb


def clean_solution(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A solution without outputs, for instructors."""
    nb = copy.deepcopy(solution)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def read_solution(assignment_id: str) -> nbformat.NotebookNode:
    return nbformat.read(ASSIGNMENTS[assignment_id].solution_path(), as_version=4)


def write_notebook(nb: nbformat.NotebookNode, path: Path) -> None:
    """Write with a trailing newline, always the same bytes for the same notebook."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        cell.pop("id", None)
    nb.nbformat, nb.nbformat_minor = 4, 4
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(nbformat.writes(nb, version=4) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def readme() -> str:
    """The students' README of a release."""
    lines = [
        "# minclip_unlearn assignments",
        "",
        "Each notebook is one assignment. Open it in Jupyter (with `minclip_unlearn` installed: "
        "`pip install -e \".[test]\"` in the repository), read the instructions at the top, and fill in every "
        "cell marked **TODO**. Run the checker cells as often as you like: they print which properties hold, "
        "with the measured error and a hint for each one that does not.",
        "",
        "| Notebook | Assignment | Time | Points |",
        "|---|---|---|---|",
    ]
    for a in ASSIGNMENTS.values():
        lines.append(f"| `{a.filename}` | {a.title} | about {a.minutes} min | {a.max_points:g} |")
    lines += [
        "",
        "## Rules for a notebook that can be graded",
        "",
        "- Keep the names the starter defines (functions and the `report` dictionary): the grader checks those.",
        "- The grader runs your notebook from top to bottom in a fresh kernel, with a time limit. A cell that "
        "raises, or a notebook that does not finish in time, scores zero: restart the kernel and run all cells "
        "before you submit.",
        "- Do not remove the notebook's metadata (the grader reads which assignment it is from there); you may "
        "rename the file.",
        "- Written answers (`report['explanation']`) are read by your instructor; they are not scored "
        "automatically.",
        "",
    ]
    return "\n".join(lines)


def release(out: str | os.PathLike, solutions: bool = False, with_readme: bool = True) -> list[Path]:
    """Write every starter notebook (and README.md) to out; with solutions, also out/solutions/. Returns paths."""
    out, written = Path(out), []
    for a in ASSIGNMENTS.values():
        sol = read_solution(a.id)
        write_notebook(make_starter(sol), out / a.filename)
        written.append(out / a.filename)
        if solutions:
            write_notebook(clean_solution(sol), out / "solutions" / a.filename)
            written.append(out / "solutions" / a.filename)
    if with_readme:
        (out / "README.md").write_text(readme(), encoding="utf-8")
        written.append(out / "README.md")
    return written
