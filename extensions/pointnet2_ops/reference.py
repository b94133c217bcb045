"""Pure-PyTorch references of the PointNet++ ops: the semantics the CUDA kernels match.

Any device and floating dtype. Searches (FPS, kNN, ball query) run without autograd and bound
their memory by chunking the pairwise-distance block (distance.MAX_BLOCK_ELEMENTS, or `chunk`
rows at a time). Shapes: B batch, N/m points, G/n queries, k/S neighbours, C channels.
"""
import torch

from extensions.distance import coords_first, row_chunks, square_distance


@torch.no_grad()
def furthest_point_sample(xyz, npoint, start_idx=0):
    """xyz (B,N,3), start_idx int or (B,) -> idx (B,npoint) int64; ties pick the lowest index.

    Loops over the npoint picks, vectorised over batch and points.
    """
    B, N, _ = xyz.shape
    planes = coords_first(xyz)
    idx = torch.empty(B, npoint, dtype=torch.long, device=xyz.device)
    nearest = torch.full((B, N), float('inf'), dtype=xyz.dtype, device=xyz.device)
    cur = torch.as_tensor(start_idx, device=xyz.device).long().expand(B)
    for i in range(npoint):
        idx[:, i] = cur
        center = planes.gather(2, cur.reshape(1, B, 1).expand(3, B, 1))
        torch.minimum(nearest, square_distance(planes, center), out=nearest)
        cur = nearest.argmax(dim=1)
    return idx


def gather_points(points, idx):
    """points (B,N,C), idx (B,*K) int64 -> (B,*K,C); differentiable w.r.t. points."""
    B, C = points.shape[0], points.shape[-1]
    flat = idx.reshape(B, -1, 1).expand(-1, -1, C)
    return torch.gather(points, 1, flat).reshape(*idx.shape, C)


@torch.no_grad()
def knn_points(query, ref, k, *, chunk=None):
    """query (B,G,3), ref (B,N,3) -> dist2 (B,G,k) ascending, idx (B,G,k) int64 (no grad)."""
    B, G, _ = query.shape
    q, r = coords_first(query).unsqueeze(-1), coords_first(ref).unsqueeze(-2)
    dist2 = query.new_empty(B, G, k)
    idx = torch.empty(B, G, k, dtype=torch.long, device=query.device)
    for rows in row_chunks(G, B * ref.shape[1], chunk):
        dist2[:, rows], idx[:, rows] = square_distance(q[:, :, rows], r).topk(
            k, dim=-1, largest=False, sorted=True)
    return dist2, idx


@torch.no_grad()
def ball_query(new_xyz, xyz, radius, nsample, *, chunk=None):
    """new_xyz (B,G,3), xyz (B,N,3) -> idx (B,G,nsample) int64.

    The first nsample points in index order with squared distance < radius**2, the rest of the
    row filled with the first of them; a row with no point inside is all 0.
    """
    B, G, _ = new_xyz.shape
    N = xyz.shape[1]
    q, r = coords_first(new_xyz).unsqueeze(-1), coords_first(xyz).unsqueeze(-2)
    order = torch.arange(N, device=xyz.device)
    found = torch.full((B, G, nsample), N, dtype=torch.long, device=xyz.device)  # N = missing
    width = min(nsample, N)
    for rows in row_chunks(G, B * N, chunk):
        inside = square_distance(q[:, :, rows], r) < radius * radius
        candidates = torch.where(inside, order, N)
        found[:, rows, :width] = candidates.topk(width, dim=-1, largest=False, sorted=True).values
    first = found[..., :1].masked_fill(found[..., :1] == N, 0)
    return torch.where(found == N, first, found)


def three_interpolate(features, idx, weight):
    """features (B,m,C), idx (B,n,3), weight (B,n,3) -> (B,n,C) = sum_j weight_j * features[idx_j],
    summed in order j = 0, 1, 2; differentiable w.r.t. features and weight."""
    out = weight[..., 0:1] * gather_points(features, idx[..., 0])
    for j in (1, 2):
        out = out + weight[..., j:j + 1] * gather_points(features, idx[..., j])
    return out
