"""Property tests of the projectors (METHOD.md §4a, §4b), with numpy and brute-force oracles."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minclip_unlearn.nullspace import (gram, hard_projector, kept_fraction, orth, orth_gram, projector_from_basis,
                                      removed_basis, retain_gram, soft_projector)

alphas = st.floats(0.0, 1.0)


@st.composite
def problems(draw, max_d: int = 24):
    """Random (F (d, k_f), R (d, k_r)) in float64 with k_f + k_r < d, so forget is not inside the retain span."""
    d = draw(st.integers(3, max_d))
    k_f = draw(st.integers(1, max(1, min(4, d - 2))))
    k_r = draw(st.integers(0, d - k_f - 1))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    F = torch.from_numpy(rng.standard_normal((d, k_f)))
    R = torch.from_numpy(rng.standard_normal((d, k_r)))
    return F, R


def numpy_hard_projector(F: np.ndarray, R: np.ndarray, alpha: float) -> np.ndarray:
    """Independent oracle: remove the retain span by least squares, then project out the residual's span."""
    if R.shape[1]:
        F = F - R @ np.linalg.lstsq(R, F, rcond=None)[0]
    U, s, _ = np.linalg.svd(F, full_matrices=False)
    U = U[:, s > 1e-6 * s.max()]
    return np.eye(F.shape[0]) - alpha * U @ U.T


@settings(max_examples=60, deadline=None)
@given(problems())
def test_P1_is_symmetric_and_idempotent(FR):
    F, R = FR
    P = hard_projector(F, R, alpha=1.0, rho=1.0)
    assert torch.allclose(P, P.T, atol=1e-10)
    assert torch.allclose(P @ P, P, atol=1e-10)


