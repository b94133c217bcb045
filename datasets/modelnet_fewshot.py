"""ModelNet40 few-shot folds, NAME ``ModelNetFewShot``: reader, and the seeded fold generator.

Layout: ``<DATA_PATH>/{way}way_{shot}shot/{fold}.pkl``, each a pickled dict
``{'train': [...], 'test': [...]}`` of ``(points float32 (N_POINTS, 6), label in [0, way),
original ModelNet label)`` tuples; train holds way*shot entries, test 20*way.
Item: as ModelNet, ``('ModelNet', 'sample', (points (N_POINTS, 3 or 6), label))``.
"""
import os

import numpy as np

from datasets.base import SPLIT_KEYS, PointCloudDataset
from datasets.build import DATASETS
from datasets.files import DatasetError, check_finite, check_shape, read_pickle, require_dir, write_pickle
from datasets.modelnet import classification_item
from utils.config import ConfigError

LAYOUT = "few-shot folds {way}way_{shot}shot/{fold}.pkl (pickled {'train': [...], 'test': [...]})"


def fold_path(root, way, shot, fold):
    return os.path.join(root, f'{way}way_{shot}shot', f'{fold}.pkl')


def read_fold(path, n_points, way):
    """The checked ``{'train': [...], 'test': [...]}`` dict of one fold file."""
    fold = read_pickle(path, "a few-shot fold {'train': [...], 'test': [...]}")
    if not (isinstance(fold, dict) and {'train', 'test'} <= set(fold)):
        raise DatasetError(f"{path}: expected a dict with keys 'train' and 'test'")
    for split in ('train', 'test'):
        for i, entry in enumerate(fold[split]):
            if not (isinstance(entry, (tuple, list)) and len(entry) == 3):
                raise DatasetError(f"{path}: {split}[{i}] is not a (points, label, original label) tuple")
            check_shape(entry[0], (n_points, 6), path, f'{split}[{i}] points')
            check_finite(entry[0], path, f'{split}[{i}] coordinates')
            if not 0 <= int(entry[1]) < way:
                raise DatasetError(f"{path}: {split}[{i}] has label {entry[1]}, outside [0, {way})")
    return fold


@DATASETS.register('ModelNetFewShot')
class ModelNetFewShot(PointCloudDataset):
    """One fold of one way/shot setting (``way``, ``shot``, ``fold`` come from --way/--shot/--fold).

    ``N_POINTS`` is the stored points per entry; ``NUM_CATEGORY`` is accepted for Point-MAE configs.
    Labels may be stored as python ints or numpy integers (Point-MAE's generator stores the
    original label as int32); ``labels`` and the collated batches are int64.
    """
    CONFIG_KEYS = {**SPLIT_KEYS, 'DATA_PATH': 'data/ModelNetFewshot', 'N_POINTS': 8192,
                   'NUM_CATEGORY': 40, 'USE_NORMALS': False, 'way': -1, 'shot': -1, 'fold': -1}
    KIND = 'classification'

    def __init__(self, cfg):
        super().__init__(cfg)
        if min(cfg.way, cfg.shot, cfg.fold) < 0:
            raise ConfigError(f"ModelNetFewShot: way={cfg.way}, shot={cfg.shot}, fold={cfg.fold}; set all "
                              f"three (main.py --way 5 --shot 10 --fold 0)")
        root = require_dir(cfg.DATA_PATH, 'DATA_PATH', LAYOUT)
        path = fold_path(root, cfg.way, cfg.shot, cfg.fold)
        fold = read_fold(path, cfg.N_POINTS, cfg.way)
        self.list_files = [path]
        self.check_stored_points(cfg.N_POINTS, path)
        self.entries = [entry for split in self.subsets() for entry in fold[split]]
        self.sources = [f'{path} {split}[{i}]' for split in self.subsets() for i in range(len(fold[split]))]
        self.labels = np.array([int(entry[1]) for entry in self.entries], dtype=np.int64)

    def __len__(self):
        return len(self.entries)

    def __getitem__(self, index):
        points, label, _ = self.entries[index]
        return classification_item(points, label, self.cfg.USE_NORMALS, self.shuffle_points, self.sources[index],
                                   self.item_rng(index))


def sample_fold(train, test, way, shot, n_query, rng):
    """One fold: ``way`` classes; ``shot`` train and ``n_query`` test shapes of each.

    ``train``/``test`` are ModelNet caches ``(points list, labels)``; classes without
    enough shapes in either are never drawn.
    """
    by_class = [{c: np.flatnonzero(np.asarray(labels) == c) for c in set(labels)} for labels in (train[1], test[1])]
    usable = sorted(c for c in by_class[0] if len(by_class[0][c]) >= shot
                    and len(by_class[1].get(c, ())) >= n_query)
    if len(usable) < way:
        raise DatasetError(f"only {len(usable)} classes have {shot} train and {n_query} test shapes; "
                           f"{way}-way folds need {way}")
    fold = {'train': [], 'test': []}
    for new_label, c in enumerate(rng.choice(usable, way, replace=False)):
        for split, cache, members, count in (('train', train, by_class[0][c], shot),
                                             ('test', test, by_class[1][c], n_query)):
            picks = rng.choice(members, count, replace=False)
            fold[split] += [(cache[0][i], new_label, int(c)) for i in picks]
    return fold


def write_fewshot_folds(train, test, out_dir, seed=0, ways=(5, 10), shots=(10, 20), folds=10, n_query=20):
    """Write ``{way}way_{shot}shot/{fold}.pkl`` for every setting; returns the paths.

    ``train``/``test``: ModelNet caches ``(points list, labels)`` (``read_cache``).
    Fold f of a setting uses the RNG ``default_rng([seed, way, shot, f])``, so a seed
    reproduces every file and settings do not depend on each other.
    """
    paths = []
    for way in ways:
        for shot in shots:
            for f in range(folds):
                fold = sample_fold(train, test, way, shot, n_query, np.random.default_rng([seed, way, shot, f]))
                paths.append(fold_path(out_dir, way, shot, f))
                os.makedirs(os.path.dirname(paths[-1]), exist_ok=True)
                write_pickle(paths[-1], fold)
    return paths
