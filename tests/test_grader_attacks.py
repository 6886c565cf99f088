"""The grader against a hostile student (issue 14): each attack's fixture is graded, and the attack fails.

The fixtures are written by tests/fixtures/assignments/make_attacks.py. The one-notebook attacks (forged
results, reference use, formulas, nbformat 4.4 with ids) are graded with the other fixtures in
test_assignments.py; the ones that need company (a snooper, a killer, their victim) and the resume run are here.
"""
from __future__ import annotations

import csv
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest

from minclip_unlearn.assignments import sandbox
from minclip_unlearn.assignments.__main__ import main
from minclip_unlearn.assignments.grade import escape, grade_one, read_notebook
from minclip_unlearn.assignments.static import uses

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "assignments"
SOLUTION = ROOT / "minclip_unlearn" / "assignments" / "solutions" / "a1_projector.ipynb"
PORT = 47391  # make_attacks.PORT
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def rows_of(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def leftovers(word: str) -> list[str]:
    """Command lines of running processes that contain word."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if word in cmd and str(os.getpid()) != pid:
            out.append(cmd)
    return out


class Listener:
    """A TCP server on 127.0.0.1:PORT that counts connections."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", PORT))
        self.sock.listen(5)
        self.sock.settimeout(0.5)
        self.connections, self.stop = 0, False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
                self.connections += 1
                conn.close()
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.sock.close()


@pytest.fixture(scope="module")
def crowd(tmp_path_factory):
    """A killer, a snooper and an honest victim (the A1 solution), graded in one run with a server listening
    on 127.0.0.1; returns (rows by file name, victim's md5 before, listener)."""
    subs = tmp_path_factory.mktemp("crowd")
    shutil.copy(FIXTURES / "attack_killer.ipynb", subs / "a_killer.ipynb")
    shutil.copy(FIXTURES / "attack_snooper.ipynb", subs / "b_snooper.ipynb")
    shutil.copy(SOLUTION, subs / "c_victim_a1.ipynb")
    before = md5(subs / "c_victim_a1.ipynb")
    out = tmp_path_factory.mktemp("crowd_out") / "grades.csv"
    listener = Listener()
    try:
        assert main(["grade", str(subs), "--out", str(out), "--timeout", "240", "--quiet", "--allow-errors"]) == 0
    finally:
        listener.close()
        contained = sandbox.isolation() == "namespaces"
        escaped = leftovers("minclip-snooper-leftover")
        for pid in _pids("minclip-snooper-leftover"):  # without namespaces the snooper's process outlives it
            os.kill(pid, signal.SIGKILL)
        marker = ROOT / "minclip_unlearn" / "_snooper_was_here.txt"
        wrote_package = marker.exists()
        marker.unlink(missing_ok=True)  # without namespaces it may write into the package
    rows = {Path(r["submission"]).name: r for r in rows_of(out)}
    return rows, subs, before, listener, contained, escaped, wrote_package


def _pids(word: str) -> list[int]:
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if word in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                out.append(int(pid))
        except OSError:
            pass
    return [p for p in out if p != os.getpid()]


@pytest.mark.timeout(900)
def test_the_killer_does_not_stop_the_others(crowd):
    rows, *_, contained, _, _ = crowd
    assert set(rows) == {"a_killer.ipynb", "b_snooper.ipynb", "c_victim_a1.ipynb"}  # every row written
    assert rows["a_killer.ipynb"]["points"] == "0"
    if contained:  # its kill reaches the first process of its PID namespace, which ignores it
        assert rows["a_killer.ipynb"]["status"] == "graded"
        assert (rows["c_victim_a1.ipynb"]["status"], rows["c_victim_a1.ipynb"]["points"]) == ("graded", "13")
    else:  # it kills its own runner only
        assert rows["a_killer.ipynb"]["status"] == "error"


@pytest.mark.timeout(900)
def test_the_snooper_cannot_change_or_run_anyone_elses_notebook(crowd):
    """With namespaces (book/instructors.md: without them this does not hold, and is not claimed)."""
    rows, subs, before, _, contained, _, _ = crowd
    if contained:
        assert md5(subs / "c_victim_a1.ipynb") == before  # not overwritten
        assert nbformat.read(subs / "c_victim_a1.ipynb", as_version=4).cells
        snooper = rows["b_snooper.ipynb"]
        assert (snooper["status"], snooper["points"]) == ("graded", "0")  # found no one to copy
    assert rows["b_snooper.ipynb"]["max_points"] == "13"  # without namespaces it may copy anyone


@pytest.mark.timeout(900)
def test_the_snooper_is_contained(crowd):
    rows, _, _, listener, contained, escaped, wrote_package = crowd
    if contained:
        assert not wrote_package  # a read-only package
        assert listener.connections == 0  # no network, 127.0.0.1 included
        assert escaped == []  # nothing left running, not even a process in its own session
        assert "code cell 12 raised" in rows["b_snooper.ipynb"]["reason"]  # 6 GB of address space refused


