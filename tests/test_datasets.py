"""Each loader on tiny fixtures written here, by hand, in the real on-disk layouts (formats.md).

The ``write_*`` helpers return a config entry for the layout; the error and loader-builder
tests import them.
"""
import json
import os
import pickle

import h5py
import numpy as np
import pytest
import torch

from datasets import build_dataset
from datasets.modelnet_cache import MIN_SHAPES_FOR_PROCESSES, build_cache, cache_path, read_cache
from datasets.modelnet_fewshot import write_fewshot_folds
from datasets.shapenetpart_labels import CATEGORIES, PARTS, SYNSETS
from extensions import furthest_point_sample
from utils.config import ConfigError


def cloud(n, seed, cols=3):
    return np.random.default_rng(seed).normal(size=(n, cols)).astype(np.float32)


def write_shapenet(root, n_train=3, n_test=2, n_points=64):
    """``<root>/ShapeNet-55/{train,test}.txt`` + ``<root>/shapenet_pc/<synset>-<id>.npy``."""
    (root / 'ShapeNet-55').mkdir(parents=True)
    (root / 'shapenet_pc').mkdir()
    for split, count, offset in (('train', n_train, 0), ('test', n_test, 100)):
        names = [f'0{2691156 + i % 2}-model{offset + i:03d}.npy' for i in range(count)]
        for i, name in enumerate(names):
            np.save(root / 'shapenet_pc' / name, cloud(n_points, offset + i) * 3 + 5)
        (root / 'ShapeNet-55' / f'{split}.txt').write_text('\n'.join(names) + '\n')
    return {'NAME': 'ShapeNet', 'DATA_PATH': str(root / 'ShapeNet-55'), 'PC_PATH': str(root / 'shapenet_pc'),
            'N_POINTS': n_points, 'subset': 'train', 'npoints': 32}


MODELNET_CLASSES = ('bed', 'night_stand', 'sofa')


def write_modelnet_raw(root, per_class=2, rows=40):
    """``modelnet40_shape_names.txt``, ``modelnet40_{train,test}.txt``, ``<class>/<id>.txt`` (x,y,z,nx,ny,nz)."""
    root.mkdir(parents=True)
    (root / 'modelnet40_shape_names.txt').write_text('\n'.join(MODELNET_CLASSES) + '\n')
    for split, first in (('train', 1), ('test', 1 + per_class)):
        ids = [f'{c}_{first + i:04d}' for c in MODELNET_CLASSES for i in range(per_class)]
        for k, shape_id in enumerate(ids):
            (root / shape_id.rsplit('_', 1)[0]).mkdir(exist_ok=True)
            rows_text = '\n'.join(','.join(f'{v:.6f}' for v in r) for r in cloud(rows, 7 * first + k, 6))
            (root / shape_id.rsplit('_', 1)[0] / f'{shape_id}.txt').write_text(rows_text + '\n')
        (root / f'modelnet40_{split}.txt').write_text('\n'.join(ids) + '\n')
    return {'NAME': 'ModelNet', 'DATA_PATH': str(root), 'N_POINTS': 16, 'NUM_CATEGORY': 40, 'subset': 'train'}


def write_modelnet_cache(path, n_shapes=4, n_points=16):
    points = [cloud(n_points, i, 6) for i in range(n_shapes)]
    labels = [np.array([i % 3], dtype=np.int32) for i in range(n_shapes)]
    with open(path, 'wb') as f:
        pickle.dump([points, labels], f)
    return points, labels


def write_fewshot(root, way=5, shot=2, fold=0, n_points=16):
    """``<root>/{way}way_{shot}shot/{fold}.pkl`` = {'train': [...], 'test': [...]} of (points, label, original)."""
    folder = root / f'{way}way_{shot}shot'
    folder.mkdir(parents=True)
    entries = {split: [(cloud(n_points, 50 * (split == 'test') + i, 6), i % way, 10 + i % way)
                       for i in range(way * count)] for split, count in (('train', shot), ('test', 3))}
    with open(folder / f'{fold}.pkl', 'wb') as f:
        pickle.dump(entries, f)
    return {'NAME': 'ModelNetFewShot', 'DATA_PATH': str(root), 'N_POINTS': n_points,
            'way': way, 'shot': shot, 'fold': fold, 'subset': 'train'}


