"""Synthetic demo data: the tiny size loads through the real loaders with the documented counts and
point counts, every ShapeNetPart synset gets a folder, and a seed reproduces every byte."""
import contextlib
import glob
import io
import json
import os

import h5py
import numpy as np
import pytest

from datasets import build_dataset
from datasets.demo.categories import CATEGORIES, MODELNET, PARTSEG, SCAN, SCAN_CLASSES, SHAPENET, SHAPENET_SYNSETS
from datasets.demo.generate import (MODELNET_POINTS, MODELNET_RAW_POINTS, PARTSEG_POINTS, SHAPENET_POINTS, SIZES,
                                    make_demo_data)
from datasets.files import PROJECT_ROOT
from datasets.shapenetpart_labels import CATEGORIES as PART_CATEGORIES, PARTS, SYNSETS
from tools.make_demo_data import main
from utils.config import load_yaml

TINY = SIZES['tiny']
PARTSEG_ROOT = 'shapenetcore_partanno_segmentation_benchmark_v0_normal'


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    """The tiny demo data (seed 0) written by the command-line tool in two processes; (folder, printed summary)."""
    out = str(tmp_path_factory.mktemp('demo'))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        main(['--out', out, '--size', 'tiny', '--seed', '0', '--workers', '2'])
    return out, printed.getvalue()


def demo_entry(root, config, **others):
    """A shipped demo dataset config with its ``data/demo`` paths moved to ``root``."""
    entry = load_yaml(os.path.join(PROJECT_ROOT, 'cfgs', 'demo', 'dataset_configs', f'{config}.yaml'))
    for key in ('DATA_PATH', 'ROOT', 'PC_PATH'):
        if key in entry:
            entry[key] = entry[key].replace('data/demo', root)
    return {**entry, **others}


def test_summary_lists_the_counts(demo):
    summary = demo[1]
    assert f'{len(CATEGORIES)} categories' in summary and 'airplane' in summary
    synsets = len(SHAPENET_SYNSETS)
    assert f'ShapeNet-55   train {TINY.shapenet[0] * synsets}, test {TINY.shapenet[1] * synsets}' in summary
    assert 'MiB on disk' in summary


def test_shapenet_layout(demo):
    root = demo[0]
    train = build_dataset(demo_entry(root, 'ShapeNet-55', subset='train', npoints=1024))
    test = build_dataset(demo_entry(root, 'ShapeNet-55', subset='test', npoints=1024))
    synsets = len(SHAPENET_SYNSETS)
    assert (len(train), len(test)) == (TINY.shapenet[0] * synsets, TINY.shapenet[1] * synsets)
    assert {t for t, _, _ in test} == {c.synset for c in SHAPENET}
    stored = np.load(glob.glob(os.path.join(root, 'ShapeNet55-34', 'shapenet_pc', '*.npy'))[0])
    assert stored.shape == (SHAPENET_POINTS, 3) and stored.dtype == np.float32 and train[0][2].shape == (1024, 3)
    assert demo_entry(root, 'ShapeNet-55')['N_POINTS'] == SHAPENET_POINTS


def test_modelnet_layout_and_fewshot_folds(demo):
    root = demo[0]
    test = build_dataset(demo_entry(root, 'ModelNet40', subset='test'))
    assert len(test) == TINY.modelnet[1] * len(MODELNET)
    assert sorted({label for _, _, (_, label) in test}) == list(range(len(MODELNET)))
    assert test[0][2][0].shape == (MODELNET_POINTS, 3)
    base = os.path.join(root, 'ModelNet', 'modelnet40_normal_resampled')
    names = open(os.path.join(base, 'modelnet40_shape_names.txt')).read().split()
    assert names == sorted(names) == [c.modelnet for c in MODELNET]
    raw = glob.glob(os.path.join(base, 'chair', '*.txt'))
    assert len(raw) == sum(TINY.modelnet) and np.loadtxt(raw[0], delimiter=',').shape == (MODELNET_RAW_POINTS, 6)
    ways, shots, folds, queries = TINY.fewshot
    assert len(glob.glob(os.path.join(root, 'ModelNetFewshot', '*', '*.pkl'))) == len(ways) * len(shots) * folds
    fold = build_dataset(demo_entry(root, 'ModelNet40FewShot', subset='test', way=10, shot=2, fold=1))
    _, _, (points, _) = fold[0]
    assert len(fold) == 10 * queries and points.shape == (MODELNET_POINTS, 3)
    # the configs that read the demo clouds state the stored count
    assert demo_entry(root, 'ModelNet40')['N_POINTS'] == demo_entry(root, 'ModelNet40FewShot')['N_POINTS'] == \
        MODELNET_POINTS


