"""ModelNet raw layout (``modelnet40_normal_resampled``): reader and writer.

``<root>/modelnet{K}_shape_names.txt`` (class index = line order), ``modelnet{K}_{train,test}.txt``
(ids like ``night_stand_0012``; class = id without the trailing ``_NNNN``), and
``<root>/<class>/<id>.txt`` with comma-separated rows ``x,y,z,nx,ny,nz``. K is NUM_CATEGORY.
"""
import os

import numpy as np

from datasets.files import DatasetError, check_finite, check_shape, read_lines, read_text_array, write_text_rows

LAYOUT = ("the ModelNet layout: modelnet{K}_shape_names.txt, modelnet{K}_{train,test}.txt and "
          "<class>/<id>.txt rows 'x,y,z,nx,ny,nz' (as in modelnet40_normal_resampled), "
          "or the cache files modelnet{K}_{split}_{N}pts_fps.dat")
ROW_FORMAT = ','.join(['%.6f'] * 6)


def names_path(root, num_category):
    return os.path.join(root, f'modelnet{num_category}_shape_names.txt')


def class_of(shape_id):
    """``'night_stand_0012'`` -> ``'night_stand'``."""
    return shape_id.rsplit('_', 1)[0]


def read_shape_list(root, num_category, split):
    """Raw file paths and class labels of one split: (list of str, list of int)."""
    names = read_lines(names_path(root, num_category), 'class names, one per line')
    index = {name: i for i, name in enumerate(names)}
    list_file = os.path.join(root, f'modelnet{num_category}_{split}.txt')
    paths, labels = [], []
    for shape_id in read_lines(list_file, 'shape ids, one per line'):
        if class_of(shape_id) not in index:
            raise DatasetError(f"{list_file}: id {shape_id!r} names class {class_of(shape_id)!r}, "
                               f"which is not in {names_path(root, num_category)}")
        paths.append(os.path.join(root, class_of(shape_id), f'{shape_id}.txt'))
        labels.append(index[class_of(shape_id)])
    return paths, labels


def read_raw_shape(path, min_points):
    """One raw shape (n, 6) float32, n >= ``min_points``; bad content names the file."""
    points = read_text_array(path, delimiter=',', what="rows 'x,y,z,nx,ny,nz'")
    check_shape(points, (None, 6), path, 'rows x,y,z,nx,ny,nz')
    check_finite(points, path)
    if len(points) < min_points:
        raise DatasetError(f"{path}: {len(points)} points, fewer than the {min_points} "
                           f"the cache needs (N_POINTS)")
    return points


def shape_id(class_name, number):
    """``('night_stand', 12)`` -> ``'night_stand_0012'``."""
    return f'{class_name}_{number:04d}'


def write_raw_shape(root, shape_id, points):
    """Write ``<root>/<class>/<shape_id>.txt`` with rows ``x,y,z,nx,ny,nz`` ((n, 6) array)."""
    os.makedirs(os.path.join(root, class_of(shape_id)), exist_ok=True)
    write_text_rows(os.path.join(root, class_of(shape_id), f'{shape_id}.txt'), points, ROW_FORMAT)


def write_shape_lists(root, class_names, ids_by_split, num_category=40):
    """Write ``modelnet{K}_shape_names.txt`` and one ``modelnet{K}_<split>.txt`` per entry of
    ``ids_by_split`` (split -> list of shape ids)."""
    os.makedirs(root, exist_ok=True)
    write_text_rows(names_path(root, num_category), np.array(class_names)[:, None], '%s')
    for split, ids in ids_by_split.items():
        write_text_rows(os.path.join(root, f'modelnet{num_category}_{split}.txt'),
                        np.array(ids, dtype=str).reshape(-1, 1), '%s')


def write_raw_layout(root, class_names, splits, num_category=40):
    """Write the layout; ``splits`` maps 'train'/'test' to lists of (class index, (n,6) array).

    Ids are ``<class>_<NNNN>``, numbered per class through the splits in the order given.
    """
    counts = [0] * len(class_names)
    ids_by_split = {}
    for split, shapes in splits.items():
        ids_by_split[split] = []
        for label, points in shapes:
            counts[label] += 1
            ids_by_split[split].append(shape_id(class_names[label], counts[label]))
            write_raw_shape(root, ids_by_split[split][-1], points)
    write_shape_lists(root, class_names, ids_by_split, num_category)