SCAN_FILES = {'ScanObjectNN': ('training_objectdataset.h5', 'test_objectdataset.h5'),
              'ScanObjectNN_hardest': ('training_objectdataset_augmentedrot_scale75.h5',
                                       'test_objectdataset_augmentedrot_scale75.h5')}


def write_scan(root, name='ScanObjectNN', n=(4, 3), n_points=2048):
    """h5 files with ``data`` (n, 2048, 3), ``label`` (n,) and an ignored ``mask``."""
    root.mkdir(parents=True, exist_ok=True)
    for file_name, count in zip(SCAN_FILES[name], n):
        with h5py.File(root / file_name, 'w') as f:
            f['data'] = np.stack([cloud(n_points, i) for i in range(count)])
            f['label'] = np.arange(count) % 15
            f['mask'] = np.ones((count, n_points), dtype=np.int64)
    return {'NAME': name, 'ROOT': str(root), 'subset': 'train'}


def part_rows(n, category, seed):
    parts = np.array(PARTS[category])[np.arange(n) % len(PARTS[category])]
    return np.concatenate([cloud(n, seed, 6), parts[:, None]], axis=1)


def write_partseg_text(root, sizes=(('Chair', 'train', 300), ('Chair', 'val', 250), ('Mug', 'train', 100),
                                    ('Mug', 'test', 260))):
    """``synsetoffset2category.txt``, ``<synset>/<token>.txt`` rows x y z nx ny nz part, split json lists."""
    root.mkdir(parents=True)
    (root / 'synsetoffset2category.txt').write_text(''.join(f'{c}\t{s}\n' for c, s in zip(CATEGORIES, SYNSETS)))
    (root / 'train_test_split').mkdir()
    lists = {'train': [], 'val': [], 'test': []}
    for k, (category, split, n) in enumerate(sizes):
        synset = SYNSETS[CATEGORIES.index(category)]
        (root / synset).mkdir(exist_ok=True)
        np.savetxt(root / synset / f'tok{k}.txt', part_rows(n, category, k), fmt='%.6f')
        lists[split].append(f'shape_data/{synset}/tok{k}')
    for split, entries in lists.items():
        (root / 'train_test_split' / f'shuffled_{split}_file_list.json').write_text(json.dumps(entries))
    return {'NAME': 'ShapeNetPart', 'DATA_PATH': str(root), 'subset': 'trainval', 'npoints': 256}


def write_partseg_h5(root, n_points=300):
    """``ply_data_{train0,val0,test0}.h5`` with ``data`` (n,P,3), ``label`` (n,1), ``pid`` (n,P)."""
    root.mkdir(parents=True)
    for split, categories in (('train0', ('Airplane', 'Table')), ('val0', ('Bag',)), ('test0', ('Lamp',))):
        rows = [part_rows(n_points, c, i) for i, c in enumerate(categories)]
        with h5py.File(root / f'ply_data_{split}.h5', 'w') as f:
            f['data'] = np.stack([r[:, :3] for r in rows])
            f['label'] = np.array([[CATEGORIES.index(c)] for c in categories], dtype=np.uint8)
            f['pid'] = np.stack([r[:, 6] for r in rows]).astype(np.uint8)
    return {'NAME': 'ShapeNetPart', 'DATA_PATH': str(root), 'subset': 'trainval', 'npoints': 256}


def assert_normalized(points):
    assert torch.allclose(points.mean(0), torch.zeros(3), atol=1e-5)
    assert points.norm(dim=1).max() == pytest.approx(1.0, abs=1e-5)


def test_shapenet_items(tmp_path):
    entry = write_shapenet(tmp_path)
    ds = build_dataset(entry)
    taxonomy_id, model_id, points = ds[1]
    assert len(ds) == 3 and (taxonomy_id, model_id) == ('02691157', 'model001')
    assert points.shape == (32, 3) and points.dtype == torch.float32
    assert_normalized(points)
    assert len(build_dataset({**entry, 'subset': 'test'})) == 2
    assert len(build_dataset({**entry, 'whole': True})) == 5


