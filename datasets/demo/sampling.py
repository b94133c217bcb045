"""Sampling one object instance: build its parts, pose it, sample the surface, apply a sensor, normalise."""
import numpy as np

from datasets.demo.primitives import rotation, sample_parts
from datasets.demo.sensor import CAD, density_log_weights, jitter, weighted_subset

OVERSAMPLE = 3   # surface points drawn per point kept, so that the density can vary
STRETCH = (2 / 3, 3 / 2)   # range of the per-axis stretch of an instance


def instance_rng(seed, layout, category, index):
    """The RNG of one object: independent of every other object and of the data-set size."""
    return np.random.default_rng([seed, layout, category, index])


def object_id(rng):
    """A 32-hex-digit id like ShapeNet's model ids."""
    return ''.join(f'{int(x):016x}' for x in rng.integers(0, 2 ** 63, 2))


def sample_stretched(parts, n, stretch, rng):
    """``n`` points uniform by area on ``parts`` stretched by ``stretch`` (3,) along x, y, z, in random
    order: points (n,3), unit normals (n,3), part index (n,), and the stretched total area.

    Exact by rejection: a sample of the unstretched surface with unit normal m is kept with
    probability |m / stretch| * min(stretch), its area stretch relative to the largest one.
    """
    chunks, kept = [], 0
    while kept < n:
        points, normals, which = sample_parts(parts, 2 * n, rng)
        normals = normals / stretch   # the inverse transpose of the stretch, before normalising
        factor = np.linalg.norm(normals, axis=1)
        keep = rng.random(len(factor)) < factor * stretch.min()
        chunks.append((points[keep] * stretch, normals[keep] / factor[keep, None], which[keep], factor[keep]))
        kept += keep.sum()
    pick = rng.permutation(kept)[:n]   # samples come grouped by part and face: keep a random n
    points, normals, which, factor = (np.concatenate(x)[pick] for x in zip(*chunks))
    # kept samples follow factor * dA, so E[1 / factor] = A / integral(factor dA), and the stretched
    # area is prod(stretch) * integral(factor dA)
    area = sum(p.area() for p in parts) * stretch.prod() / np.mean(1 / factor)
    return points, normals, which, area


def posed_surface(category, rng, n):
    """``n`` exact-area surface samples of one random instance, stretched and posed, centred and
    scaled into the unit sphere: points (n,3), normals (n,3), part index into ``category.parts``
    (n,), and the surface area at that scale.

    The instance is stretched along x, y and z by independent factors in [2/3, 3/2] (log-uniform:
    overall proportions vary on top of each builder's own), which keeps the sampling exact by
    rejection: a sample is kept with probability proportional to the area stretch at its normal.
    The pose is a yaw within 10 degrees and a tilt within 3.
    """
    parts = category.build(rng)
    stretch = np.exp(rng.uniform(np.log(STRETCH[0]), np.log(STRETCH[1]), 3))
    points, normals, which, area = sample_stretched(parts, n, stretch, rng)
    pose = rotation('y', rng.uniform(-10, 10)) @ rotation('x', rng.uniform(-3, 3)) @ rotation('z', rng.uniform(-3, 3))
    points, normals = points @ pose.T, normals @ pose.T
    points -= points.mean(axis=0)
    scale = np.sqrt((points ** 2).sum(axis=1)).max()
    labels = np.array([category.parts.index(p.name) for p in parts])[which]
    return points / scale, normals, labels, area / scale ** 2


def sample_object(category, rng, n, sensor=CAD):
    """One random instance of ``category`` as a sensor sees it: points (n,3) in the unit sphere,
    unit normals (n,3), part index into ``category.parts`` (n,), in random order.

    The surface is sampled exactly by area (``OVERSAMPLE * n`` points), then ``n`` are kept
    with a non-uniform density and missing patches, jittered, and centred and scaled again so
    that the farthest point is at distance 1.
    """
    points, normals, labels, _ = posed_surface(category, rng, OVERSAMPLE * n)
    keep = weighted_subset(density_log_weights(points, sensor, rng), n, rng)
    points, normals, labels = jitter(points[keep], sensor, rng), normals[keep], labels[keep]
    points -= points.mean(axis=0)
    points /= np.sqrt((points ** 2).sum(axis=1)).max()
    return points.astype(np.float32), normals.astype(np.float32), labels
