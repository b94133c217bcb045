"""Bad dataset input gives a DatasetError naming the key or file and what was expected."""
import os
import pickle

import h5py
import numpy as np
import pytest

from datasets import DatasetError, build_dataset
from datasets.files import atomic_write
from test_datasets import (write_fewshot, write_modelnet_cache, write_modelnet_raw, write_partseg_h5,
                           write_partseg_text, write_scan, write_shapenet)


def truncate(path):
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])


def raises(entry, *fragments):
    """Build ``entry``; the DatasetError message must hold every fragment."""
    with pytest.raises(DatasetError) as info:
        dataset = build_dataset(entry)
        dataset[0]
    for fragment in fragments:
        assert str(fragment) in str(info.value)


MISSING = [
    ({'NAME': 'ShapeNet', 'subset': 'train', 'npoints': 8}, 'DATA_PATH', 'train.txt'),
    ({'NAME': 'ModelNet', 'subset': 'train'}, 'DATA_PATH', 'modelnet{K}_shape_names.txt'),
    ({'NAME': 'ModelNetFewShot', 'subset': 'train', 'way': 5, 'shot': 10, 'fold': 0}, 'DATA_PATH', 'way_{shot}shot'),
    ({'NAME': 'ScanObjectNN', 'subset': 'train'}, 'ROOT', 'training_objectdataset.h5'),
    ({'NAME': 'ScanObjectNN_hardest', 'subset': 'test'}, 'ROOT', 'augmentedrot_scale75'),
    ({'NAME': 'ShapeNetPart', 'subset': 'test'}, 'DATA_PATH', 'synsetoffset2category.txt'),
]


@pytest.mark.parametrize('entry, key, layout', MISSING, ids=[m[0]['NAME'] for m in MISSING])
def test_missing_folder_names_key_path_layout_and_demo(tmp_path, entry, key, layout):
    missing = str(tmp_path / 'nowhere')
    raises({**entry, key: missing}, f'{key}=', missing, layout, 'tools/make_demo_data.py')


def test_missing_pc_path_and_listed_cloud(tmp_path):
    entry = write_shapenet(tmp_path)
    raises({**entry, 'PC_PATH': str(tmp_path / 'gone')}, 'PC_PATH=', 'make_demo_data')
    os.remove(tmp_path / 'shapenet_pc' / '02691157-model001.npy')
    raises(entry, '02691157-model001.npy', 'missing')


def test_modelnet_without_cache_or_raw_files(tmp_path):
    (tmp_path / 'mn').mkdir()
    raises({'NAME': 'ModelNet', 'DATA_PATH': str(tmp_path / 'mn'), 'subset': 'test'},
           'modelnet40_test_8192pts_fps.dat', 'modelnet40_shape_names.txt', 'make_demo_data')


@pytest.mark.parametrize('damage, fragments', [
    (truncate, ('cannot read',)),
    (lambda p: np.save(p, np.zeros((64, 4), np.float32)), ('shape (64, 4)', 'expected (n, 3)')),
    (lambda p: np.save(p, np.full((64, 3), np.nan, np.float32)), ('NaN or inf',)),
    (lambda p: np.save(p, np.zeros((20, 3), np.float32)), ('20 points', '32 requested')),
])
def test_bad_shapenet_cloud_names_the_file(tmp_path, damage, fragments):
    entry = write_shapenet(tmp_path)
    path = tmp_path / 'shapenet_pc' / '02691156-model000.npy'
    damage(path)
    raises(entry, path, *fragments)


def nan_in_second_row(path):
    lines = path.read_text().splitlines()
    lines[1] = 'nan,' + lines[1].split(',', 1)[1]
    path.write_text('\n'.join(lines) + '\n')


@pytest.mark.parametrize('damage, fragments', [
    (lambda p: p.write_text(p.read_text()[:p.read_text().index('\n', 100) + 12]), ('cannot read',)),
    (nan_in_second_row, ('NaN or inf',)),
    (lambda p: p.write_text('\n'.join(p.read_text().splitlines()[:10])), ('10 points', 'N_POINTS')),
    (lambda p: p.write_text('1,2,3\n4,5,6\n'), ('shape (2, 3)',)),
])
def test_bad_modelnet_raw_file_names_the_file(tmp_path, damage, fragments):
    entry = write_modelnet_raw(tmp_path / 'mn')
    path = tmp_path / 'mn' / 'sofa' / 'sofa_0001.txt'
    damage(path)
    raises(entry, path, *fragments)
    assert not [f for f in os.listdir(tmp_path / 'mn') if f.endswith('.dat') or '.tmp' in f]