def test_modelnet_builds_cache_from_raw_files(tmp_path):
    entry = write_modelnet_raw(tmp_path / 'mn')
    ds = build_dataset(entry)
    path = cache_path(entry['DATA_PATH'], 40, 'train', 16)
    assert os.path.isfile(path) and not [f for f in os.listdir(tmp_path / 'mn') if '.tmp' in f]
    name, sample, (points, label) = ds[2]
    assert (name, sample, label) == ('ModelNet', 'sample', 1)
    assert points.shape == (16, 3) and points.dtype == torch.float32
    assert_normalized(points)
    assert build_dataset({**entry, 'USE_NORMALS': True})[0][2][0].shape == (16, 6)


def test_modelnet_cache_holds_exact_fps_of_the_raw_rows(tmp_path):
    entry = write_modelnet_raw(tmp_path / 'mn')
    build_dataset(entry)
    points, labels = read_cache(cache_path(entry['DATA_PATH'], 40, 'train', 16), 16, 40)
    raw = np.loadtxt(tmp_path / 'mn' / 'sofa' / 'sofa_0002.txt', delimiter=',', dtype=np.float32)
    idx = [int(np.flatnonzero((raw == row).all(1))[0]) for row in points[5]]
    reference = furthest_point_sample(torch.from_numpy(raw[None, :, :3]), 16, start_idx=idx[0])
    assert labels.tolist() == [0, 0, 1, 1, 2, 2] and idx == reference[0].tolist()


def test_parallel_cache_build_equals_serial(tmp_path):
    root = write_modelnet_raw(tmp_path / 'mn', per_class=22, rows=24)['DATA_PATH']
    assert 3 * 22 >= MIN_SHAPES_FOR_PROCESSES
    serial = read_cache(build_cache(root, 40, 'train', 16, workers=1), 16, 40)
    parallel = read_cache(build_cache(root, 40, 'train', 16, workers=2), 16, 40)
    assert np.array_equal(serial[1], parallel[1]) and all(np.array_equal(a, b) for a, b in zip(serial[0], parallel[0]))


def test_modelnet_reads_existing_cache_without_raw_files(tmp_path):
    (tmp_path / 'mn').mkdir()
    points, _ = write_modelnet_cache(tmp_path / 'mn' / 'modelnet40_test_16pts_fps.dat')
    ds = build_dataset({'NAME': 'ModelNet', 'DATA_PATH': str(tmp_path / 'mn'), 'N_POINTS': 16, 'subset': 'test'})
    first, again = ds[3][2][0], ds[3][2][0]
    assert len(ds) == 4 and ds[3][2][1] == 0 and torch.equal(first, again)
    expected = points[3][:, :3] - points[3][:, :3].mean(0)
    assert np.allclose(first.numpy(), expected / np.linalg.norm(expected, axis=1).max(), atol=1e-5)


def test_train_items_shuffle_point_order(tmp_path):
    (tmp_path / 'mn').mkdir()
    write_modelnet_cache(tmp_path / 'mn' / 'modelnet40_train_16pts_fps.dat')
    ds = build_dataset({'NAME': 'ModelNet', 'DATA_PATH': str(tmp_path / 'mn'), 'N_POINTS': 16, 'subset': 'train'})
    np.random.seed(0)
    a, b = ds[0][2][0], ds[0][2][0]
    assert not torch.equal(a, b)
    assert torch.equal(a[a[:, 0].argsort()], b[b[:, 0].argsort()])


def test_fewshot_fold(tmp_path):
    entry = write_fewshot(tmp_path)
    train, test = build_dataset(entry), build_dataset({**entry, 'subset': 'test'})
    assert (len(train), len(test)) == (10, 15)
    name, _, (points, label) = test[7]
    assert name == 'ModelNet' and points.shape == (16, 3) and label == 2
    with pytest.raises(ConfigError, match='--way'):
        build_dataset({**entry, 'way': -1})


