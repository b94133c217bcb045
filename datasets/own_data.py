"""A researcher's own meshes -> a dataset layout the loaders read (``tools/prepare_dataset.py``).

Input: ``<meshes>/<class>/**/*.{obj,off,ply,stl}``; the class is the first sub-folder. A class
folder holding ``train/`` and ``test/`` sub-folders (ModelNet's original mesh release) keeps
that split; the other meshes of a class are split at random, per class, from ``seed`` and
the class name (the same files always give the same split). Each mesh gives ``points``
surface points with normals (area-weighted, drawn from ``seed`` and the mesh's path).

Output layouts (written with the loaders' own writers, one shape at a time, so memory stays
flat): ``shapenet55`` -> ``<out>/ShapeNet-55/{train,test}.txt`` + ``<out>/shapenet_pc/<class>-<id>.npy``
(xyz only: the format has no normals); ``modelnet`` -> ``<out>/modelnet{K}_shape_names.txt``,
``modelnet{K}_{train,test}.txt``, ``<out>/<class>/<class>_NNNN.txt`` rows ``x,y,z,nx,ny,nz``
with K the number of classes (the loader builds its FPS cache on first use). Beside them:
``dataset.yaml`` (a dataset config pointing here, for ``_base_``), ``sources.csv`` (output
name -> source mesh) and ``prepare_report.txt`` (counts, and every skipped file with the reason).
"""
import csv
import glob
import io
import multiprocessing
import os
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import yaml
from tqdm import tqdm

from datasets.files import DatasetError
from datasets.meshes import MESH_EXTS, list_shapes, load_geometry, sample_surface, shape_rng
from datasets.modelnet_raw import shape_id, write_raw_shape, write_shape_lists
from datasets.shapenet55 import cloud_name, write_cloud, write_split_list
from utils.io import atomic_write

LAYOUTS = ('shapenet55', 'modelnet')
SPLITS = ('train', 'test')
REPORT, SOURCES, CONFIG = 'prepare_report.txt', 'sources.csv', 'dataset.yaml'


@dataclass
class Shape:
    """One mesh to convert: its path relative to the mesh folder, class, split and output name."""
    source: str
    label: str
    split: str = ''
    name: str = ''


def clean_name(text, keep='-'):
    """A name safe in list files and file names: runs of other characters become '_'."""
    return re.sub(rf'[^A-Za-z0-9_.{re.escape(keep)}]+', '_', text).strip('_') or '_'


def discover(root):
    """(shapes, ignored): the meshes under ``root`` grouped by class sub-folder; ``ignored``
    lists (path, reason) for files outside a class folder or of another type."""
    if not os.path.isdir(root):
        raise DatasetError(f"--meshes {root}: folder not found (expected <class>/<mesh files>)")
    shapes, ignored = [], []
    for rel in list_shapes(root, exts=None):
        parts = rel.split(os.sep)
        if os.path.splitext(rel)[1].lower() not in MESH_EXTS:
            ignored.append((rel, f"not a mesh ({', '.join(MESH_EXTS)})"))
        elif len(parts) < 2:
            ignored.append((rel, 'not inside a class sub-folder'))
        else:
            split = parts[1] if len(parts) > 2 and parts[1] in SPLITS else ''
            shapes.append(Shape(rel, parts[0], split))
    if not shapes:
        raise DatasetError(f"--meshes {root}: no {'/'.join(MESH_EXTS)} files inside class sub-folders")
    return shapes, ignored


def assign_splits(shapes, test_fraction, seed):
    """Give every shape without a split one: per class, round(test_fraction * n) test shapes
    (at least one of each split when the class has two or more and the fraction is in (0, 1))."""
    for label in sorted({s.label for s in shapes}):
        free = sorted((s for s in shapes if s.label == label and not s.split), key=lambda s: s.source)
        n_test = int(round(test_fraction * len(free)))
        if len(free) >= 2 and 0 < test_fraction < 1:
            n_test = min(max(n_test, 1), len(free) - 1)
        order = shape_rng(seed, label).permutation(len(free))
        for rank, index in enumerate(order):
            free[index].split = 'test' if rank < n_test else 'train'


