"""Assignments: the checkers accept the reference solutions and name the typical mistakes; release writes
clean starters (the book's copies among them); the grader scores solutions fully, wrong answers partly, and
gives a zero with a reason to a notebook that raises, loops forever, or is not a notebook."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from minclip_unlearn.assignments import (ASSIGNMENTS, check_off_target, check_orth, check_probe_attack, check_projector,
                                         identify)
from minclip_unlearn.assignments import a1_projector, a2_probe, a3_off_target
from minclip_unlearn.assignments.__main__ import main
from minclip_unlearn.assignments.grade import grade_one
from minclip_unlearn.assignments.release import make_starter, read_solution, release, starter_source
from minclip_unlearn.assignments.results import NOT_IMPLEMENTED
from minclip_unlearn.nullspace import hard_projector, orth as lib_orth

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "assignments"
BOOK = ROOT / "book" / "assignments"


def solution_namespace(assignment_id: str) -> dict:
    """Run the reference solution's code cells in-process (no kernel), checker calls left out."""
    ns: dict = {}
    for i, cell in enumerate(read_solution(assignment_id).cells):
        if cell.cell_type == "code" and not cell.source.lstrip().startswith("check_"):
            exec(compile(cell.source, f"<{assignment_id} solution cell {i}>", "exec"), ns)  # noqa: S102
    return ns


@pytest.fixture(scope="module")
def a1():
    return solution_namespace("projector")


def failed(result) -> dict[str, str]:
    return {c.name: c.message for c in result.checks if not c.passed}


# ------------------------------------------------------------------ assignment 1: orth
def test_reference_orth_gets_full_marks(a1, capsys):
    result = check_orth(a1["orth"])
    assert (result.total, result.max_total) == (3, 3)
    assert "orth: 3/3 points" in capsys.readouterr().out
    assert check_orth(lambda A, tol=1e-6, energy=None: lib_orth(A, tol, energy), verbose=False).total == 3


def test_orth_mistakes_are_named():
    qr = failed(check_orth(lambda A, tol=1e-6, energy=None: torch.linalg.qr(A)[0], verbose=False))
    assert set(qr) == {"span", "energy"}
    assert "wrong number of columns: 6 for A of rank 3" in qr["span"] and "a QR of A" in qr["span"]
    normalised = failed(check_orth(lambda A, tol=1e-6, energy=None: A / A.norm(dim=0), verbose=False))
    assert "orthonormality failed: max |QᵀQ − I| =" in normalised["orthonormal"]
    no_energy = failed(check_orth(lambda A, tol=1e-6, energy=None: lib_orth(A, tol), verbose=False))
    assert set(no_energy) == {"energy"} and "expected 2" in no_energy["energy"]


# ------------------------------------------------------------------ assignment 1: projector
def _eye(F):
    return torch.eye(F.shape[0], dtype=F.dtype)


def ignores_retain(F, R, alpha=1.0, rho=0.99):
    U = lib_orth(F)
    return _eye(F) - alpha * U @ U.T


def not_orthonormal(F, R, alpha=1.0, rho=0.99):
    Q = lib_orth(R, energy=rho)
    Ft = F - Q @ (Q.T @ F)
    return _eye(F) - alpha * Ft @ Ft.T


def wrong_sign(F, R, alpha=1.0, rho=0.99):
    return 2 * _eye(F) - hard_projector(F, R, alpha=alpha, rho=rho)  # I + alpha U U^T


def no_energy(F, R, alpha=1.0, rho=0.99):
    return hard_projector(F, R, alpha=alpha, rho=1.0)


def test_reference_projector_gets_full_marks(a1, capsys):
    result = check_projector(a1["projector"])
    assert (result.total, result.max_total) == (10, 10)
    assert all(c.passed for c in result.checks)
    assert "projector: 10/10 points" in capsys.readouterr().out
    # the library's own projector, and a numpy answer, pass too
    assert check_projector(lambda F, R, alpha=1.0, rho=0.99: hard_projector(F, R, alpha, rho), verbose=False).total == 10
    as_numpy = lambda F, R, alpha=1.0, rho=0.99: hard_projector(F, R, alpha, rho).numpy()  # noqa: E731
    assert check_projector(as_numpy, verbose=False).total == 10


