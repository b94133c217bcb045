"""The PointNet++ ops on the compiled CUDA kernels: same signatures and semantics as
reference.py, for contiguous-able CUDA float32/float64 inputs (extensions.ops dispatches).

Autograd: gather_points and three_interpolate have kernel backwards (first order only); the
searches return no gradient, like their references.
"""
import torch
from torch.autograd.function import once_differentiable

from extensions.backend import compiled


def furthest_point_sample(xyz, npoint, start_idx):
    """xyz (B,N,3), start_idx (B,) int64 -> idx (B,npoint) int64."""
    return compiled().furthest_point_sample(xyz.detach().contiguous(), npoint,
                                            start_idx.contiguous())


class _Gather(torch.autograd.Function):
    """points (B,N,C), idx (B,K) -> (B,K,C)."""

    @staticmethod
    def forward(ctx, points, idx):
        ctx.save_for_backward(idx)
        ctx.num_points = points.shape[1]
        return compiled().gather_points(points, idx)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        idx, = ctx.saved_tensors
        return compiled().gather_points_backward(grad_out.contiguous(), idx, ctx.num_points), None


def gather_points(points, idx):
    """points (B,N,C), idx (B,*K) int64 -> (B,*K,C)."""
    B, C = points.shape[0], points.shape[-1]
    out = _Gather.apply(points.contiguous(), idx.reshape(B, -1).contiguous())
    return out.reshape(*idx.shape, C)


def knn_points(query, ref, k):
    """query (B,G,3), ref (B,N,3) -> dist2 (B,G,k) ascending, idx (B,G,k) int64."""
    return tuple(compiled().knn_points(query.detach().contiguous(), ref.detach().contiguous(), k))


def ball_query(new_xyz, xyz, radius, nsample):
    """new_xyz (B,G,3), xyz (B,N,3) -> idx (B,G,nsample) int64 (see reference.ball_query)."""
    return compiled().ball_query(new_xyz.detach().contiguous(), xyz.detach().contiguous(),
                                 float(radius), nsample)


class _ThreeInterpolate(torch.autograd.Function):
    """features (B,m,C), idx (B,n,3), weight (B,n,3) -> (B,n,C)."""

    @staticmethod
    def forward(ctx, features, idx, weight):
        ctx.save_for_backward(features, idx, weight)
        return compiled().three_interpolate(features, idx, weight)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        features, idx, weight = ctx.saved_tensors
        grad_features, grad_weight = compiled().three_interpolate_backward(
            grad_out.contiguous(), features, idx, weight, ctx.needs_input_grad[0],
            ctx.needs_input_grad[2])
        return grad_features, None, grad_weight


def three_interpolate(features, idx, weight):
    """features (B,m,C), idx (B,n,3), weight (B,n,3) -> (B,n,C)."""
    return _ThreeInterpolate.apply(features.contiguous(), idx.contiguous(), weight.contiguous())