def test_fewshot_generator_is_seeded_and_draws_from_the_right_split(tmp_path):
    train = ([cloud(8, i, 6) for i in range(24)], [i % 6 for i in range(24)])
    test = ([cloud(8, 100 + i, 6) for i in range(30)], [i % 6 for i in range(30)])
    paths = write_fewshot_folds(train, test, tmp_path / 'a', seed=3, ways=(5,), shots=(2, 3), folds=2, n_query=4)
    again = write_fewshot_folds(train, test, tmp_path / 'b', seed=3, ways=(5,), shots=(2, 3), folds=2, n_query=4)
    assert [os.path.relpath(p, tmp_path / 'a') for p in paths] == ['5way_2shot/0.pkl', '5way_2shot/1.pkl',
                                                                    '5way_3shot/0.pkl', '5way_3shot/1.pkl']
    assert all(open(p, 'rb').read() == open(q, 'rb').read() for p, q in zip(paths, again))
    fold = pickle.load(open(paths[2], 'rb'))
    assert (len(fold['train']), len(fold['test'])) == (15, 20)
    for split, cache in (('train', train), ('test', test)):
        for points, label, original in fold[split]:
            source = [i for i, p in enumerate(cache[0]) if np.array_equal(p, points)]
            assert 0 <= label < 5 and len(source) == 1 and cache[1][source[0]] == original
        assert len({(label, original) for _, label, original in fold[split]}) == 5


@pytest.mark.parametrize('name', ['ScanObjectNN', 'ScanObjectNN_hardest'])
@pytest.mark.parametrize('key', ['ROOT', 'DATA_PATH'])
def test_scanobjectnn(tmp_path, name, key):
    entry = write_scan(tmp_path / 'main_split', name)
    entry[key] = entry.pop('ROOT')
    train, test = build_dataset(entry), build_dataset({**entry, 'subset': 'test'})
    name_out, _, (points, label) = test[2]
    assert (len(train), len(test), name_out, label) == (4, 3, 'ScanObjectNN', 2)
    assert points.shape == (2048, 3) and torch.allclose(points, torch.from_numpy(cloud(2048, 2)))


def test_scanobjectnn_rejects_disagreeing_root_and_data_path(tmp_path):
    entry = write_scan(tmp_path / 'main_split')
    with pytest.raises(ConfigError, match='differ'):
        build_dataset({**entry, 'DATA_PATH': str(tmp_path)})


def test_shapenetpart_text_layout(tmp_path):
    entry = write_partseg_text(tmp_path / 'txt')
    ds = build_dataset(entry)
    assert ds.layout == 'txt' and len(ds) == 3
    for points, category, parts in (ds[i] for i in range(3)):
        assert points.shape == (256, 3) and points.dtype == torch.float32 and parts.dtype == torch.int64
        assert set(parts.tolist()) <= set(PARTS[CATEGORIES[category]])
    assert [ds[i][1] for i in range(3)] == [4, 11, 4]   # train list, then val
    assert len(build_dataset({**entry, 'subset': 'test'})) == 1


def test_shapenetpart_pads_small_clouds_by_repeating_points(tmp_path):
    ds = build_dataset(write_partseg_text(tmp_path / 'txt'))
    points, _, parts = ds[1]   # the Mug file has 100 points
    assert len(torch.unique(points, dim=0)) == 100 and parts.shape == (256,)


def test_shapenetpart_h5_layout(tmp_path):
    entry = write_partseg_h5(tmp_path / 'h5')
    ds = build_dataset(entry)
    assert ds.layout == 'h5' and len(ds) == 3
    points, category, parts = ds[1]
    assert category == CATEGORIES.index('Table') and points.shape == (256, 3)
    assert set(parts.tolist()) == set(PARTS['Table'])
    assert build_dataset({**entry, 'subset': 'test'})[0][1] == CATEGORIES.index('Lamp')


def test_h5_files_are_opened_read_only(tmp_path, monkeypatch):
    entries = [write_partseg_h5(tmp_path / 'h5'), write_scan(tmp_path / 'scan')]
    modes, real_file = [], h5py.File
    monkeypatch.setattr(h5py, 'File', lambda path, mode=None, **kw: modes.append(mode) or real_file(path, mode, **kw))
    for entry in entries:
        build_dataset(entry)
    assert len(modes) == 3 and set(modes) == {'r'}
