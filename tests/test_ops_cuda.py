"""CUDA kernels against the PyTorch reference (skipped without a CUDA device): indices exact on
tie-free random inputs, distances rtol 1e-5, gradients atol 5e-6, plus gradchecks of the
kernel autograd functions."""
import pytest
import torch
from torch.testing import assert_close

import extensions
from extensions import backend
from extensions.chamfer_dist import kernels as chamfer_kernels
from extensions.chamfer_dist import reference as chamfer_reference
from extensions.pointnet2_ops import kernels, reference

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')]

DEVICE = torch.device('cuda')
DTYPES = [torch.float32, torch.float64]
DIST = {'rtol': 1e-5, 'atol': 1e-7}
GRAD = {'rtol': 1e-5, 'atol': 5e-6}


@pytest.fixture(scope='module', autouse=True)
def compiled_module():
    module = backend.compiled()
    assert module is not None, backend.backend_info()
    return module


def rand(*shape, seed, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=generator, dtype=dtype).to(DEVICE)


def randint(high, *shape, seed):
    return torch.randint(0, high, shape, generator=torch.Generator().manual_seed(seed)).to(DEVICE)


def grads(output, inputs, seed):
    """Gradients of sum(output * a fixed random tensor) w.r.t. inputs."""
    weight = rand(*output.shape, seed=seed, dtype=output.dtype)
    return torch.autograd.grad(output, inputs, weight)


def test_ops_dispatch_to_the_kernels(monkeypatch):
    monkeypatch.delenv(backend.ENV_REFERENCE, raising=False)
    x = rand(2, 64, 3, seed=0)
    assert backend.use_kernels(x)
    assert extensions.backend_info()['cuda'] == 'kernels'
    assert_close(extensions.knn_points(x, x, 4)[1], kernels.knn_points(x, x, 4)[1])


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('B,N,npoint', [(4, 2048, 256), (16, 1024, 64), (2, 8192, 1200)])
def test_furthest_point_sample(dtype, B, N, npoint):
    xyz = rand(B, N, 3, seed=1, dtype=dtype)
    start = randint(N, B, seed=2)
    for s in (torch.zeros_like(start), start):
        assert torch.equal(kernels.furthest_point_sample(xyz, npoint, s),
                           reference.furthest_point_sample(xyz, npoint, s))


@pytest.mark.parametrize('dtype', DTYPES)
def test_gather_points_forward_and_backward(dtype):
    points = rand(3, 500, 7, seed=3, dtype=dtype).requires_grad_()
    idx = randint(500, 3, 40, 16, seed=4)
    out = kernels.gather_points(points, idx)
    expected = reference.gather_points(points, idx)
    assert_close(out, expected, rtol=0, atol=0)
    assert_close(grads(out, points, 5)[0], grads(expected, points, 5)[0], **GRAD)


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('B,G,N,k', [(128, 64, 1024, 32), (2, 100, 3000, 200), (3, 17, 50, 50)])
def test_knn_points(dtype, B, G, N, k):
    query, ref = rand(B, G, 3, seed=6, dtype=dtype), rand(B, N, 3, seed=7, dtype=dtype)
    dist2, idx = kernels.knn_points(query, ref, k)
    expected_dist2, expected_idx = reference.knn_points(query, ref, k)
    assert torch.equal(idx, expected_idx)
    assert_close(dist2, expected_dist2, **DIST)


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('radius,nsample', [(0.1, 32), (0.3, 64), (0.02, 8)])
def test_ball_query(dtype, radius, nsample):
    centers, xyz = rand(4, 128, 3, seed=8, dtype=dtype), rand(4, 2048, 3, seed=9, dtype=dtype)
    assert torch.equal(kernels.ball_query(centers, xyz, radius, nsample),
                       reference.ball_query(centers, xyz, radius, nsample))


@pytest.mark.parametrize('dtype', DTYPES)
def test_three_interpolate_forward_and_backward(dtype):
    features = rand(4, 128, 384, seed=10, dtype=dtype).requires_grad_()
    idx = randint(128, 4, 2048, 3, seed=11)
    weight = rand(4, 2048, 3, seed=12, dtype=dtype).requires_grad_()
    out = kernels.three_interpolate(features, idx, weight)
    expected = reference.three_interpolate(features, idx, weight)
    assert_close(out, expected, **DIST)
    for a, b in zip(grads(out, (features, weight), 13), grads(expected, (features, weight), 13)):
        assert_close(a, b, **GRAD)


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('B,n,m', [(4864, 32, 32), (8, 2048, 2048), (3, 700, 1500)])
def test_chamfer_distance(dtype, B, n, m):
    x = rand(B, n, 3, seed=14, dtype=dtype).requires_grad_()
    y = rand(B, m, 3, seed=15, dtype=dtype).requires_grad_()
    out = chamfer_kernels.chamfer_distance(x, y)
    expected = chamfer_reference.chamfer_distance(x, y)
    assert torch.equal(out[2], expected[2]) and torch.equal(out[3], expected[3])
    assert_close(out[0], expected[0], **DIST)
    assert_close(out[1], expected[1], **DIST)
    loss, expected_loss = (torch.cat(r[:2], dim=1) for r in (out, expected))
    for a, b in zip(grads(loss, (x, y), 16), grads(expected_loss, (x, y), 16)):
        assert_close(a, b, **GRAD)


def test_kernel_autograd_gradcheck():
    points = rand(2, 9, 4, seed=17, dtype=torch.float64).requires_grad_()
    idx = randint(9, 2, 5, 3, seed=18)
    assert torch.autograd.gradcheck(lambda p: kernels.gather_points(p, idx), (points,))
    weight = rand(2, 5, 3, seed=19, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda f, w: kernels.three_interpolate(f, idx, w),
                                    (points, weight))
    x = rand(2, 7, 3, seed=20, dtype=torch.float64).requires_grad_()
    y = rand(2, 5, 3, seed=21, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: chamfer_kernels.chamfer_distance(a, b)[:2], (x, y))
