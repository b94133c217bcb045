"""Balanced entropic optimal transport (Sinkhorn-Knopp), the one solver every loss uses."""
import math

import torch
from torch.profiler import record_function


def at_least_float32(x):
    """x promoted to float32 when it is half precision (float16, bfloat16); float32/64 unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _column_potential(log_k, f):
    """g (..., k) giving the plan exp(log_k + f + g) column sums 1/k; log_k (..., n, k), f (..., n)."""
    return -math.log(log_k.shape[-1]) - torch.logsumexp(log_k + f.unsqueeze(-1), dim=-2)


def _row_potential(log_k, g):
    """f (..., n) giving the plan exp(log_k + f + g) row sums 1/n; log_k (..., n, k), g (..., k)."""
    return -math.log(log_k.shape[-2]) - torch.logsumexp(log_k + g.unsqueeze(-2), dim=-1)


def _last_column_potential(log_k, eps, iters, tol):
    """The column potential g (..., k) after ``iters`` (column, row) update pairs from zero
    potentials; with ``tol``, the pair after which the mean over the leading dims of
    ``eps * (sum_k |dg| + sum_n |df|)`` first falls below ``tol`` is the last one applied
    (later pairs are computed but masked out: no host sync)."""
    f = torch.zeros_like(log_k[..., 0])
    g = _column_potential(log_k, f)
    if tol is None:
        for _ in range(iters - 1):
            g = _column_potential(log_k, _row_potential(log_k, g))
        return g
    f_next = _row_potential(log_k, g)
    done = (eps * (g.abs().sum(-1) + f_next.abs().sum(-1))).mean() < tol
    f = f_next
    for _ in range(iters - 1):
        g_next = _column_potential(log_k, f)
        f_next = _row_potential(log_k, g_next)
        change = (eps * ((g_next - g).abs().sum(-1) + (f_next - f).abs().sum(-1))).mean()
        g, f = torch.where(done, g, g_next), torch.where(done, f, f_next)
        done = done | (change < tol)
    return g


@torch.no_grad()
def sinkhorn(scores, eps, iters=3, tol=None, normalise='rows'):
    """Per-item (or per-cluster) targets of the balanced plan between n items and k clusters.

    scores (..., n, k), larger = more likely; leading dims are independent problems.
    Finds ``Pi = diag(u) exp(scores / eps) diag(v)`` with row sums 1/n and column sums 1/k by
    alternating log-sum-exp updates of the two potentials (log domain: no overflow for any
    |scores| / eps). No gradient; half-precision scores are promoted to float32 (float64 stays).

    ``normalise='rows'`` (default): ``iters`` >= 1 column updates, each followed by a row update
    (the last one exact); returns ``n * Pi`` (..., n, k): every row sums to 1 (a target
    distribution per item), every column sums to n/k once converged.
    ``normalise='columns'`` (the released MaskClu code): the same on the transposed problem,
    i.e. ``iters`` (row, column) pairs ending on the columns; returns ``k * Pi``: every column
    sums to 1, every row to k/n once converged.

    ``tol`` (optional, the released stopping rule): stop after the first pair whose change of
    the potentials, ``eps * (sum |du| + sum |dv|)`` (score units) averaged over the leading
    dims, is below ``tol``; ``iters`` is then the maximum. Implemented by masking the later
    pairs, so it never reads a device value on the host (the iteration count is fixed either
    way). Adding a constant (or a per-cluster constant) to ``scores`` does not change the
    result; a per-item constant only once converged.
    """
    with record_function('phase/sinkhorn'):
        log_k = at_least_float32(scores) / eps
        if normalise == 'columns':
            log_k = log_k.transpose(-1, -2)
        plan = torch.softmax(log_k + _last_column_potential(log_k, eps, iters, tol).unsqueeze(-2), dim=-1)
        return plan.transpose(-1, -2) if normalise == 'columns' else plan
