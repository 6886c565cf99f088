"""The logit-constrained edit (the book's own extension): a generic numpy min-norm solve as oracle, then behaviour."""
import numpy as np
import pytest
import torch
import torch.nn.functional as Fn
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minclip_unlearn import evaluate, paradigms
from minclip_unlearn.edit import Hard, Logit, apply_projector, unlearn
from minclip_unlearn.logit_edit import logit_delta, logit_projector, targets
from minclip_unlearn.worlds.dial import dial_world


def random_case(seed: int, C: int = 3, M: int = 3, n: int = 1, d: int = 12):
    """Unit cell directions (C, M, n, d) and class embeddings (C, d), float64, seeded."""
    g = torch.Generator().manual_seed(seed)
    cells = Fn.normalize(torch.randn(C, M, n, d, generator=g, dtype=torch.float64), dim=-1)
    T = Fn.normalize(torch.randn(C, d, generator=g, dtype=torch.float64), dim=-1)
    return cells, T


def masks(C: int = 3, M: int = 3) -> dict[str, torch.Tensor]:
    """One mask of each paradigm (and a two-class, two-domain rectangle) on a C x M grid."""
    out = {name: torch.zeros(C, M, dtype=torch.bool) for name in ("cell", "global", "domain", "rectangle")}
    out["cell"][0, M - 1] = True
    out["global"][0] = True
    out["domain"][:, 1] = True
    out["rectangle"][:2, 1:] = True
    return out


def constraint_rows(cells, mask, T, gamma, outside="free"):
    """Every constraint <t r^T, Delta> = value, one (direction, class) pair per row, built the obvious way."""
    C, M, n, d = cells.shape
    rows, values, weights_kind = [], [], []
    for c in range(C):
        for m in range(M):
            for j in range(n):
                r = cells[c, m, j].numpy()
                if mask[c, m]:
                    target = float(targets(T, cells[c, m, j][:, None], torch.tensor([c]), gamma))
                    rows.append(np.outer(T[c].numpy(), r).ravel())
                    values.append(target - T[c].numpy() @ r)
                    weights_kind.append("forget")
                    continue
                for k in range(C):
                    if not mask[k, m]:  # k is held in domain m (c itself always is)
                        rows.append(np.outer(T[k].numpy(), r).ravel())
                        values.append(0.0)
                        weights_kind.append("held")
    if outside == "held":  # every class's logit on an orthonormal basis of what no retained direction spans
        R = cells[~mask].reshape(-1, d).numpy().T
        U, s, _ = np.linalg.svd(R, full_matrices=True)
        for w in U[:, int((s > 1e-10).sum()):].T:
            for k in range(C):
                rows.append(np.outer(T[k].numpy(), w).ravel())
                values.append(0.0)
                weights_kind.append("held")
    return np.array(rows), np.array(values), np.array(weights_kind)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), kind=st.sampled_from(["cell", "global", "domain", "rectangle"]),
       gamma=st.floats(0.0, 3.0), outside=st.sampled_from(["free", "held"]))
def test_matches_a_generic_min_norm_lstsq_and_meets_every_constraint(seed, kind, gamma, outside):
    assume(not (kind == "domain" and outside == "held"))  # every logit held everywhere: no edit exists (next test)
    cells, T = random_case(seed)
    mask = masks()[kind]
    A, v, _ = constraint_rows(cells, mask, T, gamma, outside)
    # logit_edit drops directions of its small Gram below 1e-6 of the largest eigenvalue (singular values below
    # 1e-3 of the largest): exactly dependent constraints are handled alike by both, but a nearly singular,
    # still full-rank system (seed 50 found one: a feasible edit of norm ~1000) is solved only by the oracle.
    s = np.linalg.svd(A, compute_uv=False)
    assume(not ((s > 1e-10 * s[0]) & (s < 1e-3 * s[0])).any())
    oracle = np.linalg.lstsq(A, v, rcond=None)[0].reshape(12, 12)  # min-norm solution over vec(Delta)
    D = logit_delta(cells, mask, T, gamma=gamma, outside=outside).numpy()
    np.testing.assert_allclose(D, oracle, atol=1e-9)
    np.testing.assert_allclose(A @ D.ravel(), v, atol=1e-9)  # the constraints hold