def test_projector_that_ignores_the_retain_set():
    result = check_projector(ignores_retain, verbose=False)
    bad = failed(result)
    assert set(bad) == {"retain", "forget", "agreement"} and result.total == 5
    assert bad["retain"].startswith("retain preservation failed: max |P Q_R − Q_R| = 0.4 (tolerance 1e-06)")
    assert "did you project F onto the complement of the retain span before taking its basis?" in bad["retain"]
    assert "Likely cause: your P equals I − α·orth(F)·orth(F)ᵀ: the retain set is ignored" in bad["retain"]


def test_projector_that_forgets_to_orthonormalise():
    bad = failed(check_projector(not_orthonormal, verbose=False))
    assert set(bad) == {"idempotence", "forget", "agreement"}
    assert bad["idempotence"].startswith("idempotence failed: max |P₁² − P₁| =")
    assert "is U orthonormal?" in bad["idempotence"]
    assert "U must be an orthonormal basis of F̃" in bad["idempotence"]


def test_projector_with_the_wrong_sign_of_alpha():
    bad = failed(check_projector(wrong_sign, verbose=False))
    assert set(bad) == {"idempotence", "forget", "agreement"}
    assert "the sign of α is flipped" in bad["forget"]


def test_projector_without_the_energy_cut_and_other_mistakes():
    bad = failed(check_projector(no_energy, verbose=False))
    assert set(bad) == {"forget", "agreement"} and "'many_retain'" in bad["forget"]
    assert "Truncate Q_R = orth(R, energy=rho)" in bad["forget"]

    def alpha_ignored(F, R, alpha=1.0, rho=0.99):
        return hard_projector(F, R, alpha=1.0, rho=rho)

    bad = failed(check_projector(alpha_ignored, verbose=False))
    assert set(bad) == {"alpha0", "agreement"}
    assert "max |P₀ − I| = 0.57" in bad["alpha0"] and "the strength α is ignored" in bad["alpha0"]

    def qr_basis(F, R, alpha=1.0, rho=0.99):
        Q = lib_orth(R, energy=rho)
        U, _ = torch.linalg.qr(F - Q @ (Q.T @ F))
        return _eye(F) - alpha * U @ U.T

    bad = failed(check_projector(qr_basis, verbose=False))
    assert "'overlap'" in bad["agreement"] and "rank-deficient" in bad["agreement"]


def test_projector_that_is_missing_raises_or_has_the_wrong_shape(capsys):
    result = check_projector(lambda F, R, alpha=1.0, rho=0.99: None)
    assert result.total == 0 and all(NOT_IMPLEMENTED in c.message for c in result.checks)
    assert f"projector: 0/10 points — {NOT_IMPLEMENTED}" in capsys.readouterr().out
    assert check_projector(None, verbose=False).total == 0
    bad = failed(check_projector(lambda F, R: _eye(F), verbose=False))  # no alpha / rho parameters
    assert "your function raised TypeError" in bad["shape"]
    bad = failed(check_projector(lambda F, R, alpha=1.0, rho=0.99: (F @ F.T)[:2], verbose=False))
    assert "returned shape (2, 16), expected (16, 16)" in bad["shape"]
    assert set(bad) == set(a1_projector.PROJECTOR_PROPERTY) | {"shape"}


def test_result_round_trips_and_reports():
    result = check_projector(ignores_retain, verbose=False)
    again = type(result).from_dict(json.loads(json.dumps(result.to_dict())))
    assert again.points == result.points and again.total == 5 and again.max_total == 10
    assert result.points["projector.retain"] == 0 and result.points["projector.symmetry"] == 1
    assert "[FAIL] retain preservation" in result.report() and repr(result) == "<Result projector: 5/10 points>"
    assert result.feedback().startswith("projector.retain: retain preservation failed")