def assign_names(shapes, layout, classes):
    """Output names: ``<class>_NNNN`` numbered per class through train then test in path order
    (modelnet), or ``<class>-<path inside the class folder>.npy`` (shapenet55)."""
    taken, counts = set(), {}
    for s in sorted(shapes, key=lambda s: (SPLITS.index(s.split), s.source)):
        if layout == 'modelnet':
            counts[s.label] = counts.get(s.label, 0) + 1
            s.name = shape_id(classes[s.label], counts[s.label])
            continue
        inner = s.source.split(os.sep)[1:]
        inner = inner[1:] if len(inner) > 1 and inner[0] in SPLITS else inner
        model_id = clean_name(os.path.splitext('_'.join(inner))[0])
        s.name, k = cloud_name(classes[s.label], model_id), 1
        while s.name in taken:
            k += 1
            s.name = cloud_name(classes[s.label], f'{model_id}_{k}')
        taken.add(s.name)


def class_names(labels, layout):
    """{class folder: the name written}; taxonomy ids of shapenet55 cannot hold '-'."""
    names = {label: clean_name(label, keep='' if layout == 'shapenet55' else '-') for label in labels}
    clash = [label for label in labels if list(names.values()).count(names[label]) > 1]
    if clash:
        raise DatasetError(f"class folders {', '.join(map(repr, clash))} get the same name "
                           f"{names[clash[0]]!r} in the {layout} layout; rename one")
    return names


def convert(job):
    """Worker: sample one mesh and write its output file; returns None or the reason it was skipped."""
    root, out, layout, shape, points, seed = job
    path = os.path.join(root, shape.source)
    try:
        geometry = load_geometry(path)
        if isinstance(geometry, np.ndarray):
            raise DatasetError(f"{path}: the file has no faces (a point cloud?), so no surface to sample")
        xyz, normals = sample_surface(geometry, points, shape_rng(seed, shape.source), path)
    except DatasetError as e:
        return str(e)
    if layout == 'modelnet':
        write_raw_shape(out, shape.name, np.concatenate([xyz, normals], axis=1))
    else:
        write_cloud(os.path.join(out, 'shapenet_pc'), shape.name, xyz)
    return None


def run_jobs(jobs, workers):
    """Yield ``convert(job)`` in order, in worker processes when there are several jobs."""
    if workers <= 1 or len(jobs) < 2 * workers:
        yield from map(convert, jobs)
        return
    method = 'fork' if 'fork' in multiprocessing.get_all_start_methods() else 'spawn'
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as pool:
        yield from pool.map(convert, jobs, chunksize=4)


def prepare_dataset(meshes, layout, out, points=8192, seed=0, test_fraction=0.2, workers=None, overwrite=False):
    """Convert the meshes under ``meshes`` into ``layout`` under ``out`` (see the module docstring).

    Returns a summary dict: ``classes``, ``counts`` {split: shapes written}, ``skipped``
    [(source, reason)], ``ignored`` [(path, reason)], ``report`` (its path), ``config`` (the dataset yaml).
    """
    if layout not in LAYOUTS:
        raise DatasetError(f"--layout {layout!r}; accepted: {', '.join(LAYOUTS)}")
    if not 0 <= test_fraction <= 1:
        raise DatasetError(f"--test_fraction {test_fraction}: expected a fraction in [0, 1]")
    prepare_output(out, overwrite)
    shapes, ignored = discover(meshes)
    labels = sorted({s.label for s in shapes})
    classes = class_names(labels, layout)
    assign_splits(shapes, test_fraction, seed)
    assign_names(shapes, layout, classes)
    os.makedirs(os.path.join(out, 'shapenet_pc') if layout == 'shapenet55' else out, exist_ok=True)
    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    jobs = [(meshes, out, layout, s, points, seed) for s in shapes]
    results = list(tqdm(run_jobs(jobs, workers), total=len(jobs), unit='mesh', desc=f'sampling {layout}'))
    written = [s for s, reason in zip(shapes, results) if reason is None]
    skipped = [(s.source, reason) for s, reason in zip(shapes, results) if reason is not None]
    names = {split: [s.name for s in sorted(written, key=lambda s: s.name) if s.split == split] for split in SPLITS}
    if layout == 'modelnet':
        write_shape_lists(out, [classes[label] for label in labels], names, num_category=len(labels))
    else:
        for split in SPLITS:
            write_split_list(os.path.join(out, 'ShapeNet-55'), split, names[split])
    summary = {'classes': [classes[label] for label in labels], 'counts': {k: len(v) for k, v in names.items()},
               'skipped': skipped, 'ignored': ignored, 'report': os.path.join(out, REPORT),
               'config': os.path.join(out, CONFIG)}
    write_dataset_config(summary['config'], layout, out, points, len(labels))
    write_sources(os.path.join(out, SOURCES), written)
    write_report(summary, shapes, written, meshes, out, layout, points, seed, test_fraction)
    return summary


