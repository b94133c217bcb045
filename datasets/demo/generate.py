"""Deterministic synthetic demo data written in the real layouts (``tools/make_demo_data.py``).

Every object draws from its own RNG ``(seed, layout, category, index)``, so a seed gives
byte-identical files and a smaller size is a prefix of a larger one. Counts are per
category (per class); see ``SIZES``. Which categories each layout holds: ``categories.py``.

Points per cloud are the real layouts' where a loader needs them (ScanObjectNN 2048) and
smaller elsewhere, the same for every size, and the demo dataset configs say so:

=================  ======  ==========================================================
layout             points  real
=================  ======  ==========================================================
ShapeNet-55 .npy   2048    8192 (pre-training reads a random 1024)
ModelNet raw .txt  1024    10000
ModelNet cache     1024    8192 FPS points (``N_POINTS``; the probe and fine-tuning use 1024)
few-shot folds     1024    8192, copied from the cache
ShapeNetPart .txt  1800-2600, varying per shape, as the real files do (~2700)
ScanObjectNN h5    2048    2048
=================  ======  ==========================================================
"""
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from datasets.demo.categories import CATEGORIES, MODELNET, PARTSEG, SCAN, SHAPENET_SYNSETS
from datasets.demo.sampling import instance_rng, object_id, sample_object
from datasets.demo.scans import scan_variants
from datasets.modelnet_cache import build_cache, read_cache
from datasets.modelnet_fewshot import write_fewshot_folds
from datasets.modelnet_raw import write_raw_layout
from datasets.scanobjectnn import ScanObjectNN, ScanObjectNNHardest, write_scan_file
from datasets.shapenet55 import write_shapenet55
from datasets.shapenetpart_labels import CATEGORIES as PART_CATEGORIES, PARTS, SYNSETS
from datasets.shapenetpart_txt import write_text_layout

SHAPENET_POINTS, MODELNET_RAW_POINTS, MODELNET_POINTS = 2048, 1024, 1024
PARTSEG_POINTS = (1800, 2600)   # inclusive range, drawn per shape
SHAPENET_LAYOUT, MODELNET_LAYOUT, PARTSEG_LAYOUT, SCAN_LAYOUT = 1, 2, 3, 4  # layout ids in the RNG seeds


@dataclass(frozen=True)
class DemoSize:
    """Objects per category (per synset for ShapeNet): ``shapenet`` (train, test), ``modelnet`` (train, test),
    ``partseg`` (train, val, test), ``scan`` (train, test); ``fewshot`` (ways, shots, folds,
    test shapes per class in a fold)."""
    shapenet: tuple
    modelnet: tuple
    partseg: tuple
    scan: tuple
    fewshot: tuple


SIZES = {
    'tiny': DemoSize((1, 1), (2, 2), (2, 1, 1), (2, 1), ((5, 10), (1, 2), 2, 2)),
    'small': DemoSize((33, 6), (20, 20), (12, 2, 4), (24, 10), ((5, 10), (10, 20), 10, 8)),
    'full': DemoSize((200, 50), (80, 30), (100, 15, 30), (80, 20), ((5, 10), (10, 20), 10, 20)),
}


def split_ranges(names, counts):
    """``('train', 'test'), (3, 2)`` -> ``{'train': range(0, 3), 'test': range(3, 5)}``."""
    starts = np.cumsum((0,) + tuple(counts))
    return {name: range(starts[i], starts[i + 1]) for i, name in enumerate(names)}


def instances(categories, layout, seed, indices):
    """``(label, category, rng)`` for each category of a layout (label = its position) and index."""
    for label, category in enumerate(categories):
        for i in indices:
            yield label, category, instance_rng(seed, layout, CATEGORIES.index(category), i)


def make_shapenet(out, seed, size):
    """ShapeNet-55 layout under ``out/ShapeNet55-34``: ``size.shapenet`` shapes per synset, the
    categories of a synset taking turns (tables and desks, chairs and stools)."""
    splits = {}
    for name, indices in split_ranges(('train', 'test'), size.shapenet).items():
        splits[name] = []
        for synset, categories in SHAPENET_SYNSETS:
            for i in indices:
                category = categories[i % len(categories)]
                rng = instance_rng(seed, SHAPENET_LAYOUT, CATEGORIES.index(category), i)
                splits[name].append((synset, object_id(rng), sample_object(category, rng, SHAPENET_POINTS)[0]))
    base = os.path.join(out, 'ShapeNet55-34')
    write_shapenet55(os.path.join(base, 'ShapeNet-55'), os.path.join(base, 'shapenet_pc'), splits)
    return {name: len(shapes) for name, shapes in splits.items()}