# ------------------------------------------------------------------ assignment 2: the probe checker's logic
REFERENCE = {
    "zero_shot_forget_before": 0.90, "zero_shot_forget_after": 0.05, "zero_shot_retain_after": 0.88,
    "zero_shot_retain_before": 0.89, "probe_forget_before": 0.95, "probe_forget_after": 0.85,
    "probe_retain_after": 0.92, "probe_raw_features": 0.97, "zero_shot_all_after": 0.76, "chance": 1 / 7,
}


@pytest.fixture
def fixed_reference(monkeypatch):
    monkeypatch.setattr(a2_probe, "probe_reference", lambda cls, n=20, rho=0.8: dict(REFERENCE))


def good_report(**change):
    keys = ["zero_shot_forget_before", "zero_shot_forget_after", "zero_shot_retain_after",
            "probe_forget_before", "probe_forget_after"]
    report = {"forgotten_class": "star", **{k: REFERENCE[k] for k in keys}, "still_decodable": True,
              "explanation": "The edit removes the text alignment, not the information."}
    return report | change


def test_probe_checker_accepts_right_numbers(fixed_reference):
    result = check_probe_attack(good_report(probe_forget_after=0.80), verbose=False)
    assert (result.total, result.max_total) == (10, 10)
    assert result.notes["explanation"].startswith("The edit removes")


def test_probe_checker_names_the_mistakes(fixed_reference):
    bad = failed(check_probe_attack(good_report(probe_forget_after=0.05, still_decodable=False), verbose=False))
    assert set(bad) == {"probe_after", "conclusion"}
    assert "probe_forget_after = 0.050, the checker measures 0.850" in bad["probe_after"]
    assert "that is the zero-shot accuracy" in bad["probe_after"]
    assert "not necessarily the information itself" in bad["conclusion"]
    bad = failed(check_probe_attack(good_report(zero_shot_forget_after=0.90), verbose=False))
    assert set(bad) == {"zs_after"} and "evaluate the edited model that unlearn() returned" in bad["zs_after"]
    bad = failed(check_probe_attack(good_report(probe_forget_after=0.97), verbose=False))
    assert "probe on the pre-projection features" in bad["probe_after"]
    bad = failed(check_probe_attack(good_report(zero_shot_retain_after=88.0), verbose=False))
    assert "not an accuracy in [0, 1]" in bad["zs_retain"]


def test_probe_checker_unfinished_or_invalid_reports(fixed_reference):
    starter = good_report(probe_forget_after=None, still_decodable=None, explanation="")
    bad = failed(check_probe_attack(starter, verbose=False))
    assert bad["probe_after"] == f"{NOT_IMPLEMENTED}: report['probe_forget_after'] is None"
    assert bad["conclusion"].startswith(NOT_IMPLEMENTED)
    assert check_probe_attack(None, verbose=False).total == 0
    result = check_probe_attack(good_report(forgotten_class="dog"), verbose=False)
    assert result.total == 0 and "not a ToyWorld class" in result.checks[0].message
    result = check_probe_attack(good_report(rho=80), verbose=False)
    assert result.total == 0 and "report['rho'] = 80" in result.checks[0].message


# ------------------------------------------------------------------ assignment 3: the off-target checker's logic
OFF_TARGET = {
    "before": {"forget": 0.90, "same_class_other_domains": 0.92, "other_classes": 0.85},
    "protected": {"forget": 0.30, "same_class_other_domains": 0.80, "other_classes": 0.84},
    "unprotected": {"forget": 0.05, "same_class_other_domains": 0.20, "other_classes": 0.80},
    "retain": {"protected": 0.83, "unprotected": 0.70},
}