@pytest.mark.parametrize('config', ['ScanObjectNN_objectbg', 'ScanObjectNN_objectonly', 'ScanObjectNN_hardest'])
def test_scanobjectnn_layouts(demo, config):
    train = build_dataset(demo_entry(demo[0], config, subset='train'))
    name, _, (points, label) = train[0]
    assert len(train) == TINY.scan[0] * len(SCAN) and points.shape == (2048, 3) and 0 <= label < 15
    assert sorted(set(train.labels.tolist())) == list(range(len(SCAN_CLASSES)))
    assert len(build_dataset(demo_entry(demo[0], config, subset='test'))) == TINY.scan[1] * len(SCAN)


def test_scans_mask_the_background_and_object_only_has_none(demo):
    folder = os.path.join(demo[0], 'ScanObjectNN')
    with h5py.File(os.path.join(folder, 'main_split', 'training_objectdataset.h5')) as f:
        object_share = f['mask'][:].mean(axis=1)
    assert 0.2 < object_share.mean() < 0.99 and (object_share < 1).mean() > 0.5
    with h5py.File(os.path.join(folder, 'main_split_nobg', 'training_objectdataset.h5')) as f:
        assert 'mask' not in f
        assert np.allclose(np.linalg.norm(f['data'][:], axis=2).max(axis=1), 1, atol=1e-5)


def test_shapenetpart_layout_has_every_synset_and_real_part_ids(demo):
    root = os.path.join(demo[0], PARTSEG_ROOT)
    assert all(os.listdir(os.path.join(root, synset)) for synset in SYNSETS)   # Point-MAE lists each folder
    for subset, count in zip(('train', 'val', 'test'), TINY.partseg):
        ds = build_dataset(demo_entry(demo[0], 'ShapeNetPart', subset=subset))
        assert ds.layout == 'txt' and len(ds) == count * len(PARTSEG)
    entries = json.load(open(os.path.join(root, 'train_test_split', 'shuffled_train_file_list.json')))
    for entry in entries[::TINY.partseg[0]]:
        synset, token = entry.split('/')[-2:]
        rows = np.loadtxt(os.path.join(root, synset, f'{token}.txt'))
        category = PART_CATEGORIES[SYNSETS.index(synset)]
        assert PARTSEG_POINTS[0] <= len(rows) <= PARTSEG_POINTS[1]
        assert set(rows[:, 6].astype(int)) <= set(PARTS[category])


def folder_bytes(root):
    files = sorted(glob.glob(os.path.join(root, '**', '*'), recursive=True))
    return {os.path.relpath(f, root): open(f, 'rb').read() for f in files if os.path.isfile(f)}


def test_same_seed_gives_identical_files_in_one_process_or_two(demo, tmp_path):
    make_demo_data(str(tmp_path), seed=0, size='tiny', workers=1)
    assert folder_bytes(demo[0]) == folder_bytes(str(tmp_path))


def test_other_seed_gives_other_shapes(demo, tmp_path):
    make_demo_data(str(tmp_path), seed=1, size='tiny')
    name = 'ModelNet/modelnet40_normal_resampled/modelnet40_train.txt'
    assert open(os.path.join(demo[0], name)).read() == open(tmp_path / name).read()
    cache = f'ModelNet/modelnet40_normal_resampled/modelnet40_train_{MODELNET_POINTS}pts_fps.dat'
    assert open(os.path.join(demo[0], cache), 'rb').read() != open(tmp_path / cache, 'rb').read()
    scans = 'ScanObjectNN/main_split/training_objectdataset.h5'
    assert open(os.path.join(demo[0], scans), 'rb').read() != open(tmp_path / scans, 'rb').read()


def test_unknown_size_is_refused(tmp_path):
    with pytest.raises(ValueError, match="size='huge'; accepted: tiny, small, full"):
        make_demo_data(str(tmp_path), size='huge')
