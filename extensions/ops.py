"""The point-cloud ops: one entry per op, checking its inputs and dispatching.

CUDA float32/float64 tensors run the compiled kernels when they can be had, everything else
the PyTorch reference (see extensions.backend; MASKCLU_OPS_REFERENCE=1 forces the reference).
Both give the same results: indices equal on tie-free inputs, distances equal to rounding.
Coordinates are promoted to one floating dtype of at least float32 (half and bfloat16 run
in float32). Shapes: B batch, N/m points, G/n queries, k/S neighbours, C channels.
"""
from extensions import backend, inputs
from extensions.chamfer_dist import kernels as chamfer_kernels
from extensions.chamfer_dist import reference as chamfer_reference
from extensions.pointnet2_ops import kernels as pointnet2_kernels
from extensions.pointnet2_ops import reference as pointnet2_reference

IDW_EPS = 1e-8


def _pick(kernels, reference, tensor):
    return kernels if backend.use_kernels(tensor) else reference


def _pointnet2(tensor):
    return _pick(pointnet2_kernels, pointnet2_reference, tensor)


def furthest_point_sample(xyz, npoint, start_idx=0):
    """Farthest point sampling: xyz (B,N,3), npoint in [1,N] -> idx (B,npoint) int64.

    start_idx (int or (B,) integer tensor) is each cloud's first pick (0: Point-MAE). Every
    next pick is the point with the largest squared distance to its nearest pick so far, the
    lowest index on ties. Deterministic; no gradient.
    """
    xyz, = inputs.clouds((xyz, 'xyz'))
    B, N, _ = xyz.shape
    inputs.check_count('npoint', npoint, 1, N)
    start = inputs.start_indices(start_idx, B, N, xyz.device)
    return _pointnet2(xyz).furthest_point_sample(xyz, npoint, start)


def gather_points(points, idx):
    """points (B,N,C), idx (B,*K) int64 in [0,N) -> (B,*K,C): out[b,*k] = points[b, idx[b,*k]].

    Any dtype; differentiable w.r.t. points.
    """
    inputs.check_tensor(points, 'points', 3)
    idx = inputs.index(idx, 'idx', points)
    return _pointnet2(points).gather_points(points, idx)


def group_points(points, idx):
    """Grouping: points (B,N,C), idx (B,G,S) int64 -> (B,G,S,C), e.g. the S neighbours of each
    of G centers (gather_points with a 3-D index). Differentiable w.r.t. points."""
    inputs.check_tensor(points, 'points', 3)
    return gather_points(points, inputs.index(idx, 'idx', points, dim=3))


def knn_points(query, ref, k):
    """k nearest neighbours: query (B,G,3), ref (B,N,3), k in [1,N] ->
    dist2 (B,G,k) squared distances ascending, idx (B,G,k) int64 into ref.

    Ties in distance keep index order on the kernel path (unspecified on the reference).
    No gradient (gather the points by idx to get one). Kernel path: k <= 1024.
    """
    query, ref = inputs.clouds((query, 'query'), (ref, 'ref'))
    inputs.check_count('k', k, 1, ref.shape[1])
    return _pointnet2(query).knn_points(query, ref, k)


def ball_query(new_xyz, xyz, radius, nsample):
    """Ball query (PointNet++): new_xyz (B,G,3), xyz (B,N,3), radius > 0, nsample >= 1 ->
    idx (B,G,nsample) int64.

    Row g lists the first nsample points, in index order, with squared distance to center g
    strictly below radius**2; a row with fewer is padded with its first point. A center with
    no point inside gets a row of 0 (point 0, whatever its distance): check the distances if
    that can happen. Centers taken from xyz itself always find themselves. No gradient.
    """
    new_xyz, xyz = inputs.clouds((new_xyz, 'new_xyz'), (xyz, 'xyz'))
    if not radius > 0:
        raise ValueError(f'radius must be > 0, got {radius}')
    inputs.check_count('nsample', nsample, 1, float('inf'))
    return _pointnet2(new_xyz).ball_query(new_xyz, xyz, radius, nsample)


def three_nn(unknown, known):
    """The 3 nearest known points of each unknown point: unknown (B,n,3), known (B,m,3) with
    m >= 3 -> dist2 (B,n,3) squared distances ascending, idx (B,n,3) int64. No gradient."""
    unknown, known = inputs.clouds((unknown, 'unknown'), (known, 'known'))
    if known.shape[1] < 3:
        raise ValueError(f'three_nn needs at least 3 known points, got {known.shape[1]}')
    return _pointnet2(unknown).knn_points(unknown, known, 3)


def three_interpolate(features, idx, weight):
    """Weighted sum of 3 features: features (B,m,C), idx (B,n,3) int64, weight (B,n,3) ->
    out (B,n,C), out[b,i] = sum_j weight[b,i,j] * features[b, idx[b,i,j]].

    features and weight are promoted to one dtype; differentiable w.r.t. both.
    """
    inputs.check_tensor(features, 'features', 3)
    inputs.check_tensor(weight, 'weight', 3, last=3)
    idx = inputs.index(idx, 'idx', features, dim=3)
    if idx.shape != weight.shape or idx.shape[-1] != 3:
        raise ValueError(f'idx and weight must both be (B,n,3), got {tuple(idx.shape)} and '
                         f'{tuple(weight.shape)}')
    features, weight = inputs.floats((features, 'features'), (weight, 'weight'),
                                     floor=features.dtype)
    return _pointnet2(features).three_interpolate(features, idx, weight)


def interpolate_idw(unknown, known, features):
    """Inverse-distance interpolation from the 3 nearest known points (PointNet++ feature
    propagation): unknown (B,n,3), known (B,m,3), features (B,m,C) of the known points ->
    (B,n,C).

    With d2_j the squared distances to the 3 nearest known points (three_nn),
    w_j = (1 / (d2_j + 1e-8)) / sum_l (1 / (d2_l + 1e-8)) and out = sum_j w_j * features[idx_j].
    Differentiable w.r.t. features (not through the coordinates).
    """
    dist2, idx = three_nn(unknown, known)
    reciprocal = 1.0 / (dist2 + IDW_EPS)
    weight = reciprocal / reciprocal.sum(dim=-1, keepdim=True)
    return three_interpolate(features, idx, weight)


def chamfer_distance(x, y):
    """Chamfer distance terms: x (B,n,3), y (B,m,3), n, m >= 1 ->
    dist1 (B,n) squared distance from each x to its nearest y, dist2 (B,m) from each y to its
    nearest x, idx1 (B,n), idx2 (B,m) int64 those nearest points (the first on ties).

    Differentiable w.r.t. x and y (through dist1 and dist2). Chamfer-L2 is
    dist1.mean(1) + dist2.mean(1).
    """
    x, y = inputs.clouds((x, 'x'), (y, 'y'))
    if min(x.shape[1], y.shape[1]) < 1:
        raise ValueError('chamfer_distance needs at least one point in x and in y')
    return _pick(chamfer_kernels, chamfer_reference, x).chamfer_distance(x, y)