EMPTY = {  # the protected edit leaves every group as it was: nothing to compare
    "before": dict(OFF_TARGET["before"]), "protected": dict(OFF_TARGET["before"]),
    "unprotected": dict(OFF_TARGET["unprotected"]), "retain": {"protected": 0.90, "unprotected": 0.70},
}
RULE = {"star/sketch": {"rho": 0.8, "ref": EMPTY}, "star/cartoon": {"rho": 0.7, "ref": OFF_TARGET},
        "cross/photo": {"rho": 0.6, "ref": OFF_TARGET}}


@pytest.fixture
def fixed_off_target(monkeypatch):
    """The checker's runs replaced by fixed ones; every rho it was asked for is recorded in the list returned."""
    asked = []

    def reference(c, d, rho):
        asked.append(rho)
        return EMPTY if (c, d) == ("star", "sketch") else OFF_TARGET

    monkeypatch.setattr(a3_off_target, "off_target_reference", reference)
    monkeypatch.setattr(a3_off_target, "rule_references", lambda: RULE)
    return asked


def off_target_report(**change):
    report = {"forgotten_class": "star", "forgotten_domain": "cartoon", "rho": 0.7,
              **{k: dict(OFF_TARGET[k]) for k in ("before", "protected", "unprotected")},
              "largest_off_target": "same_class_other_domains", "protection_helps": True, "explanation": "..."}
    return report | change


def test_off_target_checker_accepts_right_numbers_and_names_mistakes(fixed_off_target):
    assert check_off_target(off_target_report(), verbose=False).total == 10
    retain_mixed = off_target_report(protected={"forget": 0.30, "same_class_other_domains": 0.83, "other_classes": 0.84})
    bad = failed(check_off_target(retain_mixed, verbose=False))
    assert set(bad) == {"protected_same"} and "accuracy over every retained image" in bad["protected_same"]
    swapped = off_target_report(protected=dict(OFF_TARGET["unprotected"]))
    bad = failed(check_off_target(swapped, verbose=False))
    assert set(bad) == {"protected_forget", "protected_same", "protected_other"}
    assert "the unprotected edit's number" in bad["protected_same"]
    bad = failed(check_off_target(off_target_report(largest_off_target="other_classes", protection_helps=False),
                                  verbose=False))
    assert set(bad) == {"largest", "helps"}
    assert "the same class in the other domains drop by +0.120" in bad["largest"]
    assert "drops by +0.720 without retain protection and by +0.120 with it" in bad["helps"]


def test_off_target_checker_unfinished_or_invalid_reports(fixed_off_target):
    starter = off_target_report(before=None, protected=None, unprotected=None, largest_off_target=None,
                                protection_helps=None)
    result = check_off_target(starter, verbose=False)
    assert result.total == 0 and all(c.message.startswith(NOT_IMPLEMENTED) for c in result.checks)
    bad = failed(check_off_target(off_target_report(forgotten_domain="quickdraw"), verbose=False))
    assert len(bad) == 7 and "ToyWorld class" in bad["before"]
    bad = failed(check_off_target(off_target_report(largest_off_target="forget"), verbose=False))
    assert "answer one of 'same_class_other_domains', 'other_classes'" in bad["largest"]
    result = check_off_target(off_target_report(rho=80), verbose=False)
    assert result.total == 0 and "report['rho'] = 80" in result.checks[0].message


def test_off_target_checker_reruns_at_the_reports_rho(fixed_off_target):
    check_off_target(off_target_report(rho=0.6), verbose=False)
    report = off_target_report()
    del report["rho"]
    check_off_target(report, verbose=False)
    assert fixed_off_target == [0.6, 0.99]  # a report without rho used unlearn's default


