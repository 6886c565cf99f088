"""geometry.py against numpy oracles: interaction shares, forgettability, the data-free choice of rho."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minclip_unlearn import edit, geometry
from minclip_unlearn.geometry import (LOW_FORGETTABILITY, auto_rho, class_evidence_kept, forgettability,
                                      forgettability_map, interaction_share, low_forgettability_message)
from minclip_unlearn.nullspace import orth

seeds = st.integers(0, 2**32 - 1)


def additive_grid(rng, C=5, M=3, d=40, n=0):
    """(C, M, d) text cells a_c + b_m + mu and, if n, (C, M, n, d) prototypes that are additive too."""
    a, b, mu = 2 * rng.standard_normal((C, 1, d)), rng.standard_normal((1, M, d)), rng.standard_normal(d)
    T = torch.from_numpy(mu + a + b)
    if not n:
        return T, None
    pa, pb = rng.standard_normal((C, 1, n, d)), rng.standard_normal((1, M, n, d))
    return T, T.unsqueeze(2) + 0.3 * torch.from_numpy(pa + pb)


def one_cell(C, M, c=0, m=0):
    mask = torch.zeros(C, M, dtype=torch.bool)
    mask[c, m] = True
    return mask


def numpy_shares(X: np.ndarray) -> dict:
    """Oracle: least-squares fit of cell ~ class + domain dummies; interaction = residual sum of squares."""
    C, M, d = X.shape
    Y = X.reshape(C * M, d)
    rows = np.arange(C * M)
    Dc = np.zeros((C * M, C)); Dc[rows, rows // M] = 1
    Dm = np.zeros((C * M, M)); Dm[rows, rows % M] = 1
    one = np.ones((C * M, 1))

    def rss(D):
        return float(((Y - D @ np.linalg.lstsq(D, Y, rcond=None)[0]) ** 2).sum())

    total, r_c, r_m, r_cm = rss(one), rss(np.hstack([one, Dc])), rss(np.hstack([one, Dm])), rss(np.hstack([Dc, Dm]))
    return {"class": (total - r_c) / total, "domain": (total - r_m) / total, "interaction": r_cm / total}


@settings(max_examples=40, deadline=None)
@given(seeds, st.integers(2, 6), st.integers(2, 5), st.integers(1, 12))
def test_shares_match_a_least_squares_oracle_and_sum_to_one(seed, C, M, d):
    X = np.random.default_rng(seed).standard_normal((C, M, d))
    got, want = interaction_share(X), numpy_shares(X)
    assert sum(got.values()) == pytest.approx(1.0, abs=1e-12)
    for k in want:
        assert got[k] == pytest.approx(want[k], abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(seeds, st.floats(1e-3, 1e3))
def test_shares_are_invariant_to_scale_and_accept_tensors(seed, scale):
    X = np.random.default_rng(seed).standard_normal((4, 3, 7))
    a, b = interaction_share(X), interaction_share(torch.from_numpy(scale * X))
    assert all(a[k] == pytest.approx(b[k], rel=1e-9) for k in a)


def test_additive_grid_has_no_interaction_and_nothing_to_forget_in_one_cell_or_one_domain():
    T, protos = additive_grid(np.random.default_rng(0), n=2)
    assert interaction_share(T)["interaction"] < 1e-20
    for P in (None, protos):
        fmap = forgettability_map(T, P, rho=1.0)
        assert fmap.max() < 1e-6
        # the hard edit leaves the one cell's class evidence exactly where it was
        assert class_evidence_kept(T, one_cell(5, 3, 2, 1), P, rho=1.0) == pytest.approx(1.0, abs=1e-6)
    # a whole domain: what lies outside the retain span is its domain effect b_m alone (rank 1), and the
    # differences between its cells (the class evidence a_c - a_c') are inside it, so the edit keeps them
    domain = torch.zeros(5, 3, dtype=torch.bool)
    domain[:, 1] = True
    F, R = edit.directions(T, domain)
    Q = orth(R)
    residual = F - Q @ (Q.T @ F)
    assert torch.linalg.matrix_rank(residual, rtol=1e-8) == 1
    Pm = edit.projector(F, R, rho=1.0)
    diffs = F[:, 1:] - F[:, :1]
    assert torch.allclose(Pm @ diffs, diffs, atol=1e-9)


def test_independent_cells_are_forgettable():
    rng = np.random.default_rng(1)
    T = torch.from_numpy(rng.standard_normal((5, 3, 200)))
    assert interaction_share(T)["interaction"] > 0.45  # (1 - 1/C)(1 - 1/M) = 0.53 in expectation
    assert forgettability_map(T, rho=1.0).min() > 0.9
    assert class_evidence_kept(T, one_cell(5, 3), rho=1.0) < 0.5  # what is left is renormalised by the cosine


@settings(max_examples=30, deadline=None)
@given(seeds, st.integers(0, 2), st.booleans())
def test_forgettability_matches_a_lstsq_oracle(seed, n, scaled):
    rng = np.random.default_rng(seed)
    C, M, d = 3, 3, 30
    T = torch.from_numpy(rng.standard_normal((C, M, d)))
    P = torch.from_numpy(rng.standard_normal((C, M, n, d))) if n else None
    mask = torch.from_numpy(rng.random((C, M)) < 0.4)
    mask[0, 0], mask[2, 2] = True, False
    F, R = (A.numpy() for A in edit.directions(T, mask, P))
    want = np.linalg.norm(F - R @ np.linalg.lstsq(R, F, rcond=None)[0]) / np.linalg.norm(F)
    s = 7.5 if scaled else 1.0
    got = forgettability(s * T, mask, None if P is None else s * P, rho=1.0)
    assert got == pytest.approx(want, abs=1e-8)


def test_forgettability_uses_the_edits_truncated_retain_span():
    rng = np.random.default_rng(2)
    T = torch.from_numpy(rng.standard_normal((4, 3, 16)))
    mask = one_cell(4, 3)
    F, R = edit.directions(T, mask)
    Q = orth(R, energy=0.8)
    want = float(((F - Q @ (Q.T @ F)).norm() / F.norm()))
    assert forgettability(T, mask, rho=0.8) == pytest.approx(want, rel=1e-12)
    # what the hard projector removes is exactly that residual: ||P F||^2 = ||F||^2 - ||F_res||^2
    Pm = edit.projector(F, R, rho=0.8)
    assert 1 - edit.kept(Pm, F) ** 2 == pytest.approx(want**2, abs=1e-9)


def test_forgettability_map_is_each_cell_alone():
    rng = np.random.default_rng(3)
    T = torch.from_numpy(rng.standard_normal((3, 2, 8)))
    fmap = forgettability_map(T, rho=0.9)
    assert fmap.shape == (3, 2)
    assert fmap[1, 1] == pytest.approx(forgettability(T, one_cell(3, 2, 1, 1), rho=0.9))


def test_auto_rho_is_the_largest_rho_that_meets_the_rule():
    rng = np.random.default_rng(4)
    C, M, d = 4, 3, 24
    T = torch.from_numpy(rng.standard_normal((C, M, d))) + 2.0  # a shared mean: forgettability grows as rho falls
    protos = T.unsqueeze(2) + 0.5 * torch.from_numpy(rng.standard_normal((C, M, 2, d)))
    mask = one_cell(C, M)
    rhos = (0.99, 0.95, 0.9, 0.8, 0.7, 0.5)
    fg = {r: forgettability(T, mask, protos, rho=r) for r in rhos}
    for target in (0.2, 0.5, 0.8, 1.01):
        reached = [r for r in rhos if fg[r] >= target]
        want = max(reached) if reached else geometry.DEFAULT_RHO
        assert auto_rho(T, mask, protos, target=target, rhos=rhos, measure="forgettability") == want
    removed = {r: 1 - class_evidence_kept(T, mask, protos, rho=r) for r in rhos}
    kept = {r: min(class_evidence_kept(T, mask, protos, rho=r, cells=c) for c in ("retain", "same_class"))
            for r in rhos}
    picked = set()
    for target, keep in ((0.3, 0.9), (0.5, 0.85), (1.0, 0.2), (0.9, 0.5)):
        ok = [r for r in rhos if removed[r] >= target and kept[r] >= keep]
        want = max(ok) if ok else geometry.DEFAULT_RHO
        assert auto_rho(T, mask, protos, target=target, keep=keep, rhos=rhos) == want
        picked.add(want)
    assert len(picked) >= 3  # the cases reach different rhos, the fallback among them
    with pytest.raises(ValueError, match="valid: forgettability, evidence"):
        auto_rho(T, mask, measure="norm")


def test_retained_evidence_is_kept_when_nothing_is_removed():
    T, protos = additive_grid(np.random.default_rng(5), n=2)
    mask = one_cell(5, 3)
    assert class_evidence_kept(T, mask, protos, rho=1.0, cells="retain") == pytest.approx(1.0, abs=1e-9)
    assert class_evidence_kept(T, mask, protos, rho=1.0, cells="same_class") == pytest.approx(1.0, abs=1e-9)
    everywhere = torch.zeros(5, 3, dtype=torch.bool)
    everywhere[0] = True  # a global mask leaves no retained cell of its class
    assert np.isnan(class_evidence_kept(T, everywhere, protos, cells="same_class"))
    with pytest.raises(ValueError, match="valid: forget, retain, same_class"):
        class_evidence_kept(T, mask, cells="all")


def test_low_forgettability_message_says_why_and_where():
    msg = low_forgettability_message(0.04)
    assert "4%" in msg and "What a linear edit can forget" in msg and "\n" not in msg
    assert 0 < LOW_FORGETTABILITY < 1 and geometry.CHAPTER in msg


def test_bad_grids_raise_clear_errors():
    with pytest.raises(ValueError, match=r"\(C, M, d\)"):
        interaction_share(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="no variance"):
        interaction_share(np.ones((3, 4, 2)))


def dense_evidence_kept(T, mask, protos, rho):
    """Oracle for class_evidence_kept(cells="forget"): the dense P = I - U U^T from a numpy lstsq residual
    and SVD (rho = 1), applied as V P^T, margins in numpy."""
    F, R = (A.double().numpy() for A in edit.directions(T, mask, protos))
    resid = F - R @ np.linalg.lstsq(R, F, rcond=None)[0]
    U, s, _ = np.linalg.svd(resid, full_matrices=False)
    U = U[:, s > 1e-6 * np.linalg.norm(F, 2)]
    P = np.eye(F.shape[0]) - U @ U.T
    Tn = T.double().numpy() / np.linalg.norm(T.double().numpy(), axis=-1, keepdims=True)
    cls = Tn.mean(axis=1)
    cls /= np.linalg.norm(cls, axis=-1, keepdims=True)
    V = protos.double().numpy()[mask.numpy()]  # (k, n, d)
    labels = np.repeat(np.nonzero(mask.numpy())[0], V.shape[1])

    def margin(X):
        cos = (X / np.linalg.norm(X, axis=-1, keepdims=True)) @ cls.T
        own = cos[np.arange(len(X)), labels]
        cos[np.arange(len(X)), labels] = -np.inf
        return (own - cos.max(axis=1)).mean()

    X = V.reshape(-1, V.shape[-1])
    return margin(X @ P.T) / margin(X) if margin(X) > 0 else np.nan  # no evidence before: NaN, as documented


@settings(max_examples=20, deadline=None)
@given(seed=seeds)
def test_class_evidence_kept_matches_a_dense_numpy_oracle(seed):
    rng = np.random.default_rng(seed)
    T = torch.from_numpy(rng.standard_normal((4, 3, 48)))  # k_r = 33 < d: the edit removes something
    protos = T.unsqueeze(2) + torch.from_numpy(rng.standard_normal((4, 3, 2, 48)))
    mask = one_cell(4, 3, int(rng.integers(4)), int(rng.integers(3)))
    want, got = dense_evidence_kept(T, mask, protos, rho=1.0), class_evidence_kept(T, mask, protos, rho=1.0)
    assert np.isnan(got) if np.isnan(want) else got == pytest.approx(want, rel=1e-6, abs=1e-9)


@settings(max_examples=15, deadline=None)
@given(seed=seeds, n=st.integers(0, 3), k_r_over_d=st.booleans())
def test_auto_rho_from_the_retain_gram_chooses_the_same_rho(seed, n, k_r_over_d):
    from minclip_unlearn.nullspace import gram

    rng = np.random.default_rng(seed)
    C, M, d = 5, 4, 8 if k_r_over_d else 40  # k_r > d: orth(R) itself goes through the Gram; k_r < d: an SVD
    T = torch.from_numpy(rng.standard_normal((C, M, d))) + 1.5
    protos = T.unsqueeze(2) + 0.5 * torch.from_numpy(rng.standard_normal((C, M, n, d))) if n else None
    mask = torch.from_numpy(rng.random((C, M)) < 0.3)
    mask[0, 0], mask[-1, -1] = True, False
    _, R = edit.directions(T, mask, protos)
    for target, keep in ((1.0, 0.9), (0.5, 0.5), (0.8, 0.2)):
        assert auto_rho(T, mask, protos, target=target, keep=keep, retain_gram=gram(R)) == \
            auto_rho(T, mask, protos, target=target, keep=keep)
