"""Per-cloud numpy helpers of the loaders: normalisation, random subsets, farthest point sampling.

Randomness comes from numpy's global RNG, which ``utils.misc.seed_worker`` seeds in every
DataLoader worker (and ``seed_everything`` in the main process).
"""
import fpsample
import numpy as np

from datasets.files import DatasetError


def pc_normalize(xyz):
    """Centre (N,3) points on their mean and scale the farthest one to distance 1 (float32)."""
    xyz = xyz - xyz.mean(axis=0)
    radius = np.sqrt((xyz ** 2).sum(axis=1)).max()
    return (xyz / radius if radius > 0 else xyz).astype(np.float32)


def subset_indices(n, npoints, path, repeat=False, rng=None):
    """Indices (npoints,) of a random subset of ``n`` points, without replacement, drawn from
    ``rng`` (a ``np.random.Generator``; default numpy's global RNG).

    The rule when ``n < npoints``: with ``repeat`` every point is kept once and the rest
    are random repeats (what ShapeNetPart needs: its text files vary in size); without it
    a DatasetError names the file and both counts.
    """
    if n >= npoints:
        return (rng or np.random).permutation(n)[:npoints]
    if not repeat:
        raise DatasetError(f"{path}: cloud has {n} points, fewer than the {npoints} requested (npoints)")
    repeats = rng.integers(0, n, npoints - n) if rng is not None else np.random.randint(0, n, npoints - n)
    return np.concatenate([(rng or np.random).permutation(n), repeats])


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
