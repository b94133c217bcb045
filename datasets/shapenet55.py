"""ShapeNet-55 (pre-training), NAME ``ShapeNet``: reader and writer of the Point-BERT layout.

Layout: ``<DATA_PATH>/{train,test}.txt`` list ``<synset>-<model_id>.npy`` names, one per
line; ``<PC_PATH>/<synset>-<model_id>.npy`` holds a float array (8192, 3).
Item: a random ``npoints`` of the stored points (without replacement; a file with fewer
points is an error naming it), then ``pc_normalize``:
``(taxonomy_id: str, model_id: str, points: float32 tensor (npoints, 3))``.
"""
import os

import numpy as np
import torch

from datasets.base import SPLIT_KEYS, PointCloudDataset
from datasets.build import DATASETS
from datasets.files import (DatasetError, check_finite, check_shape, read_lines, read_npy,
                            require_dir, write_text_rows)
from datasets.points import pc_normalize, subset_indices
from utils.config import ConfigError

LIST_LAYOUT = "ShapeNet-55 split lists train.txt and test.txt (lines '<synset>-<model_id>.npy')"
PC_LAYOUT = "ShapeNet-55 clouds '<synset>-<model_id>.npy', each a float array (8192, 3)"


def split_name(name):
    """``'02691156-1a2b.npy'`` -> ``('02691156', '1a2b')``."""
    stem = name[:-4] if name.endswith('.npy') else name
    taxonomy_id, _, model_id = stem.partition('-')
    return taxonomy_id, model_id


@DATASETS.register('ShapeNet')
class ShapeNet(PointCloudDataset):
    """ShapeNet-55 clouds. ``N_POINTS`` is the stored count (kept for Point-MAE configs).

    ``whole: true`` lists the test clouds, then the train clouds, in the order of Point-MAE's
    and the released MaskClu's loaders (they prepend test.txt), so a seed draws the same
    clouds as there.
    """
    CONFIG_KEYS = {**SPLIT_KEYS, 'DATA_PATH': 'data/ShapeNet55-34/ShapeNet-55',
                   'PC_PATH': 'data/ShapeNet55-34/shapenet_pc', 'N_POINTS': 8192}
    KIND = 'shapes'

    def subsets(self):
        return ('test', 'train') if self.cfg.get('whole') else super().subsets()

    def __init__(self, cfg):
        super().__init__(cfg)
        if not self.npoints:
            raise ConfigError("ShapeNet: set npoints (points per item, e.g. 1024)")
        list_dir = require_dir(cfg.DATA_PATH, 'DATA_PATH', LIST_LAYOUT)
        self.pc_dir = require_dir(cfg.PC_PATH, 'PC_PATH', PC_LAYOUT)
        self.list_files = [os.path.join(list_dir, f'{s}.txt') for s in self.subsets()]
        self.names = [n for path in self.list_files for n in read_lines(path)]
        missing = [n for n in self.names if not os.path.isfile(os.path.join(self.pc_dir, n))]
        if missing:
            raise DatasetError(f"{len(missing)} clouds listed in {list_dir} are missing from PC_PATH "
                               f"{self.pc_dir}, e.g. {os.path.join(self.pc_dir, missing[0])}")

    def __len__(self):
        return len(self.names)

    def __getitem__(self, index):
        path = os.path.join(self.pc_dir, self.names[index])
        points = read_npy(path)
        check_shape(points, (None, 3), path, 'cloud')
        check_finite(points, path)
        pick = subset_indices(len(points), self.npoints, path, rng=self.item_rng(index))
        points = pc_normalize(points[pick], path)
        taxonomy_id, model_id = split_name(self.names[index])
        return taxonomy_id, model_id, torch.from_numpy(points)


def cloud_name(synset, model_id):
    """``('02691156', '1a2b')`` -> ``'02691156-1a2b.npy'`` (the taxonomy id must not contain '-')."""
    return f'{synset}-{model_id}.npy'


def write_cloud(pc_dir, name, points):
    """Write one cloud ``<pc_dir>/<name>`` as a float32 (N, 3) array."""
    np.save(os.path.join(pc_dir, name), np.asarray(points, dtype=np.float32))


def write_split_list(list_dir, split, names):
    """Write ``<list_dir>/<split>.txt``, one cloud name per line."""
    write_text_rows(os.path.join(list_dir, f'{split}.txt'), np.array(names, dtype=str).reshape(-1, 1), '%s')


def write_shapenet55(list_dir, pc_dir, splits):
    """Write the layout: ``splits`` maps 'train'/'test' to lists of (synset, model_id, (N,3) array)."""
    os.makedirs(list_dir, exist_ok=True)
    os.makedirs(pc_dir, exist_ok=True)
    for split, shapes in splits.items():
        names = [cloud_name(synset, model_id) for synset, model_id, _ in shapes]
        for name, (_, _, points) in zip(names, shapes):
            write_cloud(pc_dir, name, points)
        write_split_list(list_dir, split, names)
