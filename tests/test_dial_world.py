"""The dial world: its objects, its seeded construction, and what the geometry predicts at both ends of the dial.

Behaviour (issue 12, section 4), at the world's default settings (d = 512, noise = 3, gap = 1, private = 0.5,
two prototypes per cell, seed 0; chosen for realism in dial.py, not for these tests), multimodal hard edit
at the package default rho = 0.99:
- kappa = 0 (additive code): a forgotten single cell and a forgotten whole domain stay near their accuracy;
- high kappa (cells nearly independent): every paradigm forgets, keeps the same class elsewhere and the
  other classes.
"""
import numpy as np
import pytest
import torch

from minclip_unlearn import (accuracy_matrix, embed, forget_classes, forget_classes_in_domains, forget_domains,
                             recovery_probe, scores, unlearn)
from minclip_unlearn import edit
from minclip_unlearn.geometry import forgettability, interaction_share
from minclip_unlearn.nullspace import orth
from minclip_unlearn.paradigms import DOMAINNET_DOMAINS, PACS_CLASSES, PACS_DOMAINS, domainnet_classes
from minclip_unlearn.worlds.dial import dial_grid, dial_world, fit_kappa

HIGH_KAPPA = 8.0  # interaction share ~0.65, at the independent-cells limit (1 - 1/7)(1 - 1/4) = 0.64


@pytest.fixture(scope="module")
def additive():
    return dial_world(kappa=0.0)


@pytest.fixture(scope="module")
def independent():
    return dial_world(kappa=HIGH_KAPPA)


def test_objects_have_the_shapes_the_package_expects(additive):
    w = additive
    C, M, n, d = w.prototypes.shape
    assert (C, M, d) == tuple(w.text_dirs.shape) == tuple(w.image_means.shape) and n == 2 and d == 512
    assert w.classifier.shape == (C, d)
    for X in (w.text_dirs, w.classifier, w.prototypes, w.image_means, w.train.features):
        assert torch.allclose(X.norm(dim=-1), torch.ones(()), atol=1e-5)
    assert w.grid.name == "dial" and w.grid.classes == PACS_CLASSES and w.grid.domains == PACS_DOMAINS
    assert len(w.train) == len(w.test) == C * M * 40 and w.test.grid is w.grid
    assert torch.equal(w.model.visual.proj, torch.eye(d))
    assert torch.allclose(embed(w.test.features, w.model), w.test.features, atol=1e-6)
    assert np.bincount(w.test.labels * M + w.test.domains).tolist() == [40] * (C * M)
    assert "kappa=0" in w.source and "dial world" in w.source


def test_seeded_and_sized_at_will():
    a, b, c = dial_world(d=32, n_per_cell=2, seed=3), dial_world(d=32, n_per_cell=2, seed=3), dial_world(d=32, n_per_cell=2, seed=4)
    assert torch.equal(a.test.features, b.test.features) and torch.equal(a.prototypes, b.prototypes)
    assert not torch.equal(a.text_dirs, c.text_dirs)
    big = dial_world(classes=345, domains=6, d=64, n_per_cell=1, n_prototypes=1)
    assert big.grid.classes == domainnet_classes() and big.grid.domains == DOMAINNET_DOMAINS
    assert big.text_dirs.shape == (345, 6, 64) and len(big.test) == 345 * 6
    assert dial_grid(3, 2).classes == ("c0", "c1", "c2")
    with pytest.raises(ValueError, match="at least 2 classes"):
        dial_grid(1, 4)
    with pytest.raises(ValueError, match="kappa"):
        dial_world(kappa=-1)


def test_the_dial_moves_the_interaction_share():
    shares = [interaction_share(dial_world(kappa=k, d=128, n_per_cell=1).text_dirs)["interaction"] for k in (0, 0.5, 2, 8)]
    assert shares[0] < 0.01  # additive codes (on the sphere the normalisation leaves a trace)
    assert shares == sorted(shares) and shares[-1] > 0.6


def test_fit_kappa_recovers_the_dial():
    for side, X in (("text", "text_dirs"), ("image", "image_means")):
        share = interaction_share(getattr(dial_world(kappa=0.7, d=128, n_per_cell=1), X))["interaction"]
        assert fit_kappa(share, side=side, d=128) == pytest.approx(0.7, abs=0.02)
    with pytest.raises(ValueError, match="valid: text, image"):
        fit_kappa(0.1, side="both")


def test_the_package_runs_unchanged_on_it(additive):
    w = additive
    acc = accuracy_matrix(w.model, w.test, w.classifier)
    assert acc.shape == w.grid.shape and acc.mean() > 0.9  # the unedited "CLIP" recognises its world
    mask = forget_classes(w.grid, "dog")
    edited = unlearn(w.model, w.grid, mask, w.text_dirs, w.prototypes)
    probe = recovery_probe(edited, w.train, w.test, mask)
    assert 0 <= probe["probe_forget"] <= 1
    assert torch.equal(w.model.visual.proj, torch.eye(512))  # the original is untouched


