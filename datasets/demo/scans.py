"""ScanObjectNN-like scans of demo objects: partial views, sensor noise, background clutter.

A scan keeps what a sensor would see: points facing a random viewpoint (back faces are
mostly lost), no underside, and a random side cut away as if occluded by another object.
The background variant adds a floor patch, clutter boxes and sometimes a wall; the hard
variant (PB_T50_RS-like) also shifts the crop box by up to half its size (cutting the
object), rotates about the up axis and rescales.
"""
import math

import numpy as np

from datasets.demo.primitives import Box, Part, rotation, sample_parts
from datasets.demo.sampling import sample_object

SCAN_POINTS = 2048


def visible_points(points, normals, rng):
    """The subset (m,3) of an object's surface points a single random view would capture."""
    view = rotation('y', rng.uniform(0, 360)) @ np.array([0, math.sin(math.radians(rng.uniform(10, 40))), 1.0])
    facing = normals @ view / np.linalg.norm(view)
    keep = (facing > -0.1) | (rng.random(len(points)) < 0.15)
    keep &= (normals[:, 1] > -0.7) | (rng.random(len(points)) < 0.1)
    cut = rotation('y', rng.uniform(0, 360)) @ np.array([1.0, 0, 0])
    keep &= points @ cut < np.quantile(points @ cut, rng.uniform(0.8, 1.0))
    return points[keep]


def background(floor_y, n, rng):
    """(n,3) clutter points: floor patch, 1-3 boxes standing on it, sometimes a wall."""
    half = rng.uniform(1.1, 1.5)
    parts = [Part(Box(2 * half, 0.0, 2 * half), 'floor', (0, floor_y, 0))]
    for _ in range(rng.integers(1, 4)):
        size = rng.uniform(0.15, 0.45, 3)
        angle = rng.uniform(0, 2 * math.pi)
        dist = rng.uniform(0.7, 1.2)
        at = (dist * math.cos(angle), floor_y + size[1] / 2, dist * math.sin(angle))
        parts.append(Part(Box(*size), 'clutter', at, rotation('y', rng.uniform(0, 90))))
    if rng.random() < 0.4:
        parts.append(Part(Box(2 * half, 1.5, 0.0), 'wall', (0, floor_y + 0.75, -half)))
    return sample_parts(parts, n, rng)[0]


def choose(points, n, rng):
    """``n`` rows of ``points``, without replacement when there are enough."""
    return points[rng.choice(len(points), n, replace=len(points) < n)]


def scan_variants(category, rng):
    """One object scanned three ways: 'obj_only', 'obj_bg', 'hardest' -> (points (2048,3), mask (2048,))."""
    points, normals, _ = sample_object(category, rng, 4 * SCAN_POINTS)
    spin = rotation('y', rng.uniform(0, 360))
    seen = visible_points(points @ spin.T, normals @ spin.T, rng)
    n_bg = int(SCAN_POINTS * rng.uniform(0.15, 0.35))
    obj, bg = choose(seen, SCAN_POINTS - n_bg, rng), background(seen[:, 1].min(), 3 * n_bg, rng)
    scene = np.concatenate([obj, choose(bg, n_bg, rng)])
    mask = np.repeat([1, 0], [len(obj), n_bg])
    variants = {'obj_only': (choose(seen, SCAN_POINTS, rng), np.ones(SCAN_POINTS, dtype=np.int64)),
                'obj_bg': (scene, mask), 'hardest': hard_crop(seen, bg, rng)}
    noisy = {}
    for name, (pts, m) in variants.items():
        order = rng.permutation(SCAN_POINTS)
        noisy[name] = ((pts + rng.normal(0, 0.005, pts.shape))[order].astype(np.float32), m[order])
    return noisy


def hard_crop(obj, bg, rng):
    """PB_T50_RS-like: crop box shifted up to half its size, random yaw, scale in [0.75, 1]."""
    both = np.concatenate([obj, bg])
    mask = np.repeat([1, 0], [len(obj), len(bg)])
    shift = rng.uniform(-0.5, 0.5, 3) * [1, 0.3, 1]
    inside = (np.abs(both - shift) <= 1.0).all(axis=1)
    pick = rng.choice(np.flatnonzero(inside), SCAN_POINTS, replace=inside.sum() < SCAN_POINTS)
    pts = (both[pick] - shift) @ rotation('y', rng.uniform(0, 360)).T * rng.uniform(0.75, 1.0)
    return pts, mask[pick]
