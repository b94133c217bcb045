"""ShapeNetPart HDF5 layout (``shapenet_part_seg_hdf5_data``): reader.

Files ``*train*.h5``, ``*val*.h5``, ``*test*.h5`` with keys ``data`` (n, 2048, 3),
``label`` (n, 1) category index and ``pid`` (n, 2048) global part id; opened read-only.
"""
import glob
import os

import numpy as np

from datasets.files import DatasetError, check_finite, check_shape, read_h5
from datasets.shapenetpart_labels import CATEGORY_OF_PART, NUM_CATEGORIES, NUM_PARTS


def split_files(root, subset):
    files = sorted(glob.glob(os.path.join(root, f'*{subset}*.h5')))
    if not files:
        raise DatasetError(f"{root}: no *{subset}*.h5 files (ShapeNetPart HDF5 layout)")
    return files


def read_part_file(path):
    """Checked arrays of one file: data (n,P,3) float32, label (n,) int64, pid (n,P) int64."""
    arrays = read_h5(path, ('data', 'label', 'pid'), 'ShapeNetPart data/label/pid arrays')
    data, label, pid = arrays['data'], np.asarray(arrays['label']).reshape(-1), arrays['pid']
    check_shape(data, (None, None, 3), path, "'data'")
    check_shape(label, (len(data),), path, "'label' (one per cloud)")
    check_shape(pid, data.shape[:2], path, "'pid' (one per point)")
    check_finite(data, path)
    if len(label) and not (label.min() >= 0 and label.max() < NUM_CATEGORIES):
        raise DatasetError(f"{path}: categories span [{label.min()}, {label.max()}], expected [0, {NUM_CATEGORIES})")
    if pid.size and not (pid.min() >= 0 and pid.max() < NUM_PARTS):
        raise DatasetError(f"{path}: part ids span [{pid.min()}, {pid.max()}], expected [0, {NUM_PARTS})")
    wrong = np.flatnonzero((CATEGORY_OF_PART[pid] != label[:, None]).any(axis=1))
    if len(wrong):
        raise DatasetError(f"{path}: cloud {wrong[0]} has part ids outside its category's ({len(wrong)} clouds)")
    return data.astype(np.float32), label.astype(np.int64), pid.astype(np.int64)


class H5Parts:
    """All clouds of some splits in memory; ``get(i)`` -> (xyz (P,3), category, parts (P,), path)."""

    def __init__(self, root, subsets):
        files = [f for subset in subsets for f in split_files(root, subset)]
        arrays = [read_part_file(f) for f in files]
        self.data, self.label, self.pid = (np.concatenate(a) for a in zip(*arrays))
        self.paths = [f for f, (d, _, _) in zip(files, arrays) for _ in range(len(d))]

    def __len__(self):
        return len(self.data)

    def get(self, i):
        return self.data[i], int(self.label[i]), self.pid[i], self.paths[i]
