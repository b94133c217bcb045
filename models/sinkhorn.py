"""Balanced entropic optimal transport (Sinkhorn-Knopp), the one solver every loss uses."""
import math

import torch
from torch.profiler import record_function


def _column_potential(log_k, f):
    """g (..., k) giving the plan exp(log_k + f + g) column sums 1/k; log_k (..., n, k), f (..., n)."""
    return -math.log(log_k.shape[-1]) - torch.logsumexp(log_k + f.unsqueeze(-1), dim=-2)


def _row_potential(log_k, g):
    """f (..., n) giving the plan exp(log_k + f + g) row sums 1/n; log_k (..., n, k), g (..., k)."""
    return -math.log(log_k.shape[-2]) - torch.logsumexp(log_k + g.unsqueeze(-2), dim=-1)


@torch.no_grad()
def sinkhorn(scores, eps, iters=3, tol=None):
    """Per-item targets of the balanced plan between n items and k clusters.

    scores (..., n, k), larger = more likely; leading dims are independent problems.
    Finds ``Pi = diag(u) exp(scores / eps) diag(v)`` with row sums 1/n and column sums 1/k by
    alternating log-sum-exp updates of the column potential g (..., k) and the row potential
    f (..., n) (log domain: no overflow for any |scores| / eps), and returns ``n * Pi``
    (..., n, k): every row sums to 1 (a target distribution per item), every column sums to
    n/k once converged. No gradient; half-precision scores are promoted to float32.

    ``iters`` >= 1 column updates are done, each followed by a row normalisation (the last one
    exact, so the rows always sum to 1); the iteration count is fixed, so no host sync. With
    ``tol`` the loop also stops once no column potential moves by more than ``tol`` (a host
    sync per iteration: keep ``tol=None`` inside a training step). Adding a constant (or a
    per-cluster constant) to ``scores`` does not change the result; a per-item constant only
    once converged.
    """
    with record_function('phase/sinkhorn'):
        if scores.dtype in (torch.float16, torch.bfloat16):
            scores = scores.float()
        log_k = scores / eps
        g = _column_potential(log_k, torch.zeros_like(log_k[..., 0]))
        for _ in range(iters - 1):
            g_next = _column_potential(log_k, _row_potential(log_k, g))
            converged = tol is not None and bool((g_next - g).abs().max() <= tol)
            g = g_next
            if converged:
                break
        return torch.softmax(log_k + g.unsqueeze(-2), dim=-1)
