"""ScanObjectNN-like scans of demo objects: one viewpoint, self-occlusion, clutter, sensor noise.

A scene puts the object (any yaw) on a floor among clutter (boxes and other demo objects)
and sometimes before a wall, samples every surface at one density, and keeps what a single
camera sees first (a z-buffer: back faces, undersides and whatever the clutter hides are
lost). From that one scan: OBJ_ONLY keeps the object's points, OBJ_BG everything inside the
object's (slightly enlarged) bounding box, and the PB_T50_RS-like variant shifts that box by
up to half its size, then rotates about the up axis and rescales. Each variant then gets
the sensor's density falloff, missing patches and noise, and 2048 points.
"""
import math

import numpy as np

from datasets.demo.parts import panel
from datasets.demo.primitives import Box, Frustum, Part, rotation, sample_parts
from datasets.demo.sampling import posed_surface
from datasets.demo.sensor import SCAN, density_log_weights, first_surface, jitter, weighted_subset

SCAN_POINTS = 2048
SURFACE_POINTS = 6144   # object surface samples before the z-buffer
PIXEL = 0.03            # z-buffer pixel, in units of the object radius


def clutter(rng, floor_y, categories, exclude, density):
    """(k,3) points of 1-3 clutter items on the floor around the object: boxes, or other demo
    objects (never the scanned category) scaled to 0.3-0.8 of its size."""
    points = []
    for _ in range(rng.integers(1, 4)):
        angle, dist = rng.uniform(0, 2 * math.pi), rng.uniform(0.9, 1.5)
        at = np.array([dist * math.cos(angle), floor_y, dist * math.sin(angle)])
        if rng.random() < 0.5:
            size = rng.uniform(0.15, 0.6, 3)
            part = panel(*size, (0, size[1] / 2, 0), 'clutter', rotation('y', rng.uniform(0, 90)))
            pts = sample_parts([part], int(density * part.area()), rng)[0]
        else:
            other = categories[rng.choice([i for i, c in enumerate(categories) if c is not exclude])]
            pts, _, _, area = posed_surface(other, rng, 2048)
            scale = rng.uniform(0.3, 0.8)
            pts = pts[:max(int(density * area * scale ** 2), 1)] * scale
            pts[:, 1] -= pts[:, 1].min()
        points.append(pts @ rotation('y', rng.uniform(0, 360)).T + at)
    return np.concatenate(points)


def scene_scan(category, categories, rng):
    """One single-view scan of a scene around an instance of ``category``: points (m,3), object
    mask (m,), the object's visible points' bounding box (lo (3,), hi (3,)), and the view."""
    obj, _, _, area = posed_surface(category, rng, SURFACE_POINTS)
    obj = obj @ rotation('y', rng.uniform(0, 360)).T
    density, floor_y = SURFACE_POINTS / area, obj[:, 1].min()
    azimuth, elevation = rng.uniform(0, 2 * math.pi), math.radians(rng.uniform(10, 50))
    view = np.array([math.cos(azimuth) * math.cos(elevation), math.sin(elevation),
                     math.sin(azimuth) * math.cos(elevation)])
    half = rng.uniform(1.2, 1.6)   # the floor disc: as far as a shifted crop box can reach
    floor = Part(Frustum(half, half, 0.0, bottom=False), 'floor', (0, floor_y, 0))
    background = [sample_parts([floor], int(density * floor.area()), rng)[0], clutter(rng, floor_y, categories,
                                                                                     category, density)]
    if rng.random() < 0.4:   # a wall behind the object, facing the camera
        back = -rng.uniform(0.8, 1.3) * np.array([math.cos(azimuth), 0, math.sin(azimuth)])
        wall = Part(Box(2 * half, 1.6, 0.06), 'wall', back + [0, floor_y + 0.8, 0],
                    rotation('y', 90 - math.degrees(azimuth)))
        background.append(sample_parts([wall], int(density * wall.area() / 2), rng)[0])
    points = np.concatenate([obj, *background])
    is_object = np.arange(len(points)) < len(obj)
    seen = first_surface(points, view, PIXEL, 0.6 * PIXEL)
    points, is_object = points[seen], is_object[seen]
    return points, is_object, (points[is_object].min(axis=0), points[is_object].max(axis=0)), view


def finish(points, mask, view, rng):
    """2048 of ``points`` with the scan sensor's density and noise, centred and scaled into the
    unit sphere: (2048,3) float32 and the object mask (2048,) int64."""
    log_w = density_log_weights(points / np.abs(points).max(), SCAN, rng) + 0.5 * (points @ view)   # nearer: denser
    keep = weighted_subset(log_w, SCAN_POINTS, rng)
    if len(keep) < SCAN_POINTS:
        keep = np.concatenate([keep, rng.choice(keep, SCAN_POINTS - len(keep))])
    points = jitter(points[keep], SCAN, rng)
    points -= points.mean(axis=0)
    points /= np.sqrt((points ** 2).sum(axis=1)).max()
    return points.astype(np.float32), mask[keep].astype(np.int64)


def scan_variants(category, categories, rng):
    """One scan of an instance of ``category``, three ways: 'obj_only', 'obj_bg', 'hardest' ->
    (points (2048,3) float32, object mask (2048,) int64); ``categories`` supply the clutter."""
    points, is_object, (lo, hi), view = scene_scan(category, categories, rng)
    margin = (hi - lo) * rng.uniform(0.05, 0.15)
    lo, hi = lo - margin, hi + margin
    in_box = ((points >= lo) & (points <= hi)).all(axis=1)
    shift = rng.uniform(-0.5, 0.5, 3) * (hi - lo) * [1, 0.5, 1]
    in_shifted = ((points >= lo + shift) & (points <= hi + shift)).all(axis=1)
    if in_shifted.sum() < 64:   # a shift off into empty space: keep the unshifted box
        in_shifted = in_box
    hard_pose = rotation('y', rng.uniform(0, 360))
    variants = {'obj_only': (points[is_object], is_object[is_object], view),
                'obj_bg': (points[in_box], is_object[in_box], view),
                'hardest': (points[in_shifted] @ hard_pose.T, is_object[in_shifted], hard_pose @ view)}
    out = {name: finish(pts, mask, v, rng) for name, (pts, mask, v) in variants.items()}
    pts, mask = out['hardest']
    out['hardest'] = (pts * np.float32(rng.uniform(0.75, 1.0)), mask)
    return out
