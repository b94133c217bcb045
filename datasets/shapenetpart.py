"""ShapeNetPart part segmentation, NAME ``ShapeNetPart``, in either of its two layouts.

``LAYOUT: auto`` picks the text layout when ``synsetoffset2category.txt`` is in DATA_PATH,
else the HDF5 layout when ``*.h5`` files are (``txt`` / ``h5`` force one). Subsets:
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
LAYOUT_HELP = ("a ShapeNetPart layout: the text layout (synsetoffset2category.txt, <synset>/<token>.txt, "
               "train_test_split/*.json) or the HDF5 layout (*train*.h5, *val*.h5, *test*.h5)")


def detect_layout(root):
    """'txt' or 'h5' from the files in ``root``."""
    if os.path.isfile(os.path.join(root, CATEGORY_FILE)):
        return 'txt'
    if glob.glob(os.path.join(root, '*.h5')):
        return 'h5'
    raise DatasetError(f"{root}: neither {CATEGORY_FILE} nor *.h5 files found; expected {LAYOUT_HELP}. {DEMO_HINT}")


@DATASETS.register('ShapeNetPart')
class ShapeNetPart(PointCloudDataset):
    """16 categories, 50 parts (see ``datasets.shapenetpart_labels``)."""
    SUBSETS = ('train', 'val', 'test')
    ALIASES = {'trainval': ('train', 'val')}
    CONFIG_KEYS = {**SPLIT_KEYS, 'npoints': 2048, 'LAYOUT': 'auto',
                   'DATA_PATH': 'data/shapenetcore_partanno_segmentation_benchmark_v0_normal'}

    def __init__(self, cfg):
        super().__init__(cfg)
        root = require_dir(cfg.DATA_PATH, 'DATA_PATH', LAYOUT_HELP)
        layout = detect_layout(root) if cfg.LAYOUT == 'auto' else cfg.LAYOUT
        if layout not in LAYOUTS:
            raise ConfigError(f"ShapeNetPart: LAYOUT={cfg.LAYOUT!r}; accepted: auto, {', '.join(LAYOUTS)}")
        self.layout = layout
        self.source = LAYOUTS[layout](root, self.subsets())

    def __len__(self):
        return len(self.source)

    def __getitem__(self, index):
        xyz, category, parts, path = self.source.get(index)
        pick = subset_indices(len(xyz), self.npoints, path, repeat=True)
        return torch.from_numpy(pc_normalize(xyz)[pick]), category, torch.from_numpy(parts[pick])
