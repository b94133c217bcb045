"""Chamfer distance on the compiled CUDA kernels: same signature and semantics as
reference.py, for CUDA float32/float64 inputs (extensions.ops dispatches)."""
import torch
from torch.autograd.function import once_differentiable

from extensions.backend import compiled


class _Chamfer(torch.autograd.Function):
    """x (B,n,3), y (B,m,3) -> dist1 (B,n), dist2 (B,m), idx1 (B,n), idx2 (B,m)."""

    @staticmethod
    def forward(ctx, x, y):
        dist1, dist2, idx1, idx2 = compiled().chamfer_forward(x, y)
        ctx.save_for_backward(x, y, idx1, idx2)
        ctx.mark_non_differentiable(idx1, idx2)
        return dist1, dist2, idx1, idx2

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_dist1, grad_dist2, _grad_idx1, _grad_idx2):
        x, y, idx1, idx2 = ctx.saved_tensors
        return compiled().chamfer_backward(x, y, idx1, idx2, grad_dist1.contiguous(),
                                           grad_dist2.contiguous())


def chamfer_distance(x, y):
    """x (B,n,3), y (B,m,3) -> dist1 (B,n), dist2 (B,m), idx1 (B,n), idx2 (B,m) int64."""
    return _Chamfer.apply(x.contiguous(), y.contiguous())