def write_pickle(path, obj):
    with open(path, 'wb') as f:
        pickle.dump(obj, f)


@pytest.mark.parametrize('damage, fragments', [
    (truncate, ('cannot read',)),
    (lambda p: write_pickle(p, {'points': []}), ('expected a pickled',)),
    (lambda p: write_pickle(p, [[np.zeros((16, 3), np.float32)], [np.array([0])]]), ('shape (16, 3)', '(16, 6)')),
    (lambda p: write_pickle(p, [[np.full((16, 6), np.inf, np.float32)], [np.array([0])]]), ('NaN or inf',)),
    (lambda p: write_pickle(p, [[np.zeros((16, 6), np.float32)], [np.array([40])]]), ('label 40',)),
])
def test_bad_modelnet_cache_names_the_file(tmp_path, damage, fragments):
    (tmp_path / 'mn').mkdir()
    path = tmp_path / 'mn' / 'modelnet40_train_16pts_fps.dat'
    write_modelnet_cache(path)
    damage(path)
    raises({'NAME': 'ModelNet', 'DATA_PATH': str(tmp_path / 'mn'), 'N_POINTS': 16, 'subset': 'train'}, path, *fragments)


@pytest.mark.parametrize('damage, fragments', [
    (truncate, ('cannot read',)),
    (lambda p: write_pickle(p, [1, 2]), ("keys 'train' and 'test'",)),
    (lambda p: write_pickle(p, {'train': [(np.zeros((8, 6), np.float32), 0, 0)], 'test': []}), ('shape (8, 6)',)),
    (lambda p: write_pickle(p, {'train': [(np.zeros((16, 6), np.float32), 7, 0)], 'test': []}), ('label 7',)),
])
def test_bad_fewshot_fold_names_the_file(tmp_path, damage, fragments):
    entry = write_fewshot(tmp_path)
    path = tmp_path / '5way_2shot' / '0.pkl'
    damage(path)
    raises(entry, path, *fragments)


def rewrite_h5(path, **arrays):
    with h5py.File(path, 'a') as f:
        for key, value in arrays.items():
            del f[key]
            if value is not None:
                f[key] = value


@pytest.mark.parametrize('damage, fragments', [
    (truncate, ('cannot read',)),
    (lambda p: rewrite_h5(p, label=None), ("missing key(s) label",)),
    (lambda p: rewrite_h5(p, data=np.zeros((4, 2048, 4), np.float32)), ('shape (4, 2048, 4)',)),
    (lambda p: rewrite_h5(p, data=np.full((4, 2048, 3), np.nan, np.float32)), ('NaN or inf',)),
    (lambda p: rewrite_h5(p, label=np.array([0, 1, 2, 15])), ('expected [0, 15)',)),
])
def test_bad_scanobjectnn_file_names_the_file(tmp_path, damage, fragments):
    entry = write_scan(tmp_path / 'main_split')
    path = tmp_path / 'main_split' / 'training_objectdataset.h5'
    damage(path)
    raises(entry, path, *fragments)


def test_scanobjectnn_fewer_points_than_requested(tmp_path):
    entry = write_scan(tmp_path / 'main_split', n_points=100)
    raises({**entry, 'npoints': 1024}, '100 points', '1024 requested')


@pytest.mark.parametrize('rows, fragments', [
    (np.zeros((30, 6)), ('shape (30, 6)',)),
    (np.concatenate([np.zeros((30, 6)), np.full((30, 1), 40)], axis=1), ('part ids [40]', 'Chair')),
])
def test_bad_shapenetpart_text_file_names_the_file(tmp_path, rows, fragments):
    entry = write_partseg_text(tmp_path / 'txt')
    path = tmp_path / 'txt' / '03001627' / 'tok0.txt'
    np.savetxt(path, rows, fmt='%.6f')
    raises(entry, path, *fragments)


def test_bad_shapenetpart_h5_part_ids_name_the_file(tmp_path):
    entry = write_partseg_h5(tmp_path / 'h5')
    path = tmp_path / 'h5' / 'ply_data_val0.h5'
    rewrite_h5(path, pid=np.full((1, 300), 20, np.uint8))
    raises(entry, path, "outside its category's")


def test_interrupted_write_keeps_the_old_file(tmp_path):
    path = tmp_path / 'modelnet40_train_8192pts_fps.dat'
    path.write_bytes(b'old')
    with pytest.raises(RuntimeError):
        with atomic_write(str(path)) as f:
            f.write(b'half of the new')
            raise RuntimeError('interrupted')
    assert path.read_bytes() == b'old' and os.listdir(tmp_path) == [path.name]


def test_dataset_error_is_a_value_error():
    assert issubclass(DatasetError, ValueError)