def before_after(w, mask, **kw) -> tuple[dict, dict]:
    """Scores on w's test split before and after unlearn(mask, **kw) with w's text directions and prototypes."""
    return (scores(w.model, w.test, w.classifier, mask),
            scores(unlearn(w.model, w.grid, mask, w.text_dirs, w.prototypes, **kw), w.test, w.classifier, mask))


PARADIGMS = {
    "global": lambda g: forget_classes(g, "dog"),
    "domain-specific": lambda g: forget_classes_in_domains(g, "dog", "sketch"),
    "complete-domain": lambda g: forget_domains(g, "sketch"),
}


@pytest.mark.parametrize("paradigm", ["domain-specific", "complete-domain"])
def test_additive_code_cannot_forget_one_cell_or_one_domain(additive, paradigm):
    w = additive
    mask = PARADIGMS[paradigm](w.grid)
    before, after = before_after(w, mask)
    assert after["forget"] >= before["forget"] - 0.05
    F, R = edit.directions(w.text_dirs, mask)
    Q = orth(R.double())
    residual = F.double() - Q @ (Q.T @ F.double())
    if paradigm == "domain-specific":  # the cell lies in the retained span
        assert forgettability(w.text_dirs, mask, rho=1.0) < 1e-6
    else:  # the domain can only be shifted as a block: its text residual has rank one
        assert torch.linalg.matrix_rank(residual, rtol=1e-6) == 1


@pytest.mark.parametrize("paradigm", list(PARADIGMS))
def test_independent_cells_let_every_paradigm_forget(independent, paradigm):
    """Issue 3's bars at high kappa. One is weaker than the issue asks, for the reason the chapter measures.

    A forgotten class (global) falls to chance. A single cell or a whole domain loses at least two thirds
    of its accuracy above chance, but not all of it (seed 0: 0.95 -> 0.25 and 0.93 -> 0.21; seeds 0-4 at
    400 test images per cell: 0.17-0.45 and 0.24-0.31 left, chance 0.14): 81 retained directions in
    d = 512 overlap any independent cell by ~k_r/d of its energy, that part is protected, and zero-shot
    still reads it. The soft closed form, which protects no span exactly, meets the full bars (below).
    """
    w = independent
    C = w.grid.shape[0]
    mask = PARADIGMS[paradigm](w.grid)
    before, after = before_after(w, mask)
    if paradigm == "global":
        assert after["forget"] <= 1 / C
    else:
        assert after["forget"] - 1 / C <= (before["forget"] - 1 / C) / 3
    if paradigm != "global":  # the same class in the other domains keeps >= 90% of its accuracy
        assert after["same_class_other_domains"] >= 0.9 * before["same_class_other_domains"]
    if paradigm != "complete-domain":  # every class has a forgotten cell there
        assert after["other_classes"] >= before["other_classes"] - 0.02


@pytest.fixture(scope="module")
def independent_many_images():
    return dial_world(kappa=HIGH_KAPPA, n_per_cell=400)  # 400 test images per cell: chance is told apart from 0.2


@pytest.mark.parametrize("paradigm", list(PARADIGMS))
def test_independent_cells_meet_issue_3s_bars_with_the_soft_closed_form(independent_many_images, paradigm):
    """At high kappa the soft closed form (default lam, mu) meets issue 3's bars in every paradigm.

    "At chance" is read with sampling error: the forgotten cells score at most 1/C plus two binomial
    standard errors of their n test images (seed 0: cell 0.165, domain 0.151, bars 0.178 and 0.156;
    seeds 0-4 average 0.138 and 0.150, chance 0.143).
    """
    w = independent_many_images
    C = w.grid.shape[0]
    mask = PARADIGMS[paradigm](w.grid)
    before, after = before_after(w, mask, method="soft")
    n = int(mask.sum()) * w.params["n_per_cell"]
    assert after["forget"] <= 1 / C + 2 * np.sqrt((1 / C) * (1 - 1 / C) / n)
    assert before["forget"] > 0.9  # there was something to forget
    if paradigm != "global":
        assert after["same_class_other_domains"] >= 0.9 * before["same_class_other_domains"]
    if paradigm != "complete-domain":
        assert after["other_classes"] >= before["other_classes"] - 0.02


def test_the_hard_floor_grows_with_the_number_of_protected_directions():
    """The hard edit's residual at high kappa comes from the protected span: more retained directions
    (8 prototypes per cell instead of 2: k_r 243 instead of 81) leave more of a single cell (seed 0:
    0.43 against 0.25)."""
    left = []
    for n_prototypes in (2, 8):
        w = dial_world(kappa=HIGH_KAPPA, n_prototypes=n_prototypes)
        mask = PARADIGMS["domain-specific"](w.grid)
        left.append(scores(unlearn(w.model, w.grid, mask, w.text_dirs, w.prototypes), w.test, w.classifier, mask)["forget"])
    assert left[1] > left[0] + 0.1
