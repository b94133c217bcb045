"""Balanced entropic optimal transport (Sinkhorn-Knopp), the one solver every loss uses."""
import math

import torch
from torch.profiler import record_function


def at_least_float32(x):
    """x promoted to float32 when it is half precision (float16, bfloat16); float32/64 unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _log_floor(dtype):
    """Half the log of the smallest normal number of ``dtype`` (-43.7 in float32, -354 in float64).

    ``exp`` of anything below ``log(tiny)`` takes the CPU's slow path (denormals, underflow), about
    50x the normal cost; clamping ``x - max`` at this floor first only adds at most
    ``m * sqrt(tiny)`` to a sum that is >= 1, far below the dtype's rounding."""
    return math.log(torch.finfo(dtype).tiny) / 2


def _potential(kernel, other, scratch, dim):
    """The potential that gives the plan ``exp(kernel + other + potential)`` the sums 1/m along
    ``dim``, m the size of the other dim: ``-log m - logsumexp(kernel + other, dim)``.

    kernel (..., a, b); dim -1: other (..., b) -> (..., a), m = a; dim -2: other (..., a) ->
    (..., b), m = b. scratch (..., a, b) is overwritten. The log-sum-exp is written out (shift by
    the max, clamp at ``_log_floor``, exp, sum) in place on the scratch: no temporaries of its size."""
    kept = -3 - dim
    torch.add(kernel, other.unsqueeze(kept), out=scratch)
    shift = scratch.amax(dim, keepdim=True)
    total = scratch.sub_(shift).clamp_min_(_log_floor(scratch.dtype)).exp_().sum(dim)
    return total.log_().add_(shift.squeeze(dim)).neg_().sub_(math.log(kernel.shape[kept]))


def _last_column_potential(log_k, eps, iters, tol):
    """The column potential g (..., k) after ``iters`` (column, row) update pairs from zero
    potentials, for log_k (..., n, k); with ``tol``, the pair after which the mean over the
    leading dims of ``eps * (sum_k |dg| + sum_n |df|)`` first falls below ``tol`` is the last
    one applied (later pairs are computed but masked out: no host sync).

    Both updates run on one contiguous copy of log_k with the longer of n, k as its last dim
    (on the CPU, max and sum over a short last dim cost several times more, G=64 vs K=24)."""
    transposed = log_k.shape[-2] > log_k.shape[-1]
    kernel = (log_k.transpose(-1, -2) if transposed else log_k).contiguous()
    scratch = torch.empty_like(kernel)
    n_dim, k_dim = (-1, -2) if transposed else (-2, -1)

    def column(f):
        return _potential(kernel, f, scratch, n_dim)

    def row(g):
        return _potential(kernel, g, scratch, k_dim)

    g = column(torch.zeros_like(log_k[..., 0]))
    if tol is None:
        for _ in range(iters - 1):
            g = column(row(g))
        return g
    f_next = row(g)
    done = (eps * (g.abs().sum(-1) + f_next.abs().sum(-1))).mean() < tol
    f = f_next
    for _ in range(iters - 1):
        g_next = column(f)
        f_next = row(g_next)
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
