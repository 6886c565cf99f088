"""Grade submitted notebooks: each runs alone (sandbox.py); the grader scores it in its own process.

For each submission the grader reads the notebook (any valid nbformat 4.x), tells the assignment, looks at
its code for the package's reference implementation (static.py), appends one cell that calls the student's
names on inputs drawn fresh for this run and prints what they returned as plain data, and runs the notebook
in the sandbox. Back in the grader's process those values are validated and scored with the checks of the
registry: points, maximums and statuses never come from anything the kernel wrote. Each row is written to
the CSV as soon as it is known (atomically, the whole file), so a grader that is killed resumes where it
stopped when it is run again.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from ..cache import atomic_text, cache_dir
from .course import course_dir, references, use_course
from .registry import ASSIGNMENTS, METADATA_KEY, Assignment, identify
from .results import Result
from .sandbox import Job, Limits, run_notebook
from .static import uses

DEFAULT_TIMEOUT = 300  # seconds for a whole notebook (kernel start excluded)
GRADER_TAG = "minclip-grader"
STATUS = ("graded", "error", "timeout", "not a notebook", "unknown assignment")
MAX_NOTEBOOK_BYTES = 50 * 2**20
FIXED = ["submission", "sha256", "assignment", "status", "points", "max_points", "reason", "flags"]
TAIL = ["feedback", "answer", "seconds"]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class Row:
    """One submission's grade: status, points, per-check points, feedback and the reason for a zero."""

    submission: str
    sha256: str = ""
    assignment: str = ""
    status: str = "graded"
    points: float = 0.0
    max_points: float = 0.0
    reason: str = ""
    flags: str = ""
    checks: dict[str, float] = field(default_factory=dict)
    feedback: str = ""
    answer: str = ""
    seconds: float = 0.0

    def cells(self) -> dict[str, str]:
        """The CSV row (text cells escaped against formula injection)."""
        out = {"submission": self.submission, "sha256": self.sha256, "assignment": self.assignment,
               "status": self.status, "points": f"{self.points:g}", "max_points": f"{self.max_points:g}",
               "reason": self.reason, "flags": self.flags, "feedback": self.feedback, "answer": self.answer,
               "seconds": f"{self.seconds:g}"}
        out.update({c: f"{v:g}" for c, v in self.checks.items()})
        return {k: escape(v) for k, v in out.items()}


def escape(cell: str) -> str:
    """A CSV cell that a spreadsheet will not run: text starting with = + - @ tab or CR gets a leading quote."""
    cell = str(cell)
    if cell and cell[0] in FORMULA_START:
        try:
            float(cell)
            return cell
        except ValueError:
            return "'" + cell
    return cell


# ---------------------------------------------------------------- reading a submission
def read_notebook(path: Path) -> tuple[nbformat.NotebookNode | None, str]:
    """Any valid nbformat 4.x notebook (cell ids before 4.5 are dropped) -> (notebook, "") or (None, why)."""
    try:
        if path.stat().st_size > MAX_NOTEBOOK_BYTES:
            return None, f"{path.name} is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB"
        nb = nbformat.reads(path.read_bytes().decode("utf-8"), as_version=4)
        if nb.get("nbformat") == 4 and nb.get("nbformat_minor", 0) < 5:
            for cell in nb.get("cells", []):
                if isinstance(cell, dict):
                    cell.pop("id", None)
        nbformat.validate(nb)
        return nb, ""
    except Exception as e:  # noqa: BLE001 - unreadable, not JSON, not a notebook: all the same to a student
        why = (str(e).splitlines() or [""])[0].split(": '")[0][:160]
        return None, f"cannot read {path.name} as a Jupyter notebook ({type(e).__name__}: {why})"


def sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def grading_cell(assignment_id: str, task: dict, marker: str):
    """The cell the grader appends: call the student's names on the task, print the values on one line."""
    src = ("# Appended by the minclip_unlearn grader: what your functions return on fresh inputs.\n"
           "from minclip_unlearn.assignments.kernel_side import collect as _minclip_collect\n"
           f"print({marker!r} + _minclip_collect({assignment_id!r}, globals(), {json.dumps(task)!r}))")
    return nbformat.v4.new_code_cell(src, metadata={"tags": [GRADER_TAG]})


def _values(text: str, marker: str) -> dict | None:
    """The first line of the grading cell's output that carries the marker and a JSON object, else None."""
    for line in text.splitlines():
        if line.startswith(marker):
            try:
                value = json.loads(line[len(marker):])
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def _flags(a: Assignment, nb) -> dict[str, list[str]]:
    """{part: ["hard_projector (code cell 6)", ...]} for the parts whose forbidden names the code uses."""
    sources = [c.source if c.cell_type == "code" else "" for c in nb.cells]
    return {p.part: hits for p in a.parts if p.forbidden and (hits := uses(sources, p.forbidden))}


# ---------------------------------------------------------------- one submission
@dataclass(frozen=True)
class Run:
    """What every submission of one grading run shares: seed, limits, what to hide, options."""

    seed: int
    timeout: float = DEFAULT_TIMEOUT
    allow_errors: bool = False
    kernel_name: str = "python3"
    limits: Limits = Limits()
    hide_files: tuple[str, ...] = ()
    hide_dirs: tuple[str, ...] = ()


def grade_one(path: str | os.PathLike, timeout: float = DEFAULT_TIMEOUT, assignment: str | None = None,
              allow_errors: bool = False, kernel_name: str = "python3", run: Run | None = None) -> Row:
    """Grade one submission -> Row. Never raises for a bad submission."""
    path = Path(path)
    run = run or Run(seed=secrets.randbits(48), timeout=timeout, allow_errors=allow_errors, kernel_name=kernel_name)
    row = Row(submission=str(path), sha256=sha256(path))
    nb, why = read_notebook(path)
    if nb is None:
        row.status, row.reason = "not a notebook", why
        return row
    a = ASSIGNMENTS.get(assignment) if assignment else identify(nb.metadata, path)
    if a is None:
        row.status = "unknown assignment"
        row.reason = (f"which assignment is {path.name}? No '{METADATA_KEY}' id in its metadata and no "
                      f"known name in the file name ({', '.join(ASSIGNMENTS)}); pass --assignment")
        return row
    row.assignment, row.max_points = a.id, a.max_points
    row.checks = {col: 0.0 for col in a.check_columns}
    flags = _flags(a, nb)
    row.flags = "; ".join(f"{part}: uses {', '.join(hits)}" for part, hits in flags.items())
    for cell in nb.cells:  # a fresh run: no stale outputs, no earlier grader cell
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.cells = [c for c in nb.cells if GRADER_TAG not in c.get("metadata", {}).get("tags", [])]
    if a.id != "projector":
        _prewarm()
    task, marker = a.task(run.seed), f"minclip-values-{secrets.token_hex(8)}:"
    nb.cells.append(grading_cell(a.id, task, marker))
    if nb.get("nbformat_minor", 0) < 5:
        nb.cells[-1].pop("id", None)  # cell ids came with 4.5
    job = Job(notebook=nbformat.writes(nb), timeout=run.timeout, allow_errors=run.allow_errors,
              kernel_name=run.kernel_name, hide_files=list(run.hide_files), hide_dirs=list(run.hide_dirs),
              cache=str(cache_dir()))
    answer = run_notebook(job, run.limits)
    row.seconds = float(answer.get("seconds") or 0) if isinstance(answer.get("seconds"), (int, float)) else 0.0
    if _stopped(row, answer, run, len(nb.cells)):
        return row
    values = _values(str(answer.get("last_outputs", "")), marker)
    if values is None:
        row.status, row.reason = "error", "the grading cell returned no values (did the notebook stop its kernel?)"
        return row
    results = a.score(values, task)
    _zero_flagged(results, flags)
    errors = [i for i in answer.get("error_cells", []) if isinstance(i, int)]
    if run.allow_errors and errors:
        row.reason = f"code cell {errors[0]} raised an error; graded with the definitions that ran (--allow-errors)"
    row.points = sum(r.total for r in results)
    for r in results:
        row.checks.update(r.points)
    row.feedback = " | ".join(f for f in (r.feedback() for r in results) if f)
    row.answer = " ".join(str(r.notes.get("explanation", "")) for r in results).strip()
    return row


