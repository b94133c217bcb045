"""Batch augmentations of point clouds, built from a config list.

``build_transforms([{NAME: ScaleAndTranslate}, {NAME: Jitter, sigma: 0.01}, ...])`` returns a
callable ``f(points (B,N,3), generator=None) -> (B,N',3)`` applying them in order. Every
transform is vectorised over the batch and runs on the device of ``points``. Randomness
comes from ``generator`` when given (draws happen on the generator's device and are moved
to the points' device; pass a generator on that device to avoid copies), else from the
global torch RNG of the points' device. The up axis is y (ShapeNet / Point-MAE convention).
"""
import math

import torch

from extensions import furthest_point_sample, gather_points
from utils.config import ConfigError, check_keys
from utils.registry import Registry

TRANSFORMS = Registry('transform')
AXES = {'x': 0, 'y': 1, 'z': 2}


def _draw(fn, shape, points, generator, dtype=None):
    device = generator.device if generator is not None else points.device
    return fn(shape, generator=generator, device=device).to(points.device, dtype or points.dtype)


def uniform(shape, low, high, points, generator=None, dtype=None):
    """Uniform samples in [low, high) of ``shape`` on the device (and dtype) of ``points``."""
    return low + (high - low) * _draw(torch.rand, shape, points, generator, dtype)


def normal(shape, points, generator=None):
    """Standard normal samples of ``shape`` on the device / dtype of ``points``."""
    return _draw(torch.randn, shape, points, generator)


def axis_index(axis):
    if axis not in AXES:
        raise ConfigError(f"axis={axis!r}; accepted: {', '.join(AXES)}")
    return AXES[axis]


class Transform:
    """Base: keyword arguments are checked against ``CONFIG_KEYS`` (name -> default)."""
    CONFIG_KEYS = {}

    def __init__(self, **kwargs):
        self.__dict__.update(check_keys(kwargs, self.CONFIG_KEYS, type(self).__name__))

    def __call__(self, points, generator=None):
        if points.dim() != 3 or points.shape[-1] != 3:
            raise ValueError(f"{type(self).__name__}: expected points (B,N,3), got {tuple(points.shape)}")
        return self.apply(points, generator)

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={getattr(self, k)}' for k in self.CONFIG_KEYS)})"


@TRANSFORMS.register()
class ScaleAndTranslate(Transform):
    """Point-MAE: per-sample, per-axis scale U(scale_low, scale_high) and shift U(-r, r)."""
    CONFIG_KEYS = {'scale_low': 2 / 3, 'scale_high': 3 / 2, 'translate_range': 0.2}

    def apply(self, points, generator):
        B = points.shape[0]
        scale = uniform((B, 1, 3), self.scale_low, self.scale_high, points, generator)
        shift = uniform((B, 1, 3), -self.translate_range, self.translate_range, points, generator)
        return points * scale + shift


@TRANSFORMS.register()
class ScaleShift(Transform):
    """Part segmentation (PointNet++): isotropic scale U(scale_low, scale_high), shift U(-r, r) per axis."""
    CONFIG_KEYS = {'scale_low': 0.8, 'scale_high': 1.25, 'shift_range': 0.1}

    def apply(self, points, generator):
        B = points.shape[0]
        scale = uniform((B, 1, 1), self.scale_low, self.scale_high, points, generator)
        shift = uniform((B, 1, 3), -self.shift_range, self.shift_range, points, generator)
        return points * scale + shift


@TRANSFORMS.register()
class RotateUp(Transform):
    """Rotation about ``axis`` (default y, up) by an angle U(-max_angle, max_angle) degrees per sample."""
    CONFIG_KEYS = {'max_angle': 180.0, 'axis': 'y'}

    def apply(self, points, generator):
        up = axis_index(self.axis)
        i, j = (up + 1) % 3, (up + 2) % 3
        angle = uniform((points.shape[0], 1), -self.max_angle, self.max_angle, points, generator) * (math.pi / 180)
        cos, sin = torch.cos(angle), torch.sin(angle)
        out = points.clone()
        out[..., i] = cos * points[..., i] - sin * points[..., j]
        out[..., j] = sin * points[..., i] + cos * points[..., j]
        return out


@TRANSFORMS.register()
class Jitter(Transform):
    """Per-point Gaussian noise N(0, sigma^2) clipped to [-clip, clip]."""
    CONFIG_KEYS = {'sigma': 0.01, 'clip': 0.05}

    def apply(self, points, generator):
        noise = (self.sigma * normal(points.shape, points, generator)).clamp(-self.clip, self.clip)
        return points + noise