@settings(max_examples=60, deadline=None)
@given(problems(), alphas)
def test_retain_span_is_preserved_for_every_alpha(FR, alpha):
    F, R = FR
    P = hard_projector(F, R, alpha=alpha, rho=1.0)
    assert torch.allclose(P @ R, R, atol=1e-9)
    Q_R = orth(R, energy=0.9) if R.shape[1] else R  # the truncated basis is what rho protects
    assert torch.allclose(hard_projector(F, R, alpha=alpha, rho=0.9) @ Q_R, Q_R, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(problems())
def test_forget_residual_is_annihilated_at_alpha_one(FR):
    F, R = FR
    Q_R = orth(R) if R.shape[1] else R
    F_res = F - Q_R @ (Q_R.T @ F)
    P = hard_projector(F, R, alpha=1.0, rho=1.0)
    assert (P @ F_res).abs().max() < 1e-9 * max(1.0, F_res.abs().max().item())


@settings(max_examples=30, deadline=None)
@given(problems())
def test_alpha_zero_is_identity(FR):
    F, R = FR
    assert torch.equal(hard_projector(F, R, alpha=0.0), torch.eye(F.shape[0], dtype=F.dtype))


@settings(max_examples=60, deadline=None)
@given(problems())
def test_rank_removed_is_at_most_k_f(FR):
    F, R = FR
    P = hard_projector(F, R, alpha=1.0)
    eye = torch.eye(F.shape[0], dtype=F.dtype)
    assert torch.linalg.matrix_rank(eye - P) <= F.shape[1]


@settings(max_examples=40, deadline=None)
@given(problems(), alphas)
def test_torch_matches_numpy_oracle(FR, alpha):
    F, R = FR
    P = hard_projector(F, R, alpha=alpha, rho=1.0).numpy()
    np.testing.assert_allclose(P, numpy_hard_projector(F.numpy(), R.numpy(), alpha), atol=1e-8)


def test_float32_input_gives_float32_projector():
    F, R = torch.randn(16, 2), torch.randn(16, 5)
    assert hard_projector(F, R).dtype == torch.float32 and soft_projector(F, R).dtype == torch.float32


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_soft_closed_form_matches_gradient_descent(seed):
    """The closed form is the minimiser: plain gradient descent on the objective lands on it."""
    g = torch.Generator().manual_seed(seed)
    d, lam, mu = 8, 3.0, 2.0
    F = torch.nn.functional.normalize(torch.randn(d, 2, generator=g, dtype=torch.float64), dim=0)
    R = torch.nn.functional.normalize(torch.randn(d, 3, generator=g, dtype=torch.float64), dim=0)
    eye = torch.eye(d, dtype=torch.float64)
    P = eye.clone()
    step = 1.0 / (2 * (1 + lam * torch.linalg.matrix_norm(F, 2) ** 2 + mu * torch.linalg.matrix_norm(R, 2) ** 2))
    for _ in range(20000):
        grad = 2 * (P - eye) + 2 * lam * P @ F @ F.T + 2 * mu * (P @ R - R) @ R.T
        P = P - step * grad
    assert torch.allclose(P, soft_projector(F, R, lam=lam, mu=mu), atol=1e-8)


@pytest.mark.parametrize("seed", [0, 1])
def test_soft_tends_to_hard_as_lambda_grows(seed):
    g = torch.Generator().manual_seed(seed)
    F = torch.randn(12, 3, generator=g, dtype=torch.float64)
    U = orth(F)
    hard = torch.eye(12, dtype=torch.float64) - U @ U.T
    errors = [(soft_projector(F, None, lam=lam, mu=0.0) - hard).abs().max().item() for lam in (1e0, 1e2, 1e4, 1e8)]
    assert errors == sorted(errors, reverse=True)
    assert errors[-1] < 1e-6


def test_overcomplete_retain_set_is_handled_through_rho():
    """k_r > d: the full retain span is all of R^d (nothing can be forgotten); rho < 1 leaves room."""
    g = torch.Generator().manual_seed(0)
    d = 32
    R = torch.randn(d, 8, generator=g) @ torch.randn(8, 200, generator=g) + 0.05 * torch.randn(d, 200, generator=g)
    F = torch.randn(d, 2, generator=g)
    eye = torch.eye(d)
    P_full = hard_projector(F, R, rho=1.0)
    P_rho = hard_projector(F, R, rho=0.95)
    for P in (P_full, P_rho, soft_projector(F, R, lam=100.0, mu=10.0)):
        assert torch.isfinite(P).all()
    assert torch.allclose(P_full, eye, atol=1e-5)  # the retain span swallowed everything
    assert torch.linalg.matrix_rank(eye - P_rho) == 2  # rho keeps only the dominant retain directions
    assert (P_rho @ F).norm() < 0.9 * F.norm()


def test_orth_energy_keeps_the_fewest_leading_directions():
    A = torch.diag(torch.tensor([10.0, 3.0, 1.0, 0.1])).double()
    assert orth(A).shape[1] == 4
    assert orth(A, energy=0.9).shape[1] == 1  # 100 / 110.01 > 0.9
    assert orth(A, energy=0.99).shape[1] == 2
    assert orth(torch.zeros(5, 3)).shape == (5, 0)


@st.composite
def gram_problems(draw, max_d: int = 20):
    """(F (d, k_f), R (d, k_r), rho): R may exceed d columns, F may lie partly in R's span."""
    d = draw(st.integers(3, max_d))
    k_f = draw(st.integers(1, min(4, d - 1)))
    k_r = draw(st.integers(0, 2 * d))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    R = torch.from_numpy(rng.standard_normal((d, k_r)))
    F = torch.from_numpy(rng.standard_normal((d, k_f)))
    if k_r and draw(st.booleans()):  # forget directions mostly inside the retain span
        F = R @ torch.from_numpy(rng.standard_normal((k_r, k_f))) / k_r**0.5 + 0.1 * F
    rho = draw(st.sampled_from([1.0, 0.99, 0.9, 0.6]))
    return F, R, rho


def same_span(U: torch.Tensor, V: torch.Tensor) -> bool:
    """Two orthonormal bases span the same subspace (their projectors agree)."""
    return U.shape == V.shape and torch.allclose(U @ U.T, V @ V.T, atol=1e-8)


@settings(max_examples=80, deadline=None)
@given(gram_problems(), alphas)
def test_gram_path_matches_the_direct_projector(FRr, alpha):
    F, R, rho = FRr
    direct = hard_projector(F, R, alpha=alpha, rho=rho)
    via_gram = hard_projector(F, alpha=alpha, rho=rho, retain_gram=gram(R))
    assert torch.allclose(via_gram, direct, atol=1e-8)
    assert torch.allclose(hard_projector(F, R, alpha, rho), direct, atol=0)  # positional call unchanged


@settings(max_examples=80, deadline=None)
@given(gram_problems())
def test_retain_gram_from_all_cells_matches_the_direct_gram(FRr):
    F, R, rho = FRr
    rng = np.random.default_rng(F.shape[0])
    cols = torch.cat([F, R], dim=1)[:, torch.from_numpy(rng.permutation(F.shape[1] + R.shape[1]))]
    G_all = gram(cols)  # computed once for every cell, in any order
    G_R = retain_gram(G_all, F, R)
    scale = max(1.0, float(torch.linalg.matrix_norm(G_all)))
    assert torch.allclose(G_R, gram(R), atol=1e-12 * scale) and torch.equal(G_R, G_R.T)
    U = removed_basis(F, rho=rho, retain_gram=G_R)
    assert same_span(U, removed_basis(F, R, rho=rho))


@settings(max_examples=60, deadline=None)
@given(gram_problems(), alphas)
def test_kept_fraction_from_the_basis_matches_the_dense_product(FRr, alpha):
    F, R, rho = FRr
    U = removed_basis(F, R, rho=rho)
    P = projector_from_basis(U, alpha)
    assert torch.allclose(U.T @ U, torch.eye(U.shape[1], dtype=U.dtype), atol=1e-10)
    for A in (F, R) if R.shape[1] else (F,):
        dense = float((P @ A).norm() / A.norm())
        assert abs(kept_fraction(U, alpha, A=A) - dense) < 1e-10
        assert abs(kept_fraction(U, alpha, gram=gram(A)) - dense) < 1e-6  # sqrt of a difference: 1e-12 -> 1e-6


@settings(max_examples=40, deadline=None)
@given(gram_problems())
def test_orth_gram_spans_what_orth_spans(FRr):
    _, R, rho = FRr
    if R.shape[1]:
        assert same_span(orth_gram(gram(R), energy=rho), orth(R, energy=rho))


@settings(max_examples=40, deadline=None)
@given(gram_problems(), st.floats(0.0, 1e3), st.floats(0.0, 1e2))
def test_soft_projector_from_the_retain_gram_matches_the_direct_form(FRr, lam, mu):
    F, R, _ = FRr
    direct = soft_projector(F, R, lam=lam, mu=mu)
    assert torch.allclose(soft_projector(F, lam=lam, mu=mu, retain_gram=gram(R)), direct, atol=1e-9)


def test_retain_gram_falls_back_when_the_forget_part_dominates():
    """G - F F^T with ||F||^2 >> ||R||^2 cancels digits: with R it computes R R^T directly, without R it says so."""
    g = torch.Generator().manual_seed(0)
    F, R = 1e4 * torch.randn(16, 3, generator=g, dtype=torch.float64), torch.randn(16, 5, generator=g, dtype=torch.float64)
    G_all = gram(torch.cat([F, R], dim=1))
    assert torch.equal(retain_gram(G_all, F, R), gram(R))
    with pytest.raises(ValueError, match="pass R"):
        retain_gram(G_all, F)
    U = removed_basis(F, rho=1.0, retain_gram=retain_gram(G_all, F, R))
    assert same_span(U, removed_basis(F, R, rho=1.0))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: hard_projector(torch.randn(8, 2), alpha=1.5), "alpha"),
        (lambda: hard_projector(torch.randn(8, 2), alpha=-0.1), "alpha"),
        (lambda: hard_projector(torch.randn(8), None), "(d, k)"),
        (lambda: hard_projector(torch.randn(8, 2), torch.randn(9, 3)), "rows"),
        (lambda: soft_projector(torch.randn(8, 2), torch.randn(9, 3)), "rows"),
        (lambda: soft_projector(torch.randn(8, 2), lam=-1.0), "lam"),
        (lambda: orth(torch.randn(8, 2), energy=0.0), "energy"),
        (lambda: hard_projector(torch.full((8, 2), float("nan"))), "NaN"),
        (lambda: hard_projector(torch.randn(8, 2), retain_gram=torch.randn(9, 9)), "dimension"),
        (lambda: hard_projector(torch.randn(8, 2), retain_gram=torch.randn(8, 3)), "square"),
        (lambda: retain_gram(torch.eye(8), torch.randn(9, 2)), "is (8, 8) but the embedding dimension is 9"),
        (lambda: projector_from_basis(torch.zeros(8, 0), alpha=2.0), "alpha"),
        (lambda: kept_fraction(torch.zeros(8, 0)), "Gram"),
    ],
)
def test_bad_input_gives_one_clear_error(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()