def _stopped(row: Row, answer: dict, run: Run, n_cells: int) -> bool:
    """Fill the row for a notebook that did not run to its end; True when it did not."""
    status = answer.get("status")
    if status == "ok":
        return False
    row.status = "timeout" if status == "timeout" else "error"
    if status == "timeout":
        row.reason = (f"the notebook ran past the time limit of {run.timeout:g} s (an endless loop? or a busy "
                      "machine: raise --timeout)")
    elif status == "dead":
        row.reason = "the kernel died: out of memory or CPU time (see --memory), or the notebook exited"
    elif status == "error" and answer.get("start"):
        row.reason = f"could not run the notebook: {str(answer.get('ename'))[:60]}: {str(answer.get('evalue'))[:200]}"
    elif status == "error":
        cells = [i for i in answer.get("error_cells", []) if isinstance(i, int)]
        where = ("the grading cell" if cells and cells[0] == n_cells - 1 else
                 f"code cell {cells[0]}" if cells else "a cell")
        error = f"{str(answer.get('ename'))[:60]}: {str(answer.get('evalue'))[:200]}".strip().rstrip(":")
        row.reason = f"{where} raised {error}"
    else:
        row.reason = "the notebook's run ended without an answer (it killed its own runner, or ran out of memory)"
    return True


def _zero_flagged(results: list[Result], flags: dict[str, list[str]]) -> None:
    for r in results:
        if r.part in flags:
            for c in r.checks:
                c.passed = False
                c.message = (f"uses the package's reference implementation ({', '.join(flags[r.part])}), which "
                             "the assignment forbids: this part scores 0")


_warm = False


def _prewarm() -> None:
    """Train / load the toy CLIP and its prototypes once, in the grader, before a kernel needs them."""
    global _warm
    if _warm or references() is None:
        return
    from ..lab import open_lab

    from .a2_probe import PROBE_N_PER_CELL

    open_lab("toyworld", n_per_cell=PROBE_N_PER_CELL).prototypes(progress=False)
    _warm = True


# ---------------------------------------------------------------- the CSV
def header() -> list[str]:
    """Every column: fixed, one per check of every assignment, then feedback, answer, seconds."""
    return FIXED + [c for a in ASSIGNMENTS.values() for c in a.check_columns] + TAIL


def check_out(out: str | os.PathLike) -> str | None:
    """Why out cannot be the grades CSV (one line), or None."""
    out = Path(out)
    if out.is_dir():
        return f"--out {out} is a folder; give a file name such as {out / 'grades.csv'}"
    if out.exists():
        try:
            read_rows(out)
        except ValueError as e:
            return str(e)
    parent = out.resolve().parent
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK):
        return f"--out {out}: cannot write in {parent}"
    return None


