"""ModelNet40 / ModelNet10 classification, NAME ``ModelNet``, read through the FPS cache.

Reads ``<DATA_PATH>/modelnet{NUM_CATEGORY}_{split}_{N_POINTS}pts_fps.dat`` (built from the raw
layout when missing, see ``datasets.modelnet_cache``). Item: every stored point, xyz
``pc_normalize``d, normals dropped unless ``USE_NORMALS``, point order shuffled for train (``shuffle_points``):
``('ModelNet', 'sample', (points float32 tensor (N_POINTS, 3 or 6), label int))``; labels collate to
int64 like every loader's, whatever integer type the cache stores (``labels``: int64 (n,)).
"""
import numpy as np
import torch

from datasets.base import SPLIT_KEYS, PointCloudDataset
from datasets.build import DATASETS
from datasets.files import require_dir
from datasets.modelnet_cache import ensure_cache, read_cache
from datasets.modelnet_raw import LAYOUT
from datasets.points import pc_normalize


def classification_item(points, label, use_normals, shuffle, source='a cloud', rng=None):
    """Shared by ModelNet and its few-shot folds: (N,6) array -> ('ModelNet', 'sample', (tensor, label));
    ``source`` names the file (and entry) in errors; ``rng`` shuffles (None: numpy's global RNG)."""
    points = points[:, :6] if use_normals else points[:, :3]
    points = np.concatenate([pc_normalize(points[:, :3], source), points[:, 3:]], axis=1)
    if shuffle:
        points = points[(np.random if rng is None else rng).permutation(len(points))]
    return 'ModelNet', 'sample', (torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32)), int(label))


@DATASETS.register('ModelNet')
class ModelNet(PointCloudDataset):
    """ModelNet clouds of ``N_POINTS`` FPS points with labels in [0, NUM_CATEGORY)."""
    CONFIG_KEYS = {**SPLIT_KEYS, 'DATA_PATH': 'data/ModelNet/modelnet40_normal_resampled',
                   'N_POINTS': 8192, 'NUM_CATEGORY': 40, 'USE_NORMALS': False}
    KIND = 'classification'

    def __init__(self, cfg):
        super().__init__(cfg)
        root = require_dir(cfg.DATA_PATH, 'DATA_PATH', LAYOUT)
        self.points, labels, self.sources, self.list_files = [], [], [], []
        for split in self.subsets():
            path = ensure_cache(root, cfg.NUM_CATEGORY, split, cfg.N_POINTS)
            points, split_labels = read_cache(path, cfg.N_POINTS, cfg.NUM_CATEGORY)
            self.check_stored_points(cfg.N_POINTS, path)
            self.points += points
            self.sources += [(path, i) for i in range(len(points))]
            self.list_files.append(path)
            labels.append(split_labels)
        self.labels = np.concatenate(labels)

    def __len__(self):
        return len(self.points)

    def __getitem__(self, index):
        path, entry = self.sources[index]
        return classification_item(self.points[index], self.labels[index], self.cfg.USE_NORMALS, self.shuffle_points,
                                   f'{path} entry {entry}', self.item_rng(index))