def test_off_target_empty_question_fails_both_conclusions(fixed_off_target):
    """A (cell, rho) where the protected edit removes nothing: neither answer passes, and the message names the
    cells where the question is real."""
    numbers = {k: dict(EMPTY[k]) for k in ("before", "protected", "unprotected")}
    for largest in a3_off_target.OFF_TARGET_CHOICES:
        for helps in (True, False):
            report = off_target_report(forgotten_domain="sketch", rho=0.8, largest_off_target=largest,
                                       protection_helps=helps, **numbers)
            result = check_off_target(report, verbose=False)
            bad = failed(result)
            assert set(bad) == {"largest", "helps"} and result.total == 6
            assert bad["largest"] == bad["helps"] and "\n" not in bad["largest"]
            assert bad["largest"].startswith("the question is empty for 'star' in 'sketch' at rho = 0.8: the "
                                             "protected edit removes +0.00 of the forgotten cell's accuracy")
            assert "removed nothing from that cell" in bad["largest"] and "chapter 6" in bad["largest"]
            assert bad["largest"].endswith("star/cartoon (rho 0.7), cross/photo (rho 0.6)")


def test_off_target_drops_too_close_to_tell_fail_both_conclusions():
    close = {"before": dict(OFF_TARGET["before"]),
             "protected": {"forget": 0.50, "same_class_other_domains": 0.90, "other_classes": 0.84},
             "unprotected": dict(OFF_TARGET["unprotected"])}
    assert "closer than 0.03: no group loses more" in a3_off_target.why_empty(close)
    same_either_way = dict(close, protected={"forget": 0.50, "same_class_other_domains": 0.21, "other_classes": 0.84})
    assert "protection changes nothing to compare" in a3_off_target.why_empty(same_either_way)
    assert a3_off_target.why_empty(OFF_TARGET) == ""


def test_a3_fresh_run_and_reference_share_one_rho(fixed_off_target):
    task = a3_off_target.fresh_task(5)
    assert task["rho"] == a2_probe.FRESH_RHO
    fresh = {"values": {k: dict(OFF_TARGET[k]) for k in ("before", "protected", "unprotected")}}
    assert a3_off_target.grade({"report": off_target_report(), "fresh": fresh}, task)[0].total == 10
    assert fixed_off_target == [0.7, task["rho"]]  # the report's rho, then the fresh task's
    off = dict(fresh["values"], protected=dict(OFF_TARGET["before"]))
    result = a3_off_target.grade({"report": off_target_report(), "fresh": {"values": off}}, task)[0]
    assert set(failed(result)) == {"protected_forget", "protected_same", "protected_other"}


# ------------------------------------------------------------------ release and the book's starters
def test_starter_source_markers():
    src = "def f(x):\n    # BEGIN SOLUTION\n    return x + 1\n    # END SOLUTION\n    # STARTER: # TODO\n    # STARTER: return None"
    assert starter_source(src) == "def f(x):\n    # TODO\n    return None"
    for broken in ("# BEGIN SOLUTION\nx = 1", "x = 1\n# END SOLUTION", "# BEGIN SOLUTION\n# BEGIN SOLUTION"):
        with pytest.raises(ValueError, match="SOLUTION"):
            starter_source(broken)


def test_release_writes_clean_starters_and_a_readme(tmp_path):
    assert main(["release", str(tmp_path), "--solutions"]) == 0
    for a in ASSIGNMENTS.values():
        starter = nbformat.read(tmp_path / a.filename, as_version=4)
        nbformat.validate(starter)
        text = (tmp_path / a.filename).read_text()
        assert "BEGIN SOLUTION" not in text and "STARTER:" not in text
        assert starter.metadata["minclip_assignment"]["id"] == a.id
        assert identify(starter.metadata, "whatever.ipynb") is a
        code = [c for c in starter.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code)
        assert "TODO" in text and "return None" in text
        assert (tmp_path / "solutions" / a.filename).is_file()
    assert "U = orth(F_tilde)" not in (tmp_path / "a1_projector.ipynb").read_text()
    assert "LogisticRegression(max_iter=2000, random_state=0)" not in (tmp_path / "a2_probe_attack.ipynb").read_text()
    readme = (tmp_path / "README.md").read_text()
    assert all(a.filename in readme for a in ASSIGNMENTS.values())


