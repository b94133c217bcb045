"""Pure-PyTorch reference Chamfer distance (squared distances + argmin indices).

Any device and floating dtype. The nearest neighbours are searched without autograd over
row chunks of the pairwise-distance block (bounded memory), then the distances are recomputed
from the found pairs, so gradients cost O(B*(n+m)) memory.
"""
import torch

from extensions.distance import coords_first, row_chunks, square_distance
from extensions.pointnet2_ops.reference import gather_points


@torch.no_grad()
def nearest_both_ways(x, y, chunk=None):
    """x (B,n,3), y (B,m,3) -> idx1 (B,n) nearest y of each x, idx2 (B,m) nearest x of each y
    (the first index on ties), one pass over chunks of x rows."""
    B, n, _ = x.shape
    m = y.shape[1]
    xs, ys = coords_first(x).unsqueeze(-1), coords_first(y).unsqueeze(-2)
    idx1 = torch.empty(B, n, dtype=torch.long, device=x.device)
    best2 = torch.full((B, m), float('inf'), dtype=x.dtype, device=x.device)
    idx2 = torch.zeros(B, m, dtype=torch.long, device=x.device)
    for rows in row_chunks(n, B * m, chunk):
        d = square_distance(xs[:, :, rows], ys)
        idx1[:, rows] = d.argmin(dim=2)
        chunk_best, chunk_idx = d.min(dim=1)
        better = chunk_best < best2  # strict: an earlier chunk wins ties
        best2 = torch.where(better, chunk_best, best2)
        idx2 = torch.where(better, chunk_idx + rows.start, idx2)
    return idx1, idx2


def chamfer_distance(x, y, *, chunk=None):
    """x (B,n,3), y (B,m,3) -> dist1 (B,n), dist2 (B,m) squared nearest distances, idx1 (B,n),
    idx2 (B,m) int64; differentiable w.r.t. x and y."""
    idx1, idx2 = nearest_both_ways(x, y, chunk)
    dist1 = square_distance(coords_first(x), coords_first(gather_points(y, idx1)))
    dist2 = square_distance(coords_first(y), coords_first(gather_points(x, idx2)))
    return dist1, dist2, idx1, idx2