@TRANSFORMS.register()
class Flip(Transform):
    """Mirror ``axis`` (default x, a horizontal axis) with probability p per sample."""
    CONFIG_KEYS = {'axis': 'x', 'p': 0.5}

    def apply(self, points, generator):
        a = axis_index(self.axis)
        flip = uniform((points.shape[0], 1), 0, 1, points, generator) < self.p
        out = points.clone()
        out[..., a] = torch.where(flip, -points[..., a], points[..., a])
        return out


@TRANSFORMS.register()
class RandomDropout(Transform):
    """PointNet++ dropout: drop a U(0, max_ratio) share of points per sample, replacing them
    by the sample's first point so that N stays fixed."""
    CONFIG_KEYS = {'max_ratio': 0.875}

    def apply(self, points, generator):
        B, N, _ = points.shape
        ratio = uniform((B, 1), 0, self.max_ratio, points, generator)
        drop = uniform((B, N), 0, 1, points, generator) <= ratio
        return torch.where(drop.unsqueeze(-1), points[:, :1], points)


def keep_lowest(points, score, keep):
    """The round(keep*N) points (B,K,3) of lowest ``score`` (B,N) per sample, in their original order."""
    k = max(1, round(keep * points.shape[1]))
    idx = score.topk(k, dim=1, largest=False).indices.sort(dim=1).values
    return torch.gather(points, 1, idx.unsqueeze(-1).expand(-1, -1, points.shape[-1]))


@TRANSFORMS.register()
class SphereCrop(Transform):
    """Keep the round(keep*N) points nearest a random point of each cloud -> (B,K,3)."""
    CONFIG_KEYS = {'keep': 0.85}

    def apply(self, points, generator):
        B, N, _ = points.shape
        pick = (uniform((B,), 0, 1, points, generator, torch.float32) * N).long().clamp(max=N - 1)
        center = points[torch.arange(B, device=points.device), pick].unsqueeze(1)
        return keep_lowest(points, ((points - center) ** 2).sum(-1), self.keep)


@TRANSFORMS.register()
class HalfSpaceCrop(Transform):
    """ConClu crop: keep the round(keep*N) points on one side of a plane with a uniformly
    random normal (the plane sits at that quantile) -> (B,K,3)."""
    CONFIG_KEYS = {'keep': 0.85}

    def apply(self, points, generator):
        direction = normal((points.shape[0], 1, 3), points, generator)
        return keep_lowest(points, (points * direction).sum(-1), self.keep)


def fps_downsample(points, npoints):
    """Deterministic farthest point sampling from point 0 (Point-MAE's ``misc.fps``):
    points (B,N,3) -> (B,npoints,3); unchanged when N <= npoints. Loaders such as ModelNet
    return every stored point; evaluation brings the clouds to the model's size with this."""
    if points.shape[1] <= npoints:
        return points
    return gather_points(points, furthest_point_sample(points, npoints))


class Compose:
    """Apply transforms in order: ``(B,N,3) -> (B,N',3)``; one ``generator`` feeds them all."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, points, generator=None):
        for transform in self.transforms:
            points = transform(points, generator)
        return points

    def __repr__(self):
        return f"Compose({', '.join(map(repr, self.transforms))})"


def check_transforms_config(specs, where='transforms'):
    """Check a list of ``{NAME: ..., <kwargs>}``; returns it with defaults filled."""
    if specs is None:
        return []
    if not isinstance(specs, (list, tuple)):
        raise ConfigError(f"{where}: expected a list of {{NAME: ..., <kwargs>}}, found {specs!r}")
    checked = []
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict) or 'NAME' not in spec:
            raise ConfigError(f"{where}[{i}]: expected {{NAME: ..., <kwargs>}}; NAMEs: {', '.join(TRANSFORMS.names())}")
        kwargs = {k: v for k, v in spec.items() if k != 'NAME'}
        try:
            cls = TRANSFORMS.get(spec['NAME'])
        except KeyError as e:
            raise ConfigError(f"{where}[{i}]: {e.args[0]}") from None
        checked.append({'NAME': spec['NAME'], **check_keys(kwargs, cls.CONFIG_KEYS, f"{where}[{i}] {spec['NAME']}")})
    return checked


def build_transforms(specs, where='transforms'):
    """A ``Compose`` of the transforms a config list names (None or [] -> identity)."""
    return Compose(TRANSFORMS.get(spec.pop('NAME'))(**spec) for spec in check_transforms_config(specs, where))
