"""ScanObjectNN, NAMEs ``ScanObjectNN`` (OBJ_BG, OBJ_ONLY) and ``ScanObjectNN_hardest`` (PB_T50_RS).

The folder (config key ``ROOT`` as in the released configs, or ``DATA_PATH``) holds
``training_objectdataset[_augmentedrot_scale75].h5`` and ``test_objectdataset[...].h5``
with keys ``data`` (n, 2048, 3) and ``label`` (n,); a ``mask`` key is ignored.
No normalisation; point order shuffled for train (``shuffle_points``). ``N_POINTS``, which
the released MaskClu dataset yamls set (to 8192, while the files hold 2048 points per cloud),
is accepted and ignored: every stored point is returned, and ``npoints``, when set, is checked against them.
Item: ``('ScanObjectNN', 'sample', (points float32 tensor (2048, 3), label int))``.
"""
import os

import h5py
import numpy as np
import torch

from datasets.base import SPLIT_KEYS, PointCloudDataset
from datasets.build import DATASETS
from datasets.files import DatasetError, check_finite, check_shape, read_h5, require_dir
from utils.config import ConfigError

NUM_CLASSES = 15


def data_root(cfg):
    """The folder from ``ROOT`` or ``DATA_PATH`` (both accepted; they must agree) and its key."""
    given = {k: cfg.get(k) for k in ('ROOT', 'DATA_PATH') if cfg.get(k) is not None}
    if len(set(given.values())) > 1:
        raise ConfigError(f"{cfg.NAME}: ROOT={given['ROOT']!r} and DATA_PATH={given['DATA_PATH']!r} differ; set one")
    if not given:
        raise ConfigError(f"{cfg.NAME}: set ROOT (or DATA_PATH) to the folder of the h5 files")
    key = next(iter(given))
    return key, given[key]


def read_scan_file(path):
    """Points (n, P, 3) float32 and labels (n,) int64 of one h5 file, checked."""
    arrays = read_h5(path, ('data', 'label'), 'ScanObjectNN data/label arrays')
    data, label = arrays['data'], np.asarray(arrays['label']).reshape(-1)
    check_shape(data, (None, None, 3), path, "'data'")
    check_shape(label, (len(data),), path, "'label' (one per cloud)")
    check_finite(data, path)
    if len(label) and not (0 <= label.min() and label.max() < NUM_CLASSES):
        raise DatasetError(f"{path}: labels span [{label.min()}, {label.max()}], expected [0, {NUM_CLASSES})")
    return data.astype(np.float32), label.astype(np.int64)


@DATASETS.register('ScanObjectNN')
class ScanObjectNN(PointCloudDataset):
    """OBJ_BG (``main_split``) or OBJ_ONLY (``main_split_nobg``), chosen by the folder."""
    CONFIG_KEYS = {**SPLIT_KEYS, 'ROOT': None, 'DATA_PATH': None, 'N_POINTS': None}  # N_POINTS: ignored
    KIND = 'classification'
    FILES = {'train': 'training_objectdataset.h5', 'test': 'test_objectdataset.h5'}

    def __init__(self, cfg):
        super().__init__(cfg)
        key, folder = data_root(cfg)
        layout = f"ScanObjectNN h5 files {' and '.join(self.FILES.values())}"
        root = require_dir(folder, key, layout)
        self.list_files = [os.path.join(root, self.FILES[s]) for s in self.subsets()]
        parts = [read_scan_file(path) for path in self.list_files]
        self.points = np.concatenate([p for p, _ in parts])
        self.labels = np.concatenate([l for _, l in parts])
        self.check_stored_points(self.points.shape[1], root)

    def __len__(self):
        return len(self.points)

    def __getitem__(self, index):
        points = self.points[index]
        if self.shuffle_points:
            rng = self.item_rng(index)
            points = points[(np.random if rng is None else rng).permutation(len(points))]
        return 'ScanObjectNN', 'sample', (torch.from_numpy(np.ascontiguousarray(points)), int(self.labels[index]))


@DATASETS.register('ScanObjectNN_hardest')
class ScanObjectNNHardest(ScanObjectNN):
    """PB_T50_RS: the augmented (perturbed, rotated, scaled) variant in ``main_split``."""
    FILES = {'train': 'training_objectdataset_augmentedrot_scale75.h5',
             'test': 'test_objectdataset_augmentedrot_scale75.h5'}


def write_scan_file(path, points, labels, mask=None):
    """Write one h5 file (``data`` (n, P, 3) float32, ``label`` (n,), optional ``mask`` (n, P))."""
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    with h5py.File(path, 'w') as f:
        f.create_dataset('data', data=np.asarray(points, dtype=np.float32), track_times=False)
        f.create_dataset('label', data=np.asarray(labels, dtype=np.int64), track_times=False)
        if mask is not None:
            f.create_dataset('mask', data=np.asarray(mask, dtype=np.int64), track_times=False)