def test_book_starters_are_the_released_ones(tmp_path):
    release(tmp_path, with_readme=False)
    for a in ASSIGNMENTS.values():
        assert (BOOK / a.filename).read_text() == (tmp_path / a.filename).read_text(), (
            f"book/assignments/{a.filename} is out of date: python -m minclip_unlearn.assignments release "
            "book/assignments --no-readme")


def test_identify_by_metadata_then_file_name():
    assert identify({"minclip_assignment": {"id": "probe_attack"}}, "a1_projector.ipynb").id == "probe_attack"
    assert identify({}, "smith_projector.ipynb").id == "projector"
    assert identify({}, "jones-A2.ipynb").id == "probe_attack"
    assert identify({}, "homework.ipynb") is None


def test_make_starter_drops_solution_cells():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("sample answer", metadata={"tags": ["solution"]}),
                                         nbformat.v4.new_code_cell("x = 1")])
    assert [c.source for c in make_starter(nb).cells] == ["x = 1"]


# ------------------------------------------------------------------ scoring plain data from a kernel
def test_a1_scores_plain_outcomes_on_fresh_cases_and_refuses_junk():
    seed = 12345
    task = ASSIGNMENTS["projector"].task(seed)
    ok = {"orth": [{"value": lib_orth(torch.tensor(c["args"][0], dtype=torch.float64), **c["kwargs"]).tolist()}
                   for c in task["orth"]],
          "projector": [{"value": hard_projector(*(torch.tensor(a, dtype=torch.float64) for a in c["args"]),
                                                 **c["kwargs"]).tolist()} for c in task["projector"]]}
    assert [r.total for r in ASSIGNMENTS["projector"].score(ok, task)] == [3, 10]
    # the fixed cases' answers (a recorded answer) do not fit this run's cases
    recorded = {"projector": [{"value": hard_projector(c.F, c.R, c.alpha, c.rho).tolist()}
                              for c in a1_projector.projector_cases()]}
    assert ASSIGNMENTS["projector"].score(recorded, task)[1].total < 10
    junk = [{"points": 13}, {"value": "13"}, {"value": [[1e400]]}, "x", {"value": [[0.0] * 10**5]}]
    for bad in junk:
        results = ASSIGNMENTS["projector"].score({"orth": [bad] * 4, "projector": [bad] * 5}, task)
        assert sum(r.total for r in results) == 0
    assert sum(r.total for r in ASSIGNMENTS["projector"].score({"points": 1000}, task)) == 0


def test_a2_gate_fails_numbers_the_functions_do_not_reproduce(fixed_reference):
    task = a2_probe.fresh_task(3)
    fresh = {"values": {k: REFERENCE[k] for k in a2_probe.PROBE_KEYS}}
    results = a2_probe.grade({"report": good_report(), "fresh": fresh}, task)
    assert results[0].total == 10
    results = a2_probe.grade({"report": good_report(), "fresh": {"error": "missing: fit_probe"}}, task)
    assert results[0].total == 2  # only the conclusion: every number needs the student's functions
    assert "the grader re-ran your functions" in results[0].checks[0].message
    off = dict(fresh["values"], probe_forget_after=0.2)
    results = a2_probe.grade({"report": good_report(), "fresh": {"values": off}}, task)
    assert failed(results[0]).keys() == {"probe_after"}


def test_self_checks_without_the_reference_module(monkeypatch, capsys):
    """Course mode: the package students install has no references; the self-check says so, scores form only."""
    import sys

    monkeypatch.setitem(sys.modules, "minclip_unlearn.assignments.references", None)
    result = check_probe_attack(good_report())
    assert result.total == 0 and "not installed (course mode)" in result.checks[0].message
    assert check_off_target(off_target_report(), verbose=False).total == 0


