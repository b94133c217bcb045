"""The PyTorch references of the point-cloud ops against NumPy brute force and hand-made cases
(run on CPU, so through the public entries they take the reference path)."""
import numpy as np
import pytest
import torch
from torch.testing import assert_close

import extensions as ops
from extensions.chamfer_dist import reference as chamfer_reference
from extensions.pointnet2_ops import reference


def cloud(*shape, seed=0, dtype=torch.float32):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def np_sqdist(a, b):
    """a (n,3), b (m,3) -> (n,m) squared distances in float64."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


def np_fps(points, npoint, start):
    d = np_sqdist(points, points)
    picks, nearest = [start], d[start].copy()
    for _ in range(npoint - 1):
        picks.append(int(np.argmax(nearest)))
        nearest = np.minimum(nearest, d[picks[-1]])
    return picks


# --- furthest point sampling ---------------------------------------------------------------

LINE = torch.tensor([[[0., 0, 0], [1, 0, 0], [3, 0, 0], [10, 0, 0], [6, 0, 0]]])


def test_fps_hand_made_order():
    assert ops.furthest_point_sample(LINE, 5).tolist() == [[0, 3, 4, 2, 1]]


def test_fps_tie_takes_lowest_index():
    # From x=3: 10 is farthest; then x=0 and x=6 are both 9 away from their nearest pick.
    assert ops.furthest_point_sample(LINE, 5, start_idx=2).tolist() == [[2, 3, 0, 4, 1]]


def test_fps_matches_numpy():
    xyz = cloud(3, 300, 3)
    idx = ops.furthest_point_sample(xyz, 40)
    assert idx.dtype == torch.long and idx.shape == (3, 40)
    for b in range(3):
        assert idx[b].tolist() == np_fps(xyz[b].numpy(), 40, 0)


def test_fps_start_index_int_and_per_batch():
    xyz = cloud(3, 200, 3, seed=1)
    assert ops.furthest_point_sample(xyz, 20, start_idx=7)[:, 0].tolist() == [7, 7, 7]
    start = torch.tensor([5, 0, 199])
    idx = ops.furthest_point_sample(xyz, 20, start_idx=start)
    for b in range(3):
        assert idx[b].tolist() == np_fps(xyz[b].numpy(), 20, int(start[b]))


def test_fps_picks_distinct_points():
    idx = ops.furthest_point_sample(cloud(2, 64, 3, seed=2), 64)
    assert all(len(set(row)) == 64 for row in idx.tolist())


@pytest.mark.parametrize('kwargs', [{'npoint': 0}, {'npoint': 6}, {'npoint': 2, 'start_idx': 5},
                                    {'npoint': 2, 'start_idx': torch.tensor([0, 1])}])
def test_fps_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        ops.furthest_point_sample(LINE, **kwargs)


# --- gather / group ------------------------------------------------------------------------

def test_gather_and_group_match_numpy():
    points = cloud(2, 50, 7)
    idx = torch.randint(0, 50, (2, 6, 4), generator=torch.Generator().manual_seed(0))
    expected = np.stack([points[b].numpy()[idx[b].numpy()] for b in range(2)])
    assert_close(ops.group_points(points, idx), torch.from_numpy(expected), rtol=0, atol=0)
    assert_close(ops.gather_points(points, idx[:, 0]), torch.from_numpy(expected[:, 0]),
                 rtol=0, atol=0)


def test_gather_and_group_gradcheck():
    points = cloud(2, 9, 4, dtype=torch.float64).requires_grad_()
    idx = torch.randint(0, 9, (2, 5, 3), generator=torch.Generator().manual_seed(1))
    assert torch.autograd.gradcheck(lambda p: ops.group_points(p, idx), (points,))
    assert torch.autograd.gradcheck(lambda p: ops.gather_points(p, idx[:, 0]), (points,))


def test_group_needs_three_dimensional_index():
    with pytest.raises(ValueError):
        ops.group_points(cloud(2, 9, 4), torch.zeros(2, 5, dtype=torch.long))


# --- kNN and three-NN ----------------------------------------------------------------------

def test_knn_matches_numpy_argsort():
    query, ref = cloud(2, 30, 3, seed=3), cloud(2, 200, 3, seed=4)
    dist2, idx = ops.knn_points(query, ref, 8)
    for b in range(2):
        d = np_sqdist(query[b], ref[b])
        order = np.argsort(d, axis=1)[:, :8]
        assert idx[b].tolist() == order.tolist()
        assert_close(dist2[b].double(), torch.from_numpy(np.take_along_axis(d, order, 1)),
                     rtol=1e-5, atol=1e-7)


def test_knn_includes_the_query_point_itself_at_distance_zero():
    xyz = cloud(2, 100, 3, seed=5)
    dist2, idx = ops.knn_points(xyz, xyz, 4)
    assert (idx[..., 0] == torch.arange(100)).all() and (dist2[..., 0] == 0).all()


def test_knn_chunked_equals_unchunked():
    query, ref = cloud(2, 37, 3, seed=6), cloud(2, 90, 3, seed=7)
    whole = reference.knn_points(query, ref, 5, chunk=1000)
    for chunk in (1, 4):
        for a, b in zip(reference.knn_points(query, ref, 5, chunk=chunk), whole):
            assert_close(a, b, rtol=0, atol=0)


def test_three_nn_matches_knn_and_needs_three_points():
    unknown, known = cloud(2, 40, 3, seed=8), cloud(2, 12, 3, seed=9)
    for a, b in zip(ops.three_nn(unknown, known), ops.knn_points(unknown, known, 3)):
        assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError):
        ops.three_nn(unknown, known[:, :2])


# --- ball query ----------------------------------------------------------------------------

def test_ball_query_hand_made():
    xyz = torch.tensor([[[0., 0, 0], [.5, 0, 0], [2, 0, 0], [.1, 0, 0], [3, 0, 0]]])
    centers = torch.tensor([[[0., 0, 0], [10, 0, 0], [3.1, 0, 0], [2.9, 0, 0], [1.5, 0, 0]]])
    idx = ops.ball_query(centers, xyz, 1.0, 4)
    assert idx.tolist() == [[[0, 1, 3, 0],    # three inside, padded with the first
                             [0, 0, 0, 0],    # none inside: zeros
                             [4, 4, 4, 4],    # one inside
                             [2, 4, 2, 2],    # index order, not distance order
                             [2, 2, 2, 2]]]   # x=0.5 lies exactly on the sphere: outside
    assert ops.ball_query(centers, xyz, 1.0, 7)[0, 0].tolist() == [0, 1, 3, 0, 0, 0, 0]


def test_ball_query_matches_numpy_and_chunking():
    centers, xyz = cloud(2, 25, 3, seed=10), cloud(2, 300, 3, seed=11)
    idx = ops.ball_query(centers, xyz, 0.2, 16)
    for b in range(2):
        inside = np_sqdist(centers[b], xyz[b]) < 0.2 ** 2
        for g in range(25):
            found = np.flatnonzero(inside[g])[:16].tolist()
            expected = found + [found[0] if found else 0] * (16 - len(found))
            assert idx[b, g].tolist() == expected
    assert_close(reference.ball_query(centers, xyz, 0.2, 16, chunk=3), idx, rtol=0, atol=0)


@pytest.mark.parametrize('args', [(0.0, 4), (-1.0, 4), (1.0, 0)])
def test_ball_query_rejects_bad_arguments(args):
    with pytest.raises(ValueError):
        ops.ball_query(LINE, LINE, *args)


# --- interpolation -------------------------------------------------------------------------

def test_three_interpolate_matches_numpy():
    features = cloud(2, 10, 5, seed=12)
    idx = torch.randint(0, 10, (2, 7, 3), generator=torch.Generator().manual_seed(2))
    weight = cloud(2, 7, 3, seed=13)
    out = ops.three_interpolate(features, idx, weight)
    expected = np.stack([(features[b].numpy()[idx[b].numpy()] * weight[b].numpy()[..., None])
                         .sum(1) for b in range(2)])
    assert_close(out, torch.from_numpy(expected), rtol=1e-6, atol=1e-6)


def test_three_interpolate_gradcheck_features_and_weight():
    features = cloud(2, 6, 4, seed=14, dtype=torch.float64).requires_grad_()
    idx = torch.randint(0, 6, (2, 5, 3), generator=torch.Generator().manual_seed(3))
    weight = cloud(2, 5, 3, seed=15, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda f, w: ops.three_interpolate(f, idx, w),
                                    (features, weight))


def test_interpolate_idw_formula():
    unknown, known = cloud(2, 20, 3, seed=16), cloud(2, 8, 3, seed=17)
    features = cloud(2, 8, 6, seed=18)
    out = ops.interpolate_idw(unknown, known, features)
    for b in range(2):
        d = np_sqdist(unknown[b], known[b])
        nn = np.argsort(d, 1)[:, :3]
        w = 1 / (np.take_along_axis(d, nn, 1) + 1e-8)
        w /= w.sum(1, keepdims=True)
        expected = (features[b].numpy()[nn] * w[..., None]).sum(1)
        assert_close(out[b].double(), torch.from_numpy(expected), rtol=1e-5, atol=1e-6)


def test_interpolate_idw_reproduces_features_at_known_points():
    known, features = cloud(1, 16, 3, seed=19), cloud(1, 16, 4, seed=20)
    assert_close(ops.interpolate_idw(known, known, features), features, rtol=0, atol=1e-4)


# --- Chamfer -------------------------------------------------------------------------------

def test_chamfer_matches_numpy():
    x, y = cloud(3, 40, 3, seed=21), cloud(3, 25, 3, seed=22)
    dist1, dist2, idx1, idx2 = ops.chamfer_distance(x, y)
    for b in range(3):
        d = np_sqdist(x[b], y[b])
        assert idx1[b].tolist() == d.argmin(1).tolist()
        assert idx2[b].tolist() == d.argmin(0).tolist()
        assert_close(dist1[b].double(), torch.from_numpy(d.min(1)), rtol=1e-5, atol=1e-7)
        assert_close(dist2[b].double(), torch.from_numpy(d.min(0)), rtol=1e-5, atol=1e-7)


def test_chamfer_gradcheck_both_inputs():
    x = cloud(2, 7, 3, seed=23, dtype=torch.float64).requires_grad_()
    y = cloud(2, 5, 3, seed=24, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: ops.chamfer_distance(a, b)[:2], (x, y))


def test_chamfer_chunked_equals_unchunked():
    x = cloud(2, 33, 3, seed=25).requires_grad_()
    y = cloud(2, 21, 3, seed=26).requires_grad_()
    results = []
    for chunk in (None, 1, 5):
        out = chamfer_reference.chamfer_distance(x, y, chunk=chunk)
        grads = torch.autograd.grad(out[0].sum() + 2 * out[1].sum(), (x, y))
        results.append(list(out) + list(grads))
    for other in results[1:]:
        for a, b in zip(other, results[0]):
            assert_close(a, b, rtol=0, atol=0)


def test_chamfer_of_a_cloud_with_itself_is_zero():
    x = cloud(2, 30, 3, seed=27)
    dist1, dist2, idx1, idx2 = ops.chamfer_distance(x, x)
    assert (dist1 == 0).all() and (dist2 == 0).all()
    assert (idx1 == torch.arange(30)).all() and (idx2 == torch.arange(30)).all()


# --- shared input handling -----------------------------------------------------------------

def test_low_precision_coordinates_run_in_float32():
    x = cloud(2, 30, 3).half()
    dist1, *_ = ops.chamfer_distance(x, x.float())
    dist2, _ = ops.knn_points(x.bfloat16(), x, 3)
    assert dist1.dtype == dist2.dtype == torch.float32


@pytest.mark.parametrize('call', [
    lambda: ops.knn_points(torch.rand(2, 5, 2), torch.rand(2, 9, 3), 3),      # not (B,N,3)
    lambda: ops.knn_points(torch.rand(2, 5, 3), torch.rand(3, 9, 3), 3),      # batch mismatch
    lambda: ops.knn_points(torch.rand(2, 5, 3), torch.rand(2, 9, 3), 10),     # k > N
    lambda: ops.chamfer_distance(torch.rand(2, 0, 3), torch.rand(2, 9, 3)),   # empty cloud
    lambda: ops.three_interpolate(torch.rand(2, 5, 4), torch.zeros(2, 6, 3, dtype=torch.long),
                                  torch.rand(2, 6, 2)),                       # weight not (B,n,3)
])
def test_bad_shapes_are_value_errors(call):
    with pytest.raises(ValueError):
        call()


def test_non_floating_coordinates_are_type_errors():
    with pytest.raises(TypeError):
        ops.furthest_point_sample(torch.zeros(1, 5, 3, dtype=torch.long), 2)
    with pytest.raises(TypeError):
        ops.gather_points(torch.rand(1, 5, 3), torch.zeros(1, 2))


def test_fps_int_start_is_built_on_the_cloud_device():
    from extensions.inputs import start_indices
    start = start_indices(3, 4, 10, torch.device('meta'))
    assert start.device.type == 'meta' and start.shape == (4,) and start.dtype == torch.long