def test_held_logits_unchanged_and_forget_logits_at_target_after_the_edit():
    cells, T = random_case(7, C=4, M=3, n=2, d=40)
    mask = torch.zeros(4, 3, dtype=torch.bool)
    mask[1, 2] = True
    P = logit_projector(cells, mask, T, gamma=1.0)
    for c in range(4):
        for m in range(3):
            r = cells[c, m].T  # (d, n)
            if mask[c, m]:
                assert torch.allclose(T[c] @ P @ r, targets(T, r, torch.tensor([c, c]), 1.0), atol=1e-10)
            for k in range(4):
                if not mask[c, m] and not mask[k, m]:
                    assert torch.allclose(T[k] @ P @ r, T[k] @ r, atol=1e-10)


@pytest.mark.parametrize("case", ["span is R^d", "complete domain, outside held"])
def test_held_logits_win_when_the_forget_targets_are_infeasible(case):
    if case == "span is R^d":  # 16 retained directions span R^12: the forgotten class is held everywhere
        (cells, T), mask, outside = random_case(3, n=2), masks()["cell"], "free"
    else:  # every class held on the kept domains and on everything they do not span
        (cells, T), mask, outside = random_case(3), masks()["domain"], "held"
    D = logit_delta(cells, mask, T, gamma=1.0, outside=outside)
    assert torch.isfinite(D).all() and D.abs().max() < 1e-8  # nothing can move without breaking a held logit


@pytest.mark.parametrize("kind", ["cell", "global", "domain"])
def test_strength_zero_and_empty_mask_give_identity(kind):
    cells, T = random_case(1)
    assert torch.equal(logit_projector(cells, masks()[kind], T, alpha=0.0), torch.eye(12, dtype=torch.float64))
    assert torch.equal(logit_projector(cells, torch.zeros(3, 3, dtype=torch.bool), T), torch.eye(12, dtype=torch.float64))


def test_strength_scales_the_logit_change_linearly():
    cells, T = random_case(2)
    mask = masks()["cell"]
    f = cells[0, 2, 0]
    full = T[0] @ (logit_projector(cells, mask, T, alpha=1.0) @ f) - T[0] @ f
    half = T[0] @ (logit_projector(cells, mask, T, alpha=0.5) @ f) - T[0] @ f
    assert torch.allclose(half, full / 2, atol=1e-12) and full < 0


@pytest.mark.parametrize("kind", ["cell", "global", "domain", "rectangle"])
def test_finite_and_constraints_hold_on_rank_deficient_inputs(kind):
    cells, T = random_case(5, C=4, M=3, n=3, d=30)
    cells[:, :, 1] = cells[:, :, 0]  # repeated directions
    cells[:, :, 2] = 0.5 * cells[:, :, 0] + 0.5 * cells[:, :, 1]  # and a combination of them
    T[3] = T[2]  # two classes with one embedding
    mask = masks(4, 3)[kind]
    D = logit_delta(cells, mask, T, gamma=1.0)
    assert torch.isfinite(D).all()
    A, v, _ = constraint_rows(cells, mask, T, 1.0)
    np.testing.assert_allclose(A @ D.numpy().ravel(), v, atol=1e-8)
    oracle = np.linalg.lstsq(A, v, rcond=1e-10)[0]
    np.testing.assert_allclose(D.numpy().ravel(), oracle, atol=1e-8)


def soft_oracle(cells, mask, T, gamma, lam, mu):
    """argmin ||Delta||^2 + lam sum (forget residual)^2 + mu sum over held classes k of ||Pi_{W_k} Delta^T t_k||^2."""
    C, M, n, d = cells.shape
    rows, values, kinds = constraint_rows(cells, mask, T, gamma)
    F_rows, b = rows[kinds == "forget"], values[kinds == "forget"]
    H = []
    for k in range(C):  # an orthonormal basis of W_k: the retained directions of the domains where k is held
        Wk = cells[:, [m for m in range(M) if not mask[k, m]]]
        keep = ~mask[:, [m for m in range(M) if not mask[k, m]]]
        Wk = Wk[keep].reshape(-1, d).numpy().T
        if Wk.size:
            U, s, _ = np.linalg.svd(Wk, full_matrices=False)
            H += [np.outer(T[k].numpy(), w).ravel() for w in U[:, s > 1e-10].T]
    H = np.array(H)
    K = np.eye(d * d) + lam * F_rows.T @ F_rows + mu * H.T @ H
    return np.linalg.solve(K, lam * F_rows.T @ b).reshape(d, d)