def make_modelnet(out, seed, size):
    """ModelNet raw layout + FPS caches (through the real builder) + few-shot folds from them."""
    root = os.path.join(out, 'ModelNet', 'modelnet40_normal_resampled')
    splits = {}
    for name, indices in split_ranges(('train', 'test'), size.modelnet).items():
        splits[name] = [(label, np.concatenate(sample_object(category, rng, MODELNET_RAW_POINTS)[:2], axis=1))
                        for label, category, rng in instances(MODELNET, MODELNET_LAYOUT, seed, indices)]
    write_raw_layout(root, [c.modelnet for c in MODELNET], splits)
    caches = {name: read_cache(build_cache(root, 40, name, MODELNET_POINTS, workers=1), MODELNET_POINTS, 40)
              for name in splits}
    ways, shots, folds, queries = size.fewshot
    paths = write_fewshot_folds(caches['train'], caches['test'], os.path.join(out, 'ModelNetFewshot'),
                                seed, ways, shots, folds, queries)
    return {**{name: len(shapes) for name, shapes in splits.items()}, 'fewshot_files': len(paths)}


def make_partseg(out, seed, size):
    """ShapeNetPart text layout: the 16 categories, part labels mapped onto the global ids."""
    splits = {}
    for name, indices in split_ranges(('train', 'val', 'test'), size.partseg).items():
        splits[name] = []
        for _, category, rng in instances(PARTSEG, PARTSEG_LAYOUT, seed, indices):
            token = object_id(rng)
            points, normals, parts = sample_object(category, rng, int(rng.integers(PARTSEG_POINTS[0],
                                                                                  PARTSEG_POINTS[1] + 1)))
            splits[name].append((PART_CATEGORIES.index(category.partseg), token, points, normals,
                                 np.array(PARTS[category.partseg])[parts]))
    root = os.path.join(out, 'shapenetcore_partanno_segmentation_benchmark_v0_normal')
    write_text_layout(root, splits)
    for synset in SYNSETS:   # Point-MAE's loader lists every synset's folder, so each must exist
        os.makedirs(os.path.join(root, synset), exist_ok=True)
    return {name: len(shapes) for name, shapes in splits.items()}


def make_scans(out, seed, size):
    """ScanObjectNN-like h5 files: OBJ_ONLY (main_split_nobg), OBJ_BG and PB_T50_RS (main_split)."""
    targets = {'obj_only': ('main_split_nobg', ScanObjectNN.FILES), 'obj_bg': ('main_split', ScanObjectNN.FILES),
               'hardest': ('main_split', ScanObjectNNHardest.FILES)}
    counts = {}
    for name, indices in split_ranges(('train', 'test'), size.scan).items():
        scans = {variant: [] for variant in targets}
        for label, category, rng in instances(SCAN, SCAN_LAYOUT, seed, indices):
            for variant, (points, mask) in scan_variants(category, CATEGORIES, rng).items():
                scans[variant].append((points, label, mask))
        for variant, (folder, files) in targets.items():
            points, labels, masks = map(np.stack, zip(*scans[variant]))
            masks = None if variant == 'obj_only' else masks   # nothing to mask without background
            write_scan_file(os.path.join(out, 'ScanObjectNN', folder, files[name]), points, labels, masks)
        counts[name] = len(scans['obj_bg'])
    return counts


def make_demo_data(out, seed=0, size='small', workers=1):
    """Write every layout under ``out``; returns {layout: {split: count}}. The four layouts
    draw from separate RNGs and write separate folders, so ``workers`` > 1 writes them in that
    many processes with byte-identical results."""
    if size not in SIZES:
        raise ValueError(f"size={size!r}; accepted: {', '.join(SIZES)}")
    makers = {'ShapeNet-55': make_shapenet, 'ModelNet40': make_modelnet,
              'ShapeNetPart': make_partseg, 'ScanObjectNN': make_scans}
    if workers <= 1:
        return {name: make(out, seed, SIZES[size]) for name, make in makers.items()}
    with ProcessPoolExecutor(max_workers=min(workers, len(makers))) as pool:
        futures = {name: pool.submit(make, out, seed, SIZES[size]) for name, make in makers.items()}
        return {name: future.result() for name, future in futures.items()}