# ------------------------------------------------------------------ the grader (each notebook: a kernel, seconds)
ATTACKS = ("attack_forge_collect.ipynb", "attack_forge_hook.ipynb", "attack_reference_a1.ipynb",
           "attack_reference_a2.ipynb", "attack_formula.ipynb", "format_v44_ids.ipynb")


@pytest.fixture(scope="module")
def grades(tmp_path_factory, toy_clip):
    """Grade the reference solutions, the fixtures (the endless loop apart) and the one-notebook attacks through
    the CLI, once."""
    out = tmp_path_factory.mktemp("grades") / "grades.csv"
    subs = [str(a.solution_path()) for a in ASSIGNMENTS.values()]
    subs += [str(FIXTURES / n) for n in ("a1_ignores_retain.ipynb", "a2_probe_percentages.ipynb",
                                         "projector_raises.ipynb", "not_a_notebook.ipynb", *ATTACKS)]
    assert main(["grade", *subs, "--out", str(out), "--timeout", "240", "--quiet"]) == 0
    with open(out, newline="", encoding="utf-8") as f:
        return {Path(r["submission"]).name + ("@solution" if "solutions" in r["submission"] else ""): r
                for r in csv.DictReader(f)}


@pytest.mark.timeout(1500)
def test_forged_collector_gets_what_its_work_earns(grades):
    row = grades["attack_forge_collect.ipynb"]  # replaced _collect to claim 1000/13; its real work is 8
    assert (row["status"], row["points"], row["max_points"]) == ("graded", "8", "13")


@pytest.mark.timeout(1500)
def test_results_rewritten_by_a_hook_count_for_nothing(grades):
    row = grades["attack_forge_hook.ipynb"]  # a blank starter whose post_run_cell hook forges 13/13
    assert (row["status"], row["points"], row["max_points"]) == ("graded", "0", "13")


@pytest.mark.timeout(1500)
def test_reference_use_is_flagged_and_scores_zero(grades):
    row = grades["attack_reference_a1.ipynb"]  # honest orth (3), projector = hard_projector
    assert (row["points"], row["projector.agreement"], row["orth.span"]) == ("3", "0", "1")
    assert row["flags"] == "projector: uses hard_projector (code cell 6)"
    assert "reference implementation" in row["feedback"]
    row = grades["attack_reference_a2.ipynb"]  # numbers from the checker's probe_reference
    assert row["points"] == "0" and row["flags"].startswith("probe_attack: uses probe_reference")
    assert all(grades[f"{a.filename}@solution"]["flags"] == "" for a in ASSIGNMENTS.values())


@pytest.mark.timeout(1500)
def test_csv_cells_are_escaped_against_formulas(grades):
    row = grades["attack_formula.ipynb"]
    assert row["answer"].startswith("'=HYPERLINK(")
    assert not any(v.startswith(("=", "+", "@")) for r in grades.values() for v in r.values())


@pytest.mark.timeout(1500)
def test_nbformat_44_with_cell_ids_is_read(grades):
    row = grades["format_v44_ids.ipynb"]
    assert (row["status"], row["points"], row["max_points"]) == ("graded", "13", "13")


@pytest.mark.timeout(1500)
def test_grader_gives_full_marks_to_the_solutions(grades):
    for a in ASSIGNMENTS.values():
        row = grades[f"{a.filename}@solution"]
        assert (row["status"], row["reason"], row["feedback"]) == ("graded", "", "")
        assert float(row["points"]) == float(row["max_points"]) == a.max_points
    assert grades["a2_probe_attack.ipynb@solution"]["answer"]  # the written explanation travels to the CSV


