"""ShapeNetPart part segmentation, NAME ``ShapeNetPart``, in either of its two layouts.

``LAYOUT: auto`` picks the text layout when ``synsetoffset2category.txt`` is in DATA_PATH,
else the HDF5 layout when ``*.h5`` files are (``txt`` / ``h5`` force one); when DATA_PATH holds
neither, its sub-folders ``shapenetcore_partanno_segmentation_benchmark_v0_normal`` and
``shapenet_part_seg_hdf5_data`` (or ``hdf5_data``) are looked in, so the parent folder the
released part-segmentation code takes as ``--root`` works too. Subsets:
train, val, test, and trainval (training uses train+val, evaluation test).
Item: the cloud is ``pc_normalize``d, then ``npoints`` points are drawn without
replacement; a cloud with fewer points keeps all of them plus random repeats (text
files vary in size): ``(points float32 (npoints, 3), category int, parts int64 (npoints,))``.
"""
import glob
import os

import torch

from datasets.base import SPLIT_KEYS, PointCloudDataset
from datasets.build import DATASETS
from datasets.files import DEMO_HINT, DatasetError, require_dir
from datasets.points import pc_normalize, subset_indices
from datasets.shapenetpart_h5 import H5Parts
from datasets.shapenetpart_txt import CATEGORY_FILE, TextParts
from utils.config import ConfigError

LAYOUTS = {'txt': TextParts, 'h5': H5Parts}
# The folders each layout ships in: a root given as their parent (the released part-segmentation
# ``--root``, e.g. ``data/``) is searched for them.
LAYOUT_FOLDERS = {'txt': ('shapenetcore_partanno_segmentation_benchmark_v0_normal',),
                  'h5': ('shapenet_part_seg_hdf5_data', 'hdf5_data')}
LAYOUT_HELP = ("a ShapeNetPart layout: the text layout (synsetoffset2category.txt, <synset>/<token>.txt, "
               "train_test_split/*.json) or the HDF5 layout (*train*.h5, *val*.h5, *test*.h5), in the folder "
               "or in its sub-folder " + ' or '.join(f for fs in LAYOUT_FOLDERS.values() for f in fs))


def holds_layout(folder, layout):
    """Whether ``folder`` itself holds the files of ``layout`` ('txt' or 'h5')."""
    if layout == 'txt':
        return os.path.isfile(os.path.join(folder, CATEGORY_FILE))
    return bool(glob.glob(os.path.join(folder, '*.h5')))


def find_layout(root, layout='auto'):
    """``(layout, folder)``: the layout (``auto``: text first, then HDF5) found in ``root`` itself,
    else in the known sub-folder of a layout (``LAYOUT_FOLDERS``)."""
    kinds = tuple(LAYOUTS) if layout == 'auto' else (layout,)
    for kind in kinds:
        if holds_layout(root, kind):
            return kind, root
    for kind in kinds:
        for sub in LAYOUT_FOLDERS[kind]:
            if holds_layout(os.path.join(root, sub), kind):
                return kind, os.path.join(root, sub)
    wanted = LAYOUT_HELP if layout == 'auto' else f'the {layout} layout of {LAYOUT_HELP}'
    raise DatasetError(f"{root}: no ShapeNetPart files found; expected {wanted}. {DEMO_HINT}")


@DATASETS.register('ShapeNetPart')
class ShapeNetPart(PointCloudDataset):
    """16 categories, 50 parts (see ``datasets.shapenetpart_labels``)."""
    SUBSETS = ('train', 'val', 'test')
    ALIASES = {'trainval': ('train', 'val')}
    CONFIG_KEYS = {**SPLIT_KEYS, 'npoints': 2048, 'LAYOUT': 'auto',
                   'DATA_PATH': 'data/shapenetcore_partanno_segmentation_benchmark_v0_normal'}
    KIND = 'partseg'

    def __init__(self, cfg):
        super().__init__(cfg)
        root = require_dir(cfg.DATA_PATH, 'DATA_PATH', LAYOUT_HELP)
        if cfg.LAYOUT != 'auto' and cfg.LAYOUT not in LAYOUTS:
            raise ConfigError(f"ShapeNetPart: LAYOUT={cfg.LAYOUT!r}; accepted: auto, {', '.join(LAYOUTS)}")
        self.layout, self.root = find_layout(root, cfg.LAYOUT)
        self.source = LAYOUTS[self.layout](self.root, self.subsets())

    def __len__(self):
        return len(self.source)

    def __getitem__(self, index):
        xyz, category, parts, path = self.source.get(index)
        pick = subset_indices(len(xyz), self.npoints, path, repeat=True, rng=self.item_rng(index))
        return torch.from_numpy(pc_normalize(xyz, path)[pick]), category, torch.from_numpy(parts[pick])
