"""ShapeNetPart text layout (``shapenetcore_partanno_segmentation_benchmark_v0_normal``): reader, writer.

``synsetoffset2category.txt`` (``<Category> <synset>`` per line; category index = line
order), ``<synset>/<token>.txt`` rows ``x y z nx ny nz part`` (global part id 0-49),
``train_test_split/shuffled_{train,val,test}_file_list.json`` (``shape_data/<synset>/<token>``).
"""
import json
import os

import numpy as np

from datasets.files import (DatasetError, check_finite, check_shape, read_json, read_lines, read_text_array,
                            write_text_rows)
from datasets.shapenetpart_labels import CATEGORIES, SYNSETS, bad_parts

CATEGORY_FILE = 'synsetoffset2category.txt'
SPLIT_FILE = os.path.join('train_test_split', 'shuffled_{}_file_list.json')
ROW_FORMAT = ' '.join(['%.6f'] * 7)


def read_categories(root):
    """``[(category name, synset), ...]`` in file order; names must be ShapeNetPart's."""
    path = os.path.join(root, CATEGORY_FILE)
    pairs = [tuple(line.split()[:2]) for line in read_lines(path, "'<Category> <synset>' lines")]
    unknown = [name for name, _ in pairs if name not in CATEGORIES]
    if unknown or any(len(p) != 2 for p in pairs):
        raise DatasetError(f"{path}: expected '<Category> <synset>' lines with categories from "
                           f"{', '.join(CATEGORIES)}; found {unknown or pairs}")
    return pairs


class TextParts:
    """Index of the shapes of some splits; ``get(i)`` reads one file: (xyz (n,3), category, parts (n,), path)."""

    def __init__(self, root, subsets):
        pairs = read_categories(root)
        index = {synset: i for i, (_, synset) in enumerate(pairs)}
        self.names = [name for name, _ in pairs]
        self.items = []
        for subset in subsets:
            list_file = os.path.join(root, SPLIT_FILE.format(subset))
            for entry in read_json(list_file, "a list of 'shape_data/<synset>/<token>'"):
                synset, token = str(entry).split('/')[-2:]
                if synset not in index:
                    raise DatasetError(f"{list_file}: {entry!r} names synset {synset}, not in {CATEGORY_FILE}")
                self.items.append((os.path.join(root, synset, f'{token}.txt'), index[synset]))

    def __len__(self):
        return len(self.items)

    def get(self, i):
        path, category = self.items[i]
        rows = read_text_array(path, what="rows 'x y z nx ny nz part'")
        check_shape(rows, (None, 7), path, "rows 'x y z nx ny nz part'")
        check_finite(rows, path)
        parts = rows[:, 6].astype(np.int64)
        wrong = bad_parts(parts, CATEGORIES.index(self.names[category]))
        if len(wrong):
            raise DatasetError(f"{path}: part ids {wrong.tolist()} do not belong to {self.names[category]}")
        return rows[:, :3], category, parts, path


def write_text_layout(root, splits):
    """Write the layout; ``splits`` maps 'train'/'val'/'test' to lists of
    (category index, token, xyz (n,3), normals (n,3), global parts (n,))."""
    os.makedirs(os.path.join(root, os.path.dirname(SPLIT_FILE)), exist_ok=True)
    write_text_rows(os.path.join(root, CATEGORY_FILE), np.array(list(zip(CATEGORIES, SYNSETS))), '%s\t%s')
    for split, shapes in splits.items():
        for category, token, xyz, normals, parts in shapes:
            os.makedirs(os.path.join(root, SYNSETS[category]), exist_ok=True)
            rows = np.concatenate([xyz, normals, np.asarray(parts)[:, None]], axis=1)
            write_text_rows(os.path.join(root, SYNSETS[category], f'{token}.txt'), rows, ROW_FORMAT)
        entries = [f'shape_data/{SYNSETS[c]}/{token}' for c, token, *_ in shapes]
        with open(os.path.join(root, SPLIT_FILE.format(split)), 'w') as f:
            json.dump(entries, f)