@pytest.mark.timeout(1500)
def test_grader_gives_partial_marks_with_feedback(grades):
    row = grades["a1_ignores_retain.ipynb"]
    assert (row["status"], row["points"], row["max_points"]) == ("graded", "8", "13")
    assert row["projector.retain"] == "0" and row["projector.symmetry"] == "1" and row["orth.span"] == "1"
    assert "did you project F onto the complement of the retain span" in row["feedback"]
    row = grades["a2_probe_percentages.ipynb"]
    assert (row["status"], row["points"], row["max_points"]) == ("graded", "6", "10")
    assert row["probe_attack.probe_after"] == "0" and row["probe_attack.zs_after"] == "2"
    assert "is not an accuracy in [0, 1] (report fractions, not percentages)" in row["feedback"]


@pytest.mark.timeout(1500)
def test_grader_zero_with_a_reason_for_errors_and_non_notebooks(grades):
    row = grades["projector_raises.ipynb"]  # no metadata: identified by its file name
    assert (row["assignment"], row["status"], row["points"], row["max_points"]) == ("projector", "error", "0", "13")
    assert row["reason"] == "code cell 7 raised NameError: name 'F' is not defined"
    row = grades["not_a_notebook.ipynb"]
    assert (row["status"], row["points"]) == ("not a notebook", "0")
    assert "cannot read not_a_notebook.ipynb as a Jupyter notebook" in row["reason"]


@pytest.mark.timeout(300)
def test_grader_stops_an_endless_loop_and_can_grade_past_errors():
    row = grade_one(FIXTURES / "a1_loops.ipynb", timeout=8)
    assert (row.status, row.points, row.max_points) == ("timeout", 0, 13)
    assert "time limit of 8 s" in row.reason and 8 <= row.seconds < 60  # the runner's watchdog, not the outer limit
    row = grade_one(FIXTURES / "projector_raises.ipynb", timeout=120, allow_errors=True)
    assert (row.status, row.points) == ("graded", 13) and "code cell 7 raised" in row.reason


def test_grade_cli_usage_errors(tmp_path, capsys):
    assert main(["grade", str(tmp_path / "missing.ipynb")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["grade", str(tmp_path)]) == 2  # an empty folder
    assert main(["list"]) == 0 and "a1_projector.ipynb" in capsys.readouterr().out


def test_real_a3_default_cell_asks_a_real_question(toy_clip):
    """The A3 solution, in-process on the toy CLIP: the book's rule picks rho, the protected edit removes a real
    part of the default cell, and the conclusions have answers; the solution gets full marks."""
    from minclip_unlearn.assignments.references import off_target_reference

    ns = solution_namespace("off_target")
    report = ns["report"]
    assert report["rho"] == ns["lab"].choose_rho(ns["mask"], ns["prototypes"]) < 0.99
    ref = off_target_reference(report["forgotten_class"], report["forgotten_domain"], 20, report["rho"])
    drop = {e: {g: ref["before"][g] - ref[e][g] for g in ref["before"]} for e in ("protected", "unprotected")}
    assert drop["protected"]["forget"] >= 0.25
    same, other = drop["protected"]["same_class_other_domains"], drop["protected"]["other_classes"]
    assert abs(same - other) > a3_off_target.OFF_TARGET_MARGIN
    assert drop["unprotected"]["same_class_other_domains"] - same > a3_off_target.OFF_TARGET_MARGIN
    assert (report["forgotten_class"], report["forgotten_domain"], report["rho"]) in a3_off_target.real_cells()
    result = check_off_target(report, verbose=False)
    assert result.total == result.max_total == 10, result.report()


def test_real_numbers_solution_report_passes(toy_clip):
    """The A2 solution's report, computed in-process on the cached toy CLIP at the book's rule for rho, gets full
    marks."""
    ns = solution_namespace("probe_attack")
    assert ns["report"]["rho"] == ns["lab"].choose_rho(ns["mask"], ns["prototypes"])
    result = check_probe_attack(ns["report"], verbose=False)
    assert result.total == result.max_total == 10, result.report()
    assert 0 <= ns["report"]["zero_shot_forget_after"] < ns["report"]["zero_shot_forget_before"]
    assert np.isfinite(ns["report"]["probe_forget_after"])