def read_rows(out: Path) -> list[dict[str, str]]:
    """The rows of an earlier run's CSV (raises ValueError for a file this grader did not write)."""
    try:
        with open(out, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            fields = reader.fieldnames or []
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ValueError(f"--out {out}: cannot read it ({type(e).__name__}); choose another file") from None
    if fields[:len(FIXED)] != FIXED:
        raise ValueError(f"--out {out} exists and is not a grades file of this grader; choose another file "
                         "(it is left as it is)")
    return rows


def write_rows(out: Path, rows: list[dict[str, str]]) -> None:
    """The whole CSV, atomically."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header(), extrasaction="ignore", restval="")
    w.writeheader()
    w.writerows(rows)
    atomic_text(out, buf.getvalue())


def write_csv(rows: list[Row], path: str | os.PathLike) -> list[str]:
    """One row per submission (escaped). Returns the header."""
    write_rows(Path(path), [r.cells() for r in rows])
    return header()


# ---------------------------------------------------------------- a run
def expand(submissions, exclude: tuple[Path, ...] = ()) -> list[Path]:
    """Files as given; a folder -> its files (not hidden), sorted; the CSV itself left out."""
    out, skip = [], {p.resolve() for p in exclude}
    for s in map(Path, submissions):
        out += sorted(p for p in s.iterdir() if p.is_file() and not p.name.startswith(".")) if s.is_dir() else [s]
    return [p for p in out if p.resolve() not in skip]


def _hidden_dirs(submissions, extra: tuple[Path, ...]) -> tuple[str, ...]:
    """Folders the sandbox covers with an empty tmpfs: the submissions' folders (and the course folder), except
    a folder that holds what the kernel needs (Python, the package, the cache)."""
    import minclip_unlearn

    needed = [Path(p).resolve() for p in (sys.prefix, sys.base_prefix, Path(minclip_unlearn.__file__).parent,
                                          cache_dir(), *os.environ.get("PYTHONPATH", "").split(os.pathsep)) if p]
    folders = {(Path(s) if Path(s).is_dir() else Path(s).parent).resolve() for s in submissions} | set(extra)
    return tuple(sorted(str(f) for f in folders
                        if f != Path("/") and not any(f == n or f in n.parents for n in needed)))


def grade(submissions, out: str | os.PathLike = "grades.csv", timeout: float = DEFAULT_TIMEOUT,
          assignment: str | None = None, allow_errors: bool = False, progress: bool = True, seed: int | None = None,
          limits: Limits = Limits(), fresh: bool = False, course: str | os.PathLike | None = None) -> list[dict]:
    """Grade every submission (files or folders) into the CSV, row by row; resume an earlier run's rows for
    unchanged submissions (unless fresh). Returns the CSV rows of these submissions."""
    from tqdm.auto import tqdm

    out = Path(out)
    use_course(course)
    rows = read_rows(out) if out.exists() else []
    paths = expand(submissions, exclude=(out,))
    hide_extra = (course_dir(),) if course_dir() else ()
    run = Run(seed=secrets.randbits(48) if seed is None else seed, timeout=timeout, allow_errors=allow_errors,
              limits=limits, hide_files=tuple(sorted({str(p.resolve()) for p in paths} | {str(out.resolve())})),
              hide_dirs=_hidden_dirs(submissions, hide_extra))
    done, mine = {(r["submission"], r["sha256"]): i for i, r in enumerate(rows)}, []
    bar = tqdm(paths, desc="grading", unit="notebook", disable=not progress)
    for p in bar:
        bar.set_postfix_str(p.name[-30:])
        key = (escape(str(p)), sha256(p))
        if key in done and not fresh:
            mine.append(rows[done[key]])
            continue
        cells = grade_one(p, assignment=assignment, run=run).cells()
        same = [i for i, r in enumerate(rows) if r["submission"] == cells["submission"]]
        if same:
            rows[same[0]] = cells
        else:
            rows.append(cells)
        done[key] = same[0] if same else len(rows) - 1
        mine.append(cells)
        write_rows(out, rows)
    if not out.exists():
        write_rows(out, rows)
    return mine


def summary(rows: list[dict]) -> str:
    """A few lines for the terminal: one per submission."""
    return "\n".join(f"{r['points']:>5}/{r['max_points']:<4} {r['status']:<18} {Path(r['submission']).name}"
                     + (f"  ({r['reason']})" if r["reason"] else "") for r in rows)


__all__ = ["grade", "grade_one", "write_csv", "Row", "DEFAULT_TIMEOUT", "Assignment", "STATUS", "escape",
           "read_notebook", "check_out"]
