"""Sinkhorn-Knopp (method 2.1): marginals, epsilon -> 0 limit, invariances, stability."""
import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from models.sinkhorn import sinkhorn


def scores(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_rows_sum_to_one_and_marginals_hold():
    L = scores(3, 40, 8)
    T = sinkhorn(L, eps=0.5, iters=200)
    plan = T / L.shape[-2]
    torch.testing.assert_close(T.sum(-1), torch.ones(3, 40, dtype=L.dtype), rtol=0, atol=1e-12)
    torch.testing.assert_close(plan.sum(-1), torch.full((3, 40), 1 / 40, dtype=L.dtype), rtol=0, atol=1e-4)
    torch.testing.assert_close(plan.sum(-2), torch.full((3, 8), 1 / 8, dtype=L.dtype), rtol=0, atol=1e-4)


def test_plan_has_the_gibbs_form():
    """T = n diag(u) exp(L / eps) diag(v): log T - L / eps is a sum of a row and a column term."""
    L = scores(12, 5)
    r = torch.log(sinkhorn(L, eps=0.3, iters=50)) - L / 0.3
    torch.testing.assert_close(r - r[:, :1] - r[:1, :] + r[0, 0], torch.zeros_like(r), rtol=0, atol=1e-9)


def test_batched_over_leading_dims_matches_single_problems():
    L = scores(2, 3, 10, 4)
    T = sinkhorn(L, eps=0.1, iters=20)
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(T[i, j], sinkhorn(L[i, j], eps=0.1, iters=20), rtol=0, atol=1e-12)


def test_small_eps_approaches_the_exact_assignment():
    L = scores(6, 6, seed=3)
    rows, cols = linear_sum_assignment(L.numpy(), maximize=True)
    exact = np.zeros((6, 6))
    exact[rows, cols] = 1
    errors = [np.abs(sinkhorn(L, eps, iters=6000).numpy() - exact).max() for eps in (0.1, 0.01, 0.001)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-3


@pytest.mark.parametrize('shift', ['scalar', 'column'])
def test_invariant_to_adding_a_constant(shift):
    L = scores(4, 16, 6)
    c = {'scalar': torch.tensor(7.5, dtype=L.dtype), 'column': scores(4, 1, 6, seed=2) * 10}[shift]
    torch.testing.assert_close(sinkhorn(L + c, eps=0.05, iters=30), sinkhorn(L, eps=0.05, iters=30),
                               rtol=0, atol=1e-9)


def test_invariant_to_per_row_constants_once_converged():
    L = scores(4, 16, 6)
    c = scores(4, 16, 1, seed=1) * 10
    torch.testing.assert_close(sinkhorn(L + c, eps=0.5, iters=200), sinkhorn(L, eps=0.5, iters=200),
                               rtol=0, atol=1e-9)


def test_no_nan_for_large_scores_over_eps():
    L = scores(2, 64, 16, dtype=torch.float32) * 1e4
    T = sinkhorn(L, eps=1e-3, iters=10)
    assert torch.isfinite(T).all()
    torch.testing.assert_close(T.sum(-1), torch.ones(2, 64), rtol=0, atol=1e-5)


def test_half_precision_input_is_promoted_and_no_gradient():
    L = scores(8, 4, dtype=torch.float32).requires_grad_()
    T = sinkhorn(L.bfloat16(), eps=0.05, iters=3)
    assert T.dtype == torch.float32 and not T.requires_grad


def test_tolerance_stops_early_at_the_converged_plan():
    L = scores(30, 5)
    torch.testing.assert_close(sinkhorn(L, eps=0.2, iters=2000, tol=1e-12), sinkhorn(L, eps=0.2, iters=500),
                               rtol=0, atol=1e-9)


def released_rule_reference(L, eps, tol, max_iter):
    """The released stopping rule written out from its description (method 2.6, issue 9) with a
    host-side break: potentials u (..., n), v (..., k) in score units from 0; per iteration a row
    update then a column update of the plan exp((L + u + v) / eps) towards marginals 1/n, 1/k;
    stop once the mean over the batch of sum |du| + sum |dv| is below ``tol``; the plan
    normalised per column. Returns (plan, iterations run)."""
    n, k = L.shape[-2:]
    u, v = torch.zeros(L.shape[:-1], dtype=L.dtype), torch.zeros(L.shape[:-2] + (k,), dtype=L.dtype)
    for it in range(1, max_iter + 1):
        u0, v0 = u, v
        u = eps * (np.log(1 / n) - torch.logsumexp((L + v.unsqueeze(-2)) / eps, dim=-1))
        v = eps * (np.log(1 / k) - torch.logsumexp((L + u.unsqueeze(-1)) / eps, dim=-2))
        if ((u - u0).abs().sum(-1) + (v - v0).abs().sum(-1)).mean().item() < tol:
            break
    plan = torch.exp((L + u.unsqueeze(-1) + v.unsqueeze(-2)) / eps)
    return plan / plan.sum(dim=-2, keepdim=True), it


@pytest.mark.parametrize('tol', [1e-2, 1e-4])
def test_released_stopping_rule_matches_a_host_side_loop(tol):
    x = scores(4, 64, 3)
    L = -torch.cdist(x / x.norm(dim=-1, keepdim=True), scores(4, 16, 3, seed=1) * 0.3) / 0.5
    expected, ran = released_rule_reference(L, 0.1, tol, 100)
    assert 1 < ran < 100  # the rule stopped the loop early (32 and 65 pairs), so the masking is exercised
    got = sinkhorn(L, eps=0.1, iters=100, tol=tol, normalise='columns')
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)
    assert (got - sinkhorn(L, eps=0.1, iters=100, normalise='columns')).abs().max() > 1e-6  # it did stop
    assert (got - sinkhorn(L, eps=0.1, iters=ran - 1, normalise='columns')).abs().max() > 1e-9  # not too early


def test_three_iterations_match_swav_normalisation():
    """iters=3: (cluster, item) normalisations three times, SwAV's batch Sinkhorn."""
    L = scores(16, 8)
    Q = torch.exp(L / 0.05).t()
    Q = Q / Q.sum()
    for _ in range(3):
        Q = Q / Q.sum(dim=1, keepdim=True) / 8
        Q = Q / Q.sum(dim=0, keepdim=True) / 16
    torch.testing.assert_close(sinkhorn(L, eps=0.05, iters=3), (Q * 16).t(), rtol=1e-9, atol=1e-12)


def old_formulation(scores, eps, iters, tol=None, normalise='rows'):
    """The solver as first written, in float64 with a host-side stop: ``torch.logsumexp`` over
    dims -2 (column update) and -1 (row update) of one (..., n, k) tensor, no clamping; with
    ``tol``, the pairs after the first whose change is below ``tol`` are not run. Returns
    (targets, pairs run)."""
    log_k = scores.double() / eps
    log_k = log_k.transpose(-1, -2) if normalise == 'columns' else log_k
    n, k = log_k.shape[-2:]

    def column(f):
        return -np.log(k) - torch.logsumexp(log_k + f.unsqueeze(-1), dim=-2)

    def row(g):
        return -np.log(n) - torch.logsumexp(log_k + g.unsqueeze(-2), dim=-1)

    g = column(torch.zeros_like(log_k[..., 0]))
    f = row(g)
    change, pairs = eps * (g.abs().sum(-1) + f.abs().sum(-1)).mean(), 1
    while pairs < iters and not (tol is not None and change < tol):
        g_next = column(f)
        f_next = row(g_next)
        change = eps * ((g_next - g).abs().sum(-1) + (f_next - f).abs().sum(-1)).mean()
        g, f, pairs = g_next, f_next, pairs + 1
    plan = torch.softmax(log_k + g.unsqueeze(-2), dim=-1)
    return (plan.transpose(-1, -2) if normalise == 'columns' else plan), pairs


def paper_scores(seed=0):
    """-||X_i - c_p||^2 / tau_s (tau_s = 0.5) for 8 rows of G = 64 centers and K = 24 centroids in
    [-1, 1]^3: with eps = 0.01 the scaled scores reach -2400 (the clamped exp is exercised)."""
    g = torch.Generator().manual_seed(seed)
    x, c = torch.rand(8, 64, 3, generator=g) * 2 - 1, torch.rand(8, 24, 3, generator=g) * 2 - 1
    return -(x.unsqueeze(2) - c.unsqueeze(1)).square().sum(-1) / 0.5


@pytest.mark.parametrize('normalise', ['rows', 'columns'])
@pytest.mark.parametrize('case', ['paper', 'tol', 'wide'])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_matches_the_old_formulation_in_float64(normalise, case, dtype):
    """The in-place solver (one layout, clamped exp) against the plain one: float64 to rounding,
    float32 within 1e-4 (the old code's own float32 error on these inputs is up to 1.6e-5, the new
    one's the same).
    ``paper``: eps 0.01, 100 fixed pairs on (8, 64, 24); ``tol``: eps 0.1, tol 0.1, the rule stops the
    loop early; ``wide``: n < k (the other layout) on Gaussian scores."""
    L, eps, tol = {'paper': (paper_scores(), 0.01, None), 'tol': (paper_scores(), 0.1, 0.1),
                   'wide': (scores(5, 16, 40, dtype=torch.float32) * 3, 0.05, None)}[case]
    expected, pairs = old_formulation(L, eps, 100, tol, normalise)
    assert 1 < pairs < 100 if tol else pairs == 100  # tol: the rule stops the loop (58, 59 pairs)
    got = sinkhorn(L.to(dtype), eps=eps, iters=100, tol=tol, normalise=normalise)
    assert got.dtype == dtype
    atol = 1e-4 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(got.double(), expected, rtol=0, atol=atol)
