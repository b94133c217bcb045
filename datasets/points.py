"""Per-cloud numpy helpers of the loaders: normalisation, random subsets, farthest point sampling.

Randomness comes from numpy's global RNG, which ``utils.misc.seed_worker`` seeds in every
DataLoader worker (and ``seed_everything`` in the main process).
"""
import fpsample
import numpy as np

from datasets.files import DatasetError


def pc_normalize(xyz, source='a cloud'):
    """Centre (N,3) points on their mean and scale the farthest one to distance 1 (float32).

    Computed in the input's precision (bit-identical to Point-MAE's ``pc_normalize``); when that
    overflows (finite float32 coordinates beyond ~1e19 square to inf, and every point would become
    0), again in float64. A cloud that still cannot be normalised (all points coincide, or
    coordinates too large even for float64) is a ``DatasetError`` naming ``source`` (the file).
    """
    out = _normalized(xyz)
    if out is None:
        out = _normalized(np.asarray(xyz, dtype=np.float64))
    if out is None:
        wide = np.asarray(xyz, dtype=np.float64)
        with np.errstate(over='ignore', invalid='ignore'):
            spread = float(np.ptp(wide, axis=0).max()) if len(wide) else 0.0
        reason = (f'all {len(wide)} points coincide' if spread == 0 else
                  f'coordinates too large: largest |coordinate| {float(np.abs(wide).max()):.3g}')
        raise DatasetError(f"{source}: the cloud cannot be normalised to the unit sphere ({reason})")
    return out.astype(np.float32)


def _normalized(xyz):
    """``xyz`` centred and scaled to radius 1 in its own dtype, or None if that is not finite
    or the radius is 0."""
    with np.errstate(over='ignore', invalid='ignore', divide='ignore'):
        centred = xyz - xyz.mean(axis=0)
        radius = np.sqrt((centred ** 2).sum(axis=1)).max() if len(xyz) else 0.0
        if not np.isfinite(radius) or radius <= 0:
            return None
        out = centred / radius
    return out if np.isfinite(out).all() else None


def subset_indices(n, npoints, path, repeat=False, rng=None):
    """Indices (npoints,) of a random subset of ``n`` points, without replacement.

    The rule when ``n < npoints``: with ``repeat`` every point is kept once and the rest
    are random repeats (what ShapeNetPart needs: its text files vary in size); without it
    a DatasetError names the file and both counts. ``rng``: a ``np.random.Generator``
    (evaluation items, ``PointCloudDataset.item_rng``), else numpy's global RNG.
    """
    permutation = np.random.permutation if rng is None else rng.permutation
    if n >= npoints:
        return permutation(n)[:npoints]
    if not repeat:
        raise DatasetError(f"{path}: cloud has {n} points, fewer than the {npoints} requested (npoints)")
    extra = np.random.randint(0, n, npoints - n) if rng is None else rng.integers(0, n, npoints - n)
    return np.concatenate([permutation(n), extra])


def fps_indices(xyz, npoint):
    """Farthest point sampling of (N,3) points -> indices (npoint,) int64, deterministic.

    Uses fpsample's compiled bucket FPS (QuickFPS): the exact FPS sequence, started from a
    point the algorithm picks deterministically from the cloud (not always index 0).
    """
    n = len(xyz)
    if npoint > n:
        raise ValueError(f"cannot pick {npoint} of {n} points")
    if n < 2:
        return np.zeros(npoint, dtype=np.int64)
    height = int(np.clip(np.log2(n), 1, 5))
    return fpsample.bucket_fps_kdline_sampling(np.ascontiguousarray(xyz, dtype=np.float32),
                                               npoint, height, start_idx=0).astype(np.int64)
