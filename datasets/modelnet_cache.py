"""ModelNet FPS cache ``modelnet{K}_{split}_{N}pts_fps.dat``: reader, and builder from the raw layout.

The cache is a pickle ``[list of float32 (N, 6) arrays, list of int32 (1,) label arrays]``
(what Point-BERT distributes, and what this builder writes, so the files interchange); labels
are read back as int64, the one label dtype of every loader. A missing cache is built from
the raw files: each shape is reduced to N points by a compiled farthest point sampling,
shapes in parallel worker processes, with a progress bar; the file is written atomically
(temporary file + rename), by rank 0 only under DDP.
"""
import functools
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch.distributed
from tqdm import tqdm

from datasets.files import DEMO_HINT, DatasetError, check_finite, check_shape, read_pickle, write_pickle
from datasets.modelnet_raw import LAYOUT, names_path, read_raw_shape, read_shape_list
from datasets.points import fps_indices
from utils import dist

MIN_SHAPES_FOR_PROCESSES = 64


def cache_path(root, num_category, split, n_points):
    return os.path.join(root, f'modelnet{num_category}_{split}_{n_points}pts_fps.dat')


def read_cache(path, n_points, num_classes):
    """Points (list of (n_points, 6) float32) and labels (int64 array (n,)) of a cache file;
    the labels may be stored as (1,) arrays or scalars of any integer dtype."""
    data = read_pickle(path, 'a ModelNet cache [points list, labels list]')
    if not (isinstance(data, (list, tuple)) and len(data) == 2 and len(data[0]) == len(data[1])):
        raise DatasetError(f"{path}: expected a pickled [list of (N, 6) point arrays, list of labels] "
                           f"of equal length")
    labels = np.array([np.asarray(label).reshape(-1)[0] for label in data[1]], dtype=np.int64)
    for i, (points, label) in enumerate(zip(data[0], labels)):
        check_shape(points, (n_points, 6), path, f'entry {i}')
        check_finite(points, path, f'entry {i} coordinates')
        if not 0 <= label < num_classes:
            raise DatasetError(f"{path}: entry {i} has label {label}, outside [0, {num_classes})")
    return [np.asarray(p, dtype=np.float32) for p in data[0]], labels


def fps_shape(path, n_points):
    """One raw shape reduced to (n_points, 6) float32 by FPS on its xyz."""
    points = read_raw_shape(path, n_points)
    return points[fps_indices(points[:, :3], n_points)]


def _reduce_all(paths, n_points, workers):
    """Yield the reduced shapes in order; worker processes when there are many shapes."""
    work = functools.partial(fps_shape, n_points=n_points)
    if workers <= 1 or len(paths) < MIN_SHAPES_FOR_PROCESSES:
        yield from map(work, paths)
        return
    method = 'fork' if 'fork' in multiprocessing.get_all_start_methods() else 'spawn'
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as pool:
        yield from pool.map(work, paths, chunksize=4)


def build_cache(root, num_category, split, n_points, workers=None):
    """Build ``cache_path(...)`` from the raw layout under ``root``; returns the path."""
    path = cache_path(root, num_category, split, n_points)
    if not os.path.isfile(names_path(root, num_category)):
        raise DatasetError(f"{path} is missing and so is the raw layout to build it from "
                           f"({names_path(root, num_category)}). Expected {LAYOUT}. {DEMO_HINT}")
    paths, labels = read_shape_list(root, num_category, split)
    workers = workers or min(os.cpu_count() or 1, 16)
    bar = tqdm(_reduce_all(paths, n_points, workers), total=len(paths), unit='shape',
               desc=f'building {os.path.basename(path)}')
    points = list(bar)
    write_pickle(path, [points, [np.array([label], dtype=np.int32) for label in labels]])
    return path


def ensure_cache(root, num_category, split, n_points):
    """Path of the cache, built first when missing (rank 0 builds, the others wait)."""
    path = cache_path(root, num_category, split, n_points)
    if not os.path.isfile(path) and dist.get_rank() == 0:
        build_cache(root, num_category, split, n_points)
    if dist.is_dist():
        torch.distributed.barrier()
    return path