@pytest.mark.parametrize("kind", ["cell", "global", "domain", "rectangle"])
def test_soft_version_is_the_weighted_penalty_minimiser(kind):
    cells, T = random_case(11, C=3, M=3, n=2, d=10)
    for lam, mu in ((3.0, 5.0), (50.0, 0.5)):
        D = logit_delta(cells, masks()[kind], T, gamma=0.7, lam=lam, mu=mu).numpy()
        np.testing.assert_allclose(D, soft_oracle(cells, masks()[kind], T, 0.7, lam, mu), atol=1e-9)


def test_soft_version_tends_to_the_hard_one():
    cells, T = random_case(4)
    mask = masks()["cell"]
    hard = logit_delta(cells, mask, T)
    errors = [float((logit_delta(cells, mask, T, lam=w, mu=w) - hard).abs().max()) for w in (1e1, 1e3, 1e5, 1e7)]
    assert all(b < a for a, b in zip(errors, errors[1:])) and errors[-1] < 1e-4


def test_a_mask_whose_held_domains_are_not_nested_is_refused_clearly():
    cells, T = random_case(0)
    mask = torch.zeros(3, 3, dtype=torch.bool)
    mask[0, 0] = mask[1, 1] = True  # class 0 held in {1, 2}, class 1 in {0, 2}
    with pytest.raises(ValueError, match="nested held domains"):
        logit_delta(cells, mask, T)


@pytest.mark.parametrize("bad, message", [({"alpha": 1.5}, "alpha"), ({"lam": 0.0}, "lam"),
                                          ({"outside": "everywhere"}, "valid: free, held")])
def test_bad_settings_raise_clearly(bad, message):
    cells, T = random_case(0)
    with pytest.raises(ValueError, match=message):
        logit_projector(cells, masks()["cell"], T, **bad)


def additive_code(C=7, M=4):
    """e(c, m) = a_c + b_m with orthonormal a's and b's (d = C + M), class embeddings t_c = a_c."""
    E = torch.eye(C + M, dtype=torch.float64)
    a, b = E[:C], E[C:]
    return (a[:, None, :] + b[None, :, :])[:, :, None, :] / 2 ** 0.5, a


def test_forgets_one_cell_of_an_additive_code_which_no_embedding_preserving_edit_can():
    cells, T = additive_code()
    mask = torch.zeros(7, 4, dtype=torch.bool)
    mask[3, 3] = True  # (star, sketch)
    P = logit_projector(cells, mask, T, gamma=1.0)
    pred = (cells[..., 0, :] @ P.T @ T.T).argmax(-1)  # (C, M) zero-shot prediction of each cell's image
    truth = torch.arange(7)[:, None].expand(7, 4)
    assert pred[3, 3] != 3
    assert torch.equal(pred[~mask], truth[~mask])
    moved = (cells[..., 0, :] @ P.T - cells[..., 0, :]).norm(dim=-1)  # only sketches move at all
    assert moved[:, :3].max() < 1e-12 and moved[:, 3].min() > 0.1


def test_scales_to_domainnet_size_global_forgetting_keeps_every_other_logit():
    C, M, d = 345, 6, 512
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(C, 1, d, generator=g), torch.randn(1, M, d, generator=g)
    cells = Fn.normalize(a + b + 0.3 * torch.randn(C, M, d, generator=g), dim=-1).double()[:, :, None]
    T = Fn.normalize(a[:, 0] + 0.1 * torch.randn(C, d, generator=g), dim=-1).double()
    mask = torch.zeros(C, M, dtype=torch.bool)
    mask[[3, 10]] = True
    D = logit_delta(cells, mask, T, gamma=1.0)  # 2,058 retained directions x 343 held classes, never built
    keep = torch.ones(C, dtype=torch.bool)
    keep[[3, 10]] = False
    assert (T[keep] @ D).abs().max() < 1e-9  # the retained span is all of R^d: kept classes' logits never move
    F = cells[mask][:, 0].T
    cls = torch.tensor([3] * M + [10] * M)
    got = (T[cls] * (F + D @ F).T).sum(1)
    assert torch.allclose(got, targets(T, F, cls, 1.0), atol=1e-9)


