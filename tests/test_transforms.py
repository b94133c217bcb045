"""Batch point-cloud transforms: shapes, ranges, devices, seeding, config errors."""
import math

import pytest
import torch

from utils.transforms import TRANSFORMS, build_transforms, check_transforms_config
from utils.config import ConfigError

B, N = 4, 200
CROPS = {'SphereCrop', 'HalfSpaceCrop'}


def points(dtype=torch.float32, device='cpu'):
    return torch.randn(B, N, 3, generator=torch.Generator().manual_seed(0)).to(device, dtype)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def apply(name, x, seed=0, **kwargs):
    return build_transforms([{'NAME': name, **kwargs}])(x, gen(seed))


@pytest.mark.parametrize('name', TRANSFORMS.names())
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_shape_dtype_and_finiteness(name, dtype):
    out = apply(name, points(dtype))
    assert out.shape == (B, round(0.85 * N) if name in CROPS else N, 3)
    assert out.dtype == dtype and torch.isfinite(out).all()


@pytest.mark.parametrize('name', TRANSFORMS.names())
def test_runs_on_any_device(name):
    out = TRANSFORMS.get(name)()(points(device='meta'))
    assert out.device.type == 'meta' and out.shape[0] == B


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('name', TRANSFORMS.names())
def test_cuda_matches_cpu_given_a_cpu_generator(name):
    cpu = apply(name, points())
    assert torch.allclose(apply(name, points(device='cuda')).cpu(), cpu, atol=1e-5)


@pytest.mark.parametrize('name', TRANSFORMS.names())
def test_seeded_generator_and_global_rng_reproduce(name):
    x = points()
    assert torch.equal(apply(name, x, seed=3), apply(name, x, seed=3))
    assert not torch.equal(apply(name, x, seed=3), apply(name, x, seed=4))
    transform = TRANSFORMS.get(name)()
    torch.manual_seed(7)
    first = transform(x)
    torch.manual_seed(7)
    assert torch.equal(first, transform(x))


def scale_and_shift(name, **kwargs):
    """(scale (B,1,3), shift (B,1,3)) drawn by an affine transform, read back from 0 and 1 inputs."""
    zeros, ones = torch.zeros(B, N, 3), torch.ones(B, N, 3)
    shift = apply(name, zeros, **kwargs)
    scale = apply(name, ones, **kwargs) - shift
    assert torch.allclose(shift, shift[:, :1].expand_as(shift)) and torch.allclose(scale, scale[:, :1].expand_as(scale))
    return scale[:, :1], shift[:, :1]


def test_scale_and_translate_ranges():
    scale, shift = scale_and_shift('ScaleAndTranslate')
    assert (scale >= 2 / 3).all() and (scale <= 3 / 2).all() and shift.abs().max() <= 0.2
    assert not torch.allclose(scale[..., 0], scale[..., 1])   # per axis


def test_scale_shift_is_isotropic():
    scale, shift = scale_and_shift('ScaleShift')
    assert torch.allclose(scale, scale[..., :1].expand_as(scale))
    assert (scale >= 0.8).all() and (scale <= 1.25).all() and shift.abs().max() <= 0.1


def test_rotate_up_keeps_y_and_norms_within_the_angle():
    x = points()
    out = apply('RotateUp', x, max_angle=5)
    assert torch.allclose(out[..., 1], x[..., 1]) and torch.allclose(out.norm(dim=-1), x.norm(dim=-1), atol=1e-5)
    angle = torch.atan2(out[..., 2], out[..., 0]) - torch.atan2(x[..., 2], x[..., 0])
    angle = torch.remainder(angle + math.pi, 2 * math.pi) - math.pi
    assert angle.abs().max() <= math.radians(5) + 1e-5
    assert torch.allclose(angle, angle[:, :1].expand_as(angle), atol=1e-4)


def test_jitter_is_clipped():
    x = points()
    noise = apply('Jitter', x, sigma=0.05, clip=0.02) - x
    assert noise.abs().max() <= 0.02 + 1e-6 and noise.abs().max() > 0.019
    assert (apply('Jitter', x, sigma=0.01, clip=1.0) - x).std().item() == pytest.approx(0.01, rel=0.1)


def test_flip_mirrors_whole_samples():
    x = points()
    out = apply('Flip', x)
    flipped = (out[..., 0] == -x[..., 0]).all(dim=1)
    assert torch.equal(out[..., 1:], x[..., 1:]) and ((out[..., 0] == x[..., 0]).all(dim=1) | flipped).all()
    assert torch.equal(apply('Flip', x, p=1.0, axis='z')[..., 2], -x[..., 2])


def test_random_dropout_replaces_points_by_the_first():
    x = points()
    out = apply('RandomDropout', x)
    kept, replaced = (out == x).all(-1), (out == x[:, :1]).all(-1)
    assert (kept | replaced).all() and replaced[:, 1:].any()


@pytest.mark.parametrize('name', sorted(CROPS))
def test_crops_keep_an_ordered_subset(name):
    x = points()
    out = apply(name, x, keep=0.5)
    for b in range(B):
        idx = [int(torch.nonzero((x[b] == p).all(-1))[0]) for p in out[b]]
        assert len(idx) == N // 2 and idx == sorted(set(idx))


def test_half_space_crop_is_separated_by_a_plane():
    x = points()
    out = apply('HalfSpaceCrop', x, seed=9)
    direction = torch.randn(B, 1, 3, generator=gen(9))
    kept, all_proj = (out * direction).sum(-1), (x * direction).sum(-1)
    assert torch.allclose(kept.max(1).values, all_proj.kthvalue(out.shape[1], dim=1).values)


def test_config_list_and_errors():
    filled = [{'NAME': 'Jitter', 'sigma': 0.02, 'clip': 0.05}]
    assert check_transforms_config([{'NAME': 'Jitter', 'sigma': 0.02}]) == filled
    assert build_transforms(None)(points()).equal(points()) and build_transforms([])(points()).equal(points())
    message = r"train_transforms\[0\]: unknown transform 'Jiter' \(did you mean 'Jitter'\?\); accepted: Flip"
    with pytest.raises(ConfigError, match=message):
        build_transforms([{'NAME': 'Jiter'}], 'train_transforms')
    with pytest.raises(ConfigError, match="unknown key 'sigm'.*accepted: clip, sigma"):
        build_transforms([{'NAME': 'Jitter', 'sigm': 0.1}])
    with pytest.raises(ConfigError, match="axis='w'; accepted: x, y, z"):
        apply('RotateUp', points(), axis='w')
    with pytest.raises(ValueError, match=r'expected points \(B,N,3\)'):
        apply('Jitter', torch.zeros(2, 5, 4))
