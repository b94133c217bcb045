"""Deterministic synthetic demo data written in the real layouts (``tools/make_demo_data.py``).

Every object draws from its own RNG ``(seed, layout, category, index)``, so a seed gives
byte-identical files and a smaller size is a prefix of a larger one. Counts are per
category (per class); see ``SIZES``.
"""
import os
from dataclasses import dataclass

import numpy as np

from datasets.demo.categories import CATEGORIES
from datasets.demo.sampling import instance_rng, object_id, sample_object
from datasets.demo.scans import scan_variants
from datasets.modelnet_cache import build_cache, read_cache
from datasets.modelnet_fewshot import write_fewshot_folds
from datasets.modelnet_raw import write_raw_layout
from datasets.scanobjectnn import ScanObjectNN, ScanObjectNNHardest, write_scan_file
from datasets.shapenet55 import write_shapenet55
from datasets.shapenetpart_labels import CATEGORIES as PART_CATEGORIES, PARTS
from datasets.shapenetpart_txt import write_text_layout

SHAPENET_POINTS, MODELNET_RAW_POINTS, MODELNET_POINTS, PARTSEG_POINTS = 8192, 10000, 8192, 2500
SHAPENET, MODELNET, PARTSEG, SCAN = 1, 2, 3, 4  # layout ids in the RNG seeds


@dataclass(frozen=True)
class DemoSize:
    """Objects per category: ``shapenet`` (train, test), ``modelnet`` (train, test),
    ``partseg`` (train, val, test), ``scan`` (train, test); ``fewshot`` (ways, shots, folds, queries)."""
    shapenet: tuple
    modelnet: tuple
    partseg: tuple
    scan: tuple
    fewshot: tuple


SIZES = {
    'tiny': DemoSize((2, 1), (2, 2), (2, 1, 1), (2, 1), ((5, 10), (1, 2), 2, 2)),
    'small': DemoSize((40, 10), (20, 20), (24, 4, 8), (20, 8), ((5, 10), (10, 20), 10, 20)),
    'full': DemoSize((200, 50), (80, 30), (100, 15, 30), (80, 20), ((5, 10), (10, 20), 10, 20)),
}


def split_ranges(names, counts):
    """``('train', 'test'), (3, 2)`` -> ``{'train': range(0, 3), 'test': range(3, 5)}``."""
    starts = np.cumsum((0,) + tuple(counts))
    return {name: range(starts[i], starts[i + 1]) for i, name in enumerate(names)}


def make_shapenet(out, seed, size):
    """ShapeNet-55 layout under ``out/ShapeNet55-34``."""
    splits = {name: [] for name in ('train', 'test')}
    for name, indices in split_ranges(splits, size.shapenet).items():
        for c, category in enumerate(CATEGORIES):
            for i in indices:
                rng = instance_rng(seed, SHAPENET, c, i)
                splits[name].append((category.synset, object_id(rng), sample_object(category, rng, SHAPENET_POINTS)[0]))
    base = os.path.join(out, 'ShapeNet55-34')
    write_shapenet55(os.path.join(base, 'ShapeNet-55'), os.path.join(base, 'shapenet_pc'), splits)
    return {name: len(shapes) for name, shapes in splits.items()}


def make_modelnet(out, seed, size):
    """ModelNet raw layout + FPS caches (through the real builder) + few-shot folds from them."""
    root = os.path.join(out, 'ModelNet', 'modelnet40_normal_resampled')
    splits = {name: [] for name in ('train', 'test')}
    for name, indices in split_ranges(splits, size.modelnet).items():
        for c, category in enumerate(CATEGORIES):
            for i in indices:
                points, normals, _ = sample_object(category, instance_rng(seed, MODELNET, c, i), MODELNET_RAW_POINTS)
                splits[name].append((c, np.concatenate([points, normals], axis=1)))
    write_raw_layout(root, [c.name for c in CATEGORIES], splits)
    caches = {name: read_cache(build_cache(root, 40, name, MODELNET_POINTS), MODELNET_POINTS, 40) for name in splits}
    ways, shots, folds, queries = size.fewshot
    paths = write_fewshot_folds(caches['train'], caches['test'], os.path.join(out, 'ModelNetFewshot'),
                                seed, ways, shots, folds, queries)
    return {**{name: len(shapes) for name, shapes in splits.items()}, 'fewshot_files': len(paths)}


def make_partseg(out, seed, size):
    """ShapeNetPart text layout for the demo categories that map onto ShapeNetPart ones."""
    splits = {name: [] for name in ('train', 'val', 'test')}
    for name, indices in split_ranges(splits, size.partseg).items():
        for c, category in enumerate(CATEGORIES):
            if category.partseg is None:
                continue
            global_ids = np.array(PARTS[category.partseg])
            for i in indices:
                rng = instance_rng(seed, PARTSEG, c, i)
                points, normals, parts = sample_object(category, rng, PARTSEG_POINTS)
                splits[name].append((PART_CATEGORIES.index(category.partseg), object_id(rng),
                                     points, normals, global_ids[parts]))
    write_text_layout(os.path.join(out, 'shapenetcore_partanno_segmentation_benchmark_v0_normal'), splits)
    return {name: len(shapes) for name, shapes in splits.items()}


def make_scans(out, seed, size):
    """ScanObjectNN-like h5 files: OBJ_ONLY (main_split_nobg), OBJ_BG and PB_T50_RS (main_split)."""
    targets = {'obj_only': ('main_split_nobg', ScanObjectNN.FILES), 'obj_bg': ('main_split', ScanObjectNN.FILES),
               'hardest': ('main_split', ScanObjectNNHardest.FILES)}
    counts = {}
    for name, indices in split_ranges(('train', 'test'), size.scan).items():
        scans = {variant: [] for variant in targets}
        for c, category in enumerate(CATEGORIES):
            for i in indices:
                for variant, (points, mask) in scan_variants(category, instance_rng(seed, SCAN, c, i)).items():
                    scans[variant].append((points, c, mask))
        for variant, (folder, files) in targets.items():
            points, labels, masks = map(np.stack, zip(*scans[variant]))
            write_scan_file(os.path.join(out, 'ScanObjectNN', folder, files[name]), points, labels, masks)
        counts[name] = len(indices) * len(CATEGORIES)
    return counts


def make_demo_data(out, seed=0, size='small'):
    """Write every layout under ``out``; returns {layout: {split: count}}."""
    if size not in SIZES:
        raise ValueError(f"size={size!r}; accepted: {', '.join(SIZES)}")
    makers = {'ShapeNet-55': make_shapenet, 'ModelNet40': make_modelnet,
              'ShapeNetPart': make_partseg, 'ScanObjectNN': make_scans}
    return {name: make(out, seed, SIZES[size]) for name, make in makers.items()}