def prepare_output(out, overwrite):
    """Refuse a non-empty ``out`` unless ``overwrite``; then drop stale ModelNet FPS caches,
    which the loader would otherwise read instead of the new shapes."""
    if os.path.isdir(out) and os.listdir(out):
        if not overwrite:
            raise DatasetError(f"--out {out} is not empty; pass --overwrite to write into it")
        for cache in glob.glob(os.path.join(out, 'modelnet*_*pts_fps.dat')):
            os.remove(cache)


def write_dataset_config(path, layout, out, points, num_classes):
    """A dataset yaml for ``_base_`` (absolute paths, so it works from any folder)."""
    out = os.path.abspath(out)
    if layout == 'modelnet':
        cfg = {'NAME': 'ModelNet', 'DATA_PATH': out, 'N_POINTS': points, 'NUM_CATEGORY': num_classes,
               'USE_NORMALS': False}
    else:
        cfg = {'NAME': 'ShapeNet', 'DATA_PATH': os.path.join(out, 'ShapeNet-55'),
               'PC_PATH': os.path.join(out, 'shapenet_pc'), 'N_POINTS': points}
    with atomic_write(path, 'w') as f:
        f.write('# Written by tools/prepare_dataset.py; use it as `_base_: ' + path + '`\n')
        yaml.safe_dump(cfg, f, sort_keys=False)


def write_sources(path, written):
    text = io.StringIO()
    rows = csv.writer(text)
    rows.writerow(['split', 'class', 'name', 'source'])
    rows.writerows([s.split, s.label, s.name, s.source] for s in sorted(written, key=lambda s: (s.split, s.name)))
    with atomic_write(path, 'w') as f:
        f.write(text.getvalue())


def write_report(summary, shapes, written, meshes, out, layout, points, seed, test_fraction):
    """``prepare_report.txt``: settings, per-class counts, every skipped and ignored file."""
    lines = [f"prepare_dataset: {meshes} -> {out} (layout {layout}, {points} points per shape, seed {seed}, "
             f"test_fraction {test_fraction})",
             f"classes: {len(summary['classes'])}; written: train {summary['counts']['train']}, "
             f"test {summary['counts']['test']}; skipped (unreadable or empty): {len(summary['skipped'])}; "
             f"ignored (not meshes in a class folder): {len(summary['ignored'])}", '',
             'class                 train   test  skipped']
    for label, name in zip(sorted({s.label for s in shapes}), summary['classes']):
        count = {split: sum(s.label == label and s.split == split for s in written) for split in SPLITS}
        failed = sum(s.label == label for s in shapes) - sum(count.values())
        lines.append(f"{name:20s} {count['train']:6d} {count['test']:6d} {failed:8d}")
    lines += ['', f"skipped ({len(summary['skipped'])}):"] + [f"  {why}" for _, why in summary['skipped']]
    lines += ['', f"ignored ({len(summary['ignored'])}):"] + [f"  {src}: {why}" for src, why in summary['ignored']]
    with atomic_write(summary['report'], 'w') as f:
        f.write('\n'.join(lines) + '\n')
