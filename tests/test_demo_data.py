"""Synthetic demo data: primitives sample exactly, the tiny size loads through the real loaders
with the documented counts, and a seed reproduces every byte."""
import contextlib
import glob
import io
import math
import os

import numpy as np
import pytest

from datasets import build_dataset
from datasets.demo.categories import CATEGORIES
from datasets.demo.generate import SIZES, make_demo_data
from datasets.demo.primitives import Box, Frustum, SphereZone, TorusArc
from datasets.files import PROJECT_ROOT
from datasets.shapenetpart_labels import CATEGORIES as PART_CATEGORIES, PART_COUNTS
from tools.make_demo_data import main
from utils.config import load_yaml

TINY = SIZES['tiny']
N_CAT, N_PART_CAT = len(CATEGORIES), sum(c.partseg is not None for c in CATEGORIES)


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    """The tiny demo data (seed 0) written by the command-line tool; (folder, printed summary)."""
    out = str(tmp_path_factory.mktemp('demo'))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        main(['--out', out, '--size', 'tiny', '--seed', '0'])
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
    assert f'{N_CAT} categories' in summary and 'airplane' in summary
    assert f'ShapeNet-55   train {TINY.shapenet[0] * N_CAT}, test {TINY.shapenet[1] * N_CAT}' in summary


def test_shapenet_layout(demo):
    root = demo[0]
    train = build_dataset(demo_entry(root, 'ShapeNet-55', subset='train', npoints=1024))
    test = build_dataset(demo_entry(root, 'ShapeNet-55', subset='test', npoints=1024))
    assert (len(train), len(test)) == (TINY.shapenet[0] * N_CAT, TINY.shapenet[1] * N_CAT)
    assert {t for t, _, _ in test} == {c.synset for c in CATEGORIES}
    stored = np.load(glob.glob(os.path.join(root, 'ShapeNet55-34', 'shapenet_pc', '*.npy'))[0])
    assert stored.shape == (8192, 3) and stored.dtype == np.float32 and train[0][2].shape == (1024, 3)


def test_modelnet_layout_and_fewshot_folds(demo):
    root = demo[0]
    test = build_dataset(demo_entry(root, 'ModelNet40', subset='test'))
    assert len(test) == TINY.modelnet[1] * N_CAT
    assert sorted({label for _, _, (_, label) in test}) == list(range(N_CAT))
    raw = glob.glob(os.path.join(root, 'ModelNet', 'modelnet40_normal_resampled', 'chair', '*.txt'))
    assert len(raw) == sum(TINY.modelnet) and np.loadtxt(raw[0], delimiter=',').shape == (10000, 6)
    ways, shots, folds, queries = TINY.fewshot
    assert len(glob.glob(os.path.join(root, 'ModelNetFewshot', '*', '*.pkl'))) == len(ways) * len(shots) * folds
    fold = build_dataset(demo_entry(root, 'ModelNet40FewShot', subset='test', way=10, shot=2, fold=1))
    _, _, (points, _) = fold[0]
    assert len(fold) == 10 * queries and points.shape == (8192, 3)


@pytest.mark.parametrize('config', ['ScanObjectNN_objectbg', 'ScanObjectNN_objectonly', 'ScanObjectNN_hardest'])
def test_scanobjectnn_layouts(demo, config):
    train = build_dataset(demo_entry(demo[0], config, subset='train'))
    name, _, (points, label) = train[0]
    assert len(train) == TINY.scan[0] * N_CAT and points.shape == (2048, 3) and 0 <= label < 15
    assert len(build_dataset(demo_entry(demo[0], config, subset='test'))) == TINY.scan[1] * N_CAT


def test_shapenetpart_layout_maps_onto_the_real_part_table(demo):
    for subset, count in zip(('train', 'val', 'test'), TINY.partseg):
        ds = build_dataset(demo_entry(demo[0], 'ShapeNetPart', subset=subset))
        assert ds.layout == 'txt' and len(ds) == count * N_PART_CAT
    trainval = build_dataset(demo_entry(demo[0], 'ShapeNetPart', subset='trainval'))
    assert len(trainval) == sum(TINY.partseg[:2]) * N_PART_CAT
    for category in CATEGORIES:
        if category.partseg:
            assert len(category.parts) == PART_COUNTS[PART_CATEGORIES.index(category.partseg)]


def folder_bytes(root):
    files = sorted(glob.glob(os.path.join(root, '**', '*'), recursive=True))
    return {os.path.relpath(f, root): open(f, 'rb').read() for f in files if os.path.isfile(f)}


def test_same_seed_gives_identical_files(demo, tmp_path):
    make_demo_data(str(tmp_path), seed=0, size='tiny')
    assert folder_bytes(demo[0]) == folder_bytes(str(tmp_path))


def test_other_seed_gives_other_shapes(demo, tmp_path):
    make_demo_data(str(tmp_path), seed=1, size='tiny')
    name = 'ModelNet/modelnet40_normal_resampled/modelnet40_train.txt'
    assert open(os.path.join(demo[0], name)).read() == open(tmp_path / name).read()
    cache = 'ModelNet/modelnet40_normal_resampled/modelnet40_train_8192pts_fps.dat'
    assert open(os.path.join(demo[0], cache), 'rb').read() != open(tmp_path / cache, 'rb').read()


def test_two_instances_of_a_category_differ():
    from datasets.demo.sampling import instance_rng, sample_object
    chair = CATEGORIES[[c.name for c in CATEGORIES].index('chair')]
    a, b = (sample_object(chair, instance_rng(0, 1, 4, i), 2048)[0] for i in (0, 1))
    assert np.abs(np.sort(a[:, 1]) - np.sort(b[:, 1])).mean() > 0.02


@pytest.mark.parametrize('shape, area', [
    (Box(1, 2, 3), 22.0),
    (Frustum(1.0, 0.5, 2.0), math.pi * 1.5 * math.hypot(2, 0.5) + math.pi * 1.25),
    (SphereZone(2.0, -1.0, 2.0), 2 * math.pi * 2 * 3),
    (TorusArc(1.0, 0.2, 180), math.pi * 1.0 * 2 * math.pi * 0.2),
])
def test_primitive_areas_and_unit_normals(shape, area):
    points, normals = shape.sample(2000, np.random.default_rng(0))
    assert shape.area() == pytest.approx(area) and points.shape == normals.shape == (2000, 3)
    assert np.allclose(np.linalg.norm(normals, axis=1), 1)


def test_cone_side_is_sampled_uniformly_by_area():
    cone = Frustum(1.0, 0.0, 1.0, bottom=False, top=False)
    points, normals = cone.sample(40000, np.random.default_rng(0))
    lower_half_share = 1 - 0.25   # the upper half (radius <= 1/2) holds a quarter of the area
    assert np.mean(points[:, 1] < 0) == pytest.approx(lower_half_share, abs=0.01)
    radial = points[:, [0, 2]] / np.linalg.norm(points[:, [0, 2]], axis=1, keepdims=True)
    assert np.allclose((normals[:, [0, 2]] * radial).sum(1), 1 / math.sqrt(2), atol=1e-6)


def test_torus_tube_angle_follows_the_area_density():
    points, normals = TorusArc(1.0, 0.5).sample(40000, np.random.default_rng(0))
    outer = np.linalg.norm(points[:, :2], axis=1) > 1.0
    assert outer.mean() == pytest.approx(0.5 + 0.5 / math.pi, abs=0.01)
