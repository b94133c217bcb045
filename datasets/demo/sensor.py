"""What a sensor does to an exactly sampled surface: non-uniform density, missing patches,
depth noise, and (for scans) self-occlusion seen from one viewpoint.

All functions are vectorised over points; randomness comes from the caller's Generator.
"""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Sensor:
    """Ranges the per-object sensor settings are drawn from.

    ``falloff``: the largest density gradient (density ratio up to exp(2 falloff) across the
    object, along a random direction); ``holes``: the most missing patches (each a ball of
    radius 10-25 % of the object's, kept at 3 % density); ``noise``: (low, high) standard
    deviation of the Gaussian jitter, relative to the object radius.
    """
    falloff: float
    holes: int
    noise: tuple


CAD = Sensor(falloff=1.2, holes=3, noise=(0.0, 0.008))   # ShapeNet-, ModelNet-, ShapeNetPart-like clouds
SCAN = Sensor(falloff=1.0, holes=3, noise=(0.004, 0.012))  # ScanObjectNN-like scans


def weighted_subset(log_weights, n, rng):
    """Indices of ``n`` of the points drawn without replacement with probability proportional
    to ``exp(log_weights)`` (Gumbel top-k), in random order (all of them when there are fewer)."""
    keys = log_weights + rng.gumbel(size=len(log_weights))
    if n >= len(keys):
        return rng.permutation(len(keys))
    return rng.permutation(np.argpartition(-keys, n - 1)[:n])


def density_log_weights(points, sensor, rng):
    """Log-density (m,) of one random sensor setting over ``points`` (m,3) in the unit sphere:
    a gradient along a random direction and up to ``sensor.holes`` missing patches."""
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    log_w = rng.uniform(0, sensor.falloff) * (points @ direction)
    for _ in range(rng.integers(0, sensor.holes + 1)):
        center = points[rng.integers(len(points))]
        inside = ((points - center) ** 2).sum(axis=1) < rng.uniform(0.1, 0.25) ** 2
        log_w[inside] += np.log(0.03)
    return log_w


def jitter(points, sensor, rng):
    """Points plus isotropic Gaussian noise of a standard deviation drawn from ``sensor.noise``."""
    return points + rng.normal(0, rng.uniform(*sensor.noise), points.shape)


def first_surface(points, view, pixel, tolerance):
    """Mask (m,) of the points an orthographic camera looking along ``-view`` sees first:
    per pixel of size ``pixel`` on the image plane, those within ``tolerance`` of the nearest."""
    view = view / np.linalg.norm(view)
    side = np.cross(view, [0.0, 1.0, 0.0])
    side = side / np.linalg.norm(side) if np.linalg.norm(side) > 1e-6 else np.array([1.0, 0, 0])
    up = np.cross(side, view)
    u, v, depth = points @ side, points @ up, -(points @ view)
    iu, iv = np.floor((u - u.min()) / pixel).astype(np.int64), np.floor((v - v.min()) / pixel).astype(np.int64)
    key = iu * (iv.max() + 1) + iv
    order = np.lexsort((depth, key))
    first = np.r_[True, key[order][1:] != key[order][:-1]]
    nearest = np.empty(key.max() + 1)
    nearest[key[order][first]] = depth[order][first]
    return depth <= nearest[key] + tolerance
