"""The checkers' reference experiments for assignments 2 and 3: the checker's own run of what the student does.

Practice mode uses this module from the package. For a graded course, keep a copy with the instructor
(``python -m minclip_unlearn.assignments course-kit DIR``), remove it from the package students install,
and point the grader at the copy (``grade --course DIR``): see book/instructors.md.
"""
from __future__ import annotations

import contextlib
import functools

import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from minclip_unlearn.edit import apply_projector, directions, unlearn
from minclip_unlearn.evaluate import recovery_probe, scores
from minclip_unlearn.lab import open_lab
from minclip_unlearn.nullspace import hard_projector
from minclip_unlearn.paradigms import forget_classes, forget_classes_in_domains

GROUPS = ("forget", "same_class_other_domains", "other_classes")


@contextlib.contextmanager
def one_thread():
    """Torch and BLAS on one thread: the toy CLIP and the probes are tiny, and one thread is fastest on a busy CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(before)


def probe_reference(forgotten_class: str, n_per_cell: int = 20, rho: float = 0.8) -> dict[str, float]:
    """The checker's run of assignment 2 for one class -> {number name: value}, the usual wrong numbers too."""
    with one_thread():
        return dict(_probe_reference(forgotten_class, n_per_cell, rho))


@functools.lru_cache(maxsize=8)
def _probe_reference(forgotten_class: str, n_per_cell: int, rho: float) -> dict[str, float]:
    """ToyWorld lab, multimodal global forgetting of one class, zero-shot scores and a logistic-regression
    recovery probe, before and after; plus the usual wrong numbers."""
    lab = open_lab("toyworld", n_per_cell=n_per_cell)
    mask = forget_classes(lab.grid, forgotten_class)
    edited = unlearn(lab.model, lab.grid, mask, lab.text_dirs, lab.prototypes(progress=False), rho=rho)
    before, after = lab.scores(lab.model, mask), lab.scores(edited, mask)
    pb, pa = recovery_probe(lab.model, lab.train, lab.test, mask), recovery_probe(edited, lab.train, lab.test, mask)
    forgotten = mask[lab.test.labels, lab.test.domains]
    raw = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=0))
    raw.fit(lab.train.features.numpy(), lab.train.labels.numpy())
    raw_forget = float((raw.predict(lab.test.features[forgotten].numpy()) == lab.test.labels[forgotten].numpy()).mean())
    overall = scores(edited, lab.test, lab.classifier, torch.zeros_like(mask))["retain"]  # all images
    return {
        "zero_shot_forget_before": before["forget"], "zero_shot_forget_after": after["forget"],
        "zero_shot_retain_after": after["retain"], "zero_shot_retain_before": before["retain"],
        "probe_forget_before": pb["probe_forget"], "probe_forget_after": pa["probe_forget"],
        "probe_retain_after": pa["probe_retain"], "probe_raw_features": raw_forget,
        "zero_shot_all_after": overall, "chance": 1 / lab.grid.shape[0],
    }


def off_target_reference(forgotten_class: str, forgotten_domain: str, n_per_cell: int = 20,
                         rho: float = 0.99) -> dict[str, dict]:
    """The checker's run of assignment 3 for one cell at energy threshold rho -> {edit: {group: accuracy}},
    and "retain"."""
    with one_thread():
        return _off_target_reference(forgotten_class, forgotten_domain, n_per_cell, rho)


@functools.lru_cache(maxsize=8)
def _off_target_reference(forgotten_class: str, forgotten_domain: str, n_per_cell: int,
                          rho: float) -> dict[str, dict]:
    lab = open_lab("toyworld", n_per_cell=n_per_cell)
    return _off_target_run(lab, lab.prototypes(progress=False), forgotten_class, forgotten_domain, rho)


def _off_target_run(lab, protos: torch.Tensor, forgotten_class: str, forgotten_domain: str,
                    rho: float) -> dict[str, dict]:
    """ToyWorld, forget one class in one domain (multimodal), with retain protection (unlearn at rho) and
    without (P = I − U Uᵀ, U = orth(F)); zero-shot accuracy of each group of cells."""
    mask = forget_classes_in_domains(lab.grid, forgotten_class, forgotten_domain)
    protected = unlearn(lab.model, lab.grid, mask, lab.text_dirs, protos, rho=rho)
    F, _ = directions(lab.text_dirs, mask, protos)
    unprotected = apply_projector(lab.model, hard_projector(F, None))
    out = {name: {k: lab.scores(m, mask)[k] for k in GROUPS}
           for name, m in (("before", lab.model), ("protected", protected), ("unprotected", unprotected))}
    # the usual wrong number: accuracy over every retained image instead of one group
    out["retain"] = {name: lab.scores(m, mask)["retain"] for name, m in (("protected", protected), ("unprotected", unprotected))}
    return out


def rule_references(n_per_cell: int = 20) -> dict[str, dict]:
    """Every cell of assignment 3 at the book's rule for rho (Lab.choose_rho, chapter 5)
    -> {"class/domain": {"rho": float, "ref": off_target_reference's dict}}."""
    with one_thread():
        return _rule_references(n_per_cell)


@functools.lru_cache(maxsize=2)
def _rule_references(n_per_cell: int) -> dict[str, dict]:
    lab = open_lab("toyworld", n_per_cell=n_per_cell)
    protos = lab.prototypes(progress=False)
    out = {}
    for c in lab.grid.classes:
        for d in lab.grid.domains:
            rho = lab.choose_rho(forget_classes_in_domains(lab.grid, c, d), protos)
            out[f"{c}/{d}"] = {"rho": rho, "ref": _off_target_run(lab, protos, c, d, rho)}
    return out