@pytest.mark.timeout(900)
def test_a_killed_grader_resumes_where_it_stopped(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    for n in (1, 2, 3):
        shutil.copy(FIXTURES / "a1_ignores_retain.ipynb", subs / f"r{n}_a1.ipynb")
    out = tmp_path / "grades.csv"
    cmd = [sys.executable, "-m", "minclip_unlearn.assignments", "grade", str(subs), "--out", str(out), "--quiet"]
    grader = subprocess.Popen(cmd, env=ENV, start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not (out.exists() and len(rows_of(out)) >= 1):
        time.sleep(0.2)
    os.kill(grader.pid, signal.SIGKILL)  # the grader only: its runners must die with it
    grader.wait()
    first = rows_of(out)
    assert 1 <= len(first) < 3 and first[0]["points"] == "8"
    time.sleep(3)
    assert leftovers(str(Path(sandbox.__file__))) == []
    assert main(["grade", str(subs), "--out", str(out), "--quiet"]) == 0
    again = rows_of(out)
    assert [Path(r["submission"]).name for r in again] == ["r1_a1.ipynb", "r2_a1.ipynb", "r3_a1.ipynb"]
    assert again[0] == first[0]  # kept, not graded again
    assert all(r["points"] == "8" for r in again)


@pytest.mark.timeout(300)
def test_the_process_group_fallback_grades_and_limits_memory(monkeypatch, tmp_path):
    monkeypatch.setenv("MINCLIP_SANDBOX", "process-group")
    row = grade_one(FIXTURES / "a1_ignores_retain.ipynb", timeout=120)
    assert (row.status, row.points, row.max_points) == ("graded", 8, 13)
    greedy = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import mmap\nbig = mmap.mmap(-1, 12 * 2**30)")])
    nbformat.write(greedy, tmp_path / "greedy_a1.ipynb")
    row = grade_one(tmp_path / "greedy_a1.ipynb", timeout=120)
    assert row.status == "error" and row.reason.startswith("code cell 0 raised")


def test_arguments_are_checked_before_any_grading(tmp_path, capsys):
    nb = str(FIXTURES / "a1_ignores_retain.ipynb")
    for bad in ("0", "-5", "soon"):
        with pytest.raises(SystemExit):
            main(["grade", nb, "--timeout", bad])
        assert "--timeout" in capsys.readouterr().err
    assert main(["grade", nb, "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    mine = tmp_path / "mine.csv"
    mine.write_text("name,mark\nann,3\n")
    assert main(["grade", nb, "--out", str(mine)]) == 2
    assert "not a grades file" in capsys.readouterr().err and mine.read_text() == "name,mark\nann,3\n"
    assert main(["grade", nb, "--course", str(tmp_path)]) == 2
    assert "references.py" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.csv.*"))


def test_cells_escaped_against_formulas():
    assert [escape(x) for x in ("=1+1", "+cmd", "-2+3|x", "@SUM(A1)", "\t=x", "0.5", "-1", "plain")] == [
        "'=1+1", "'+cmd", "'-2+3|x", "'@SUM(A1)", "'\t=x", "0.5", "-1", "plain"]


def test_any_nbformat_4_notebook_is_read(tmp_path):
    nb, why = read_notebook(FIXTURES / "format_v44_ids.ipynb")
    assert nb is not None and why == ""
    for minor in (0, 4, 5):
        new = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
        new.nbformat_minor = minor
        if minor < 5:
            new.cells[0].pop("id")
        (tmp_path / f"v{minor}.ipynb").write_text(nbformat.writes(new, version=nbformat.NO_CONVERT))
        assert read_notebook(tmp_path / f"v{minor}.ipynb")[0] is not None
    nb, why = read_notebook(FIXTURES / "not_a_notebook.ipynb")
    assert nb is None and "cannot read" in why


def test_static_flags_reference_use_not_lookalikes():
    names = ("hard_projector", "orth_gram")
    assert uses(["from minclip_unlearn.nullspace import hard_projector as hp"], names) == ["hard_projector (code cell 0)"]
    assert uses(["import minclip_unlearn as m", "P = m.nullspace.hard_projector(F, R)"], names) == [
        "hard_projector (code cell 1)"]
    assert uses(["f = getattr(ns, 'hard_projector')"], names) == ["hard_projector (code cell 0)"]
    assert uses(["%time x = 1\n!ls", "def orth(A):\n    return scipy.linalg.orth(A)"], ("orth",)) == []
    assert uses(["def hard_projector(F, R):\n    return F", "hard_projector(1, 2)"], names) == []  # their own


def test_course_mode_takes_the_references_and_solutions_from_the_kit(tmp_path, capsys):
    from minclip_unlearn.assignments import course
    from minclip_unlearn.assignments.registry import ASSIGNMENTS

    kit = tmp_path / "kit"
    assert main(["course-kit", str(kit)]) == 0
    assert (kit / "references.py").is_file() and (kit / "solutions" / "a1_projector.ipynb").is_file()
    assert main(["course-kit", str(kit)]) == 2 and "exists already" in capsys.readouterr().err  # never overwrites
    try:
        course.use_course(kit)
        assert Path(course.references().__file__) == (kit / "references.py").resolve()
        assert ASSIGNMENTS["projector"].solution_path() == (kit / "solutions" / "a1_projector.ipynb").resolve()
    finally:
        course.use_course(None)
    assert Path(course.references().__file__).parent.name == "assignments"
    assert main(["release", str(tmp_path / "handout"), "--course", str(kit), "--no-readme"]) == 0
    assert (tmp_path / "handout" / "a1_projector.ipynb").is_file()
