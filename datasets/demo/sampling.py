"""Sampling one object instance: build its parts, pose it, sample the surface, normalise."""
import numpy as np

from datasets.demo.primitives import rotation, sample_parts


def instance_rng(seed, layout, category, index):
    """The RNG of one object: independent of every other object and of the data-set size."""
    return np.random.default_rng([seed, layout, category, index])


def object_id(rng):
    """A 32-hex-digit id like ShapeNet's model ids."""
    return ''.join(f'{int(x):016x}' for x in rng.integers(0, 2 ** 63, 2))


def sample_object(category, rng, n):
    """One random instance of ``category``: points (n,3) in the unit sphere, unit normals (n,3),
    part index into ``category.parts`` (n,), in random order.

    The object gets a small random pose (yaw within 10 degrees, tilt within 3), is centred on
    its centroid and scaled so that its farthest point is at distance 1.
    """
    parts = category.build(rng)
    points, normals, which = sample_parts(parts, n, rng)
    pose = rotation('y', rng.uniform(-10, 10)) @ rotation('x', rng.uniform(-3, 3)) @ rotation('z', rng.uniform(-3, 3))
    points, normals = points @ pose.T, normals @ pose.T
    points -= points.mean(axis=0)
    points /= np.sqrt((points ** 2).sum(axis=1)).max()
    labels = np.array([category.parts.index(p.name) for p in parts])[which]
    order = rng.permutation(n)
    return points[order].astype(np.float32), normals[order].astype(np.float32), labels[order]