def test_complete_domain_on_an_additive_code_can_only_shift_every_sketch_alike():
    """The kept domains hold every class on a_c + b_m, so the edit can only act on b_sketch: one shift for all."""
    cells, T = additive_code()
    mask = torch.zeros(7, 4, dtype=torch.bool)
    mask[:, 3] = True
    P = logit_projector(cells, mask, T, gamma=1.0)
    shift = cells[:, 3, 0] @ (P - torch.eye(11, dtype=torch.float64)).T  # (C, d) change of each sketch image
    assert shift.norm(dim=-1).min() > 0.05
    assert torch.allclose(shift, shift[:1].expand_as(shift), atol=1e-12)  # the same vector for every class
    assert (cells[:, :3, 0] @ (P - torch.eye(11, dtype=torch.float64)).T).abs().max() < 1e-12


# Behaviour on the dial world at kappa = 0 (an additive code, a modality gap, noisy images), pinned here.
# The bars of issue 13 for (class, sketch) are met for some classes only (see the chapter "The logit edit"):
# they are not asserted; what is guaranteed, and what the global bar asks, is.

@pytest.fixture(scope="module")
def dial0():
    return dial_world(classes=7, domains=4, kappa=0.0, d=128, noise=1.0, proto_noise=0.5, private=0.5, gap=1.0,
                      n_per_cell=40, n_prototypes=2, seed=0)


def test_dial_world_holding_outside_the_span_moves_only_the_forgotten_logit_of_any_image(dial0):
    w = dial0
    mask = paradigms.forget_classes_in_domains(w.grid, w.grid.classes[2], "sketch")
    edited = unlearn(w.model, w.grid, mask, w.text_dirs, w.prototypes, classifier=w.classifier,
                     settings=Logit(gamma=1.0, outside="held"))
    before = w.test.features @ w.model.visual.proj.detach() @ w.classifier.T  # unnormalised logits
    after = w.test.features @ edited.visual.proj.detach() @ w.classifier.T
    others = torch.arange(7) != 2
    assert torch.allclose(after[:, others], before[:, others], atol=1e-4)
    sketch_of_c = (w.test.labels == 2) & (w.test.domains == 3)
    assert (after[sketch_of_c, 2] < before[sketch_of_c, 2]).float().mean() > 0.9


def test_dial_world_kappa0_global_no_worse_than_the_hard_projector(dial0):
    w = dial0
    mask = paradigms.forget_classes(w.grid, w.grid.classes[3])
    hard = unlearn(w.model, w.grid, mask, w.text_dirs, w.prototypes, settings=Hard(rho=0.99))
    logit = unlearn(w.model, w.grid, mask, w.text_dirs, w.prototypes, classifier=w.classifier, settings=Logit())
    s_h, s_l = (evaluate.scores(m, w.test, w.classifier, mask) for m in (hard, logit))
    assert s_l["forget"] <= s_h["forget"] and s_l["retain"] >= s_h["retain"] - 0.005


# Behaviour on the toy CLIP (ToyWorld, the shipped checkpoint).

@pytest.fixture(scope="module")
def toy_lab():
    from minclip_unlearn.lab import open_lab

    lab = open_lab("toyworld")
    return lab, lab.prototypes(progress=False)


def test_toy_global_forgetting_no_worse_than_the_books_hard_projector_for_every_class(toy_lab):
    """Retain within half a point, as on the dial world (heart, rho 0.9: 0.9817 against 0.9833, one image of 600)."""
    lab, protos = toy_lab
    worse = []
    for name in lab.grid.classes:
        mask = paradigms.forget_classes(lab.grid, name)
        rho = lab.choose_rho(mask, protos)  # the book's rule for the hard projector
        hard = lab.scores(unlearn(lab.model, lab.grid, mask, lab.text_dirs, protos, rho=rho), mask)
        logit = lab.scores(unlearn(lab.model, lab.grid, mask, lab.text_dirs, protos, classifier=lab.classifier,
                                   settings=Logit()), mask)
        if logit["forget"] > hard["forget"] or logit["retain"] < hard["retain"] - 0.005:  # as on the dial world
            worse.append((name, rho, hard, logit))
    assert not worse, worse
