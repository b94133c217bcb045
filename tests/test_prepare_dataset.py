"""tools/prepare_dataset.py on a few small meshes (one broken, one empty): both layouts load with
the real loaders, splits and samples are deterministic, skipped files are listed."""
import filecmp
import os

import numpy as np
import pytest
import trimesh

from datasets import DatasetError, build_dataset
from tools.prepare_dataset import main as prepare
from utils.config import load_config

BROKEN_OFF = 'OFF\n3 1 0\n0 0 0\n1 0\n'  # a vertex row with two numbers


@pytest.fixture(scope='module')
def meshes(tmp_path_factory):
    """chair: 3 meshes (obj, off, stl); lamp: ModelNet-style train/ and test/ folders (ply);
    table: 2 meshes, a broken OFF and an OBJ without geometry; a stray file at the top."""
    root = tmp_path_factory.mktemp('meshes')
    for folder in ('chair', 'lamp/train', 'lamp/test', 'table'):
        os.makedirs(root / folder)
    trimesh.creation.box((1.0, 0.5, 0.5)).export(root / 'chair' / 'a.obj')
    trimesh.creation.box((1.0, 2.0, 1.0)).export(root / 'chair' / 'b.off')
    trimesh.creation.icosphere(subdivisions=1).export(root / 'chair' / 'c.stl')
    trimesh.creation.cylinder(0.2, 1.0, sections=12).export(root / 'lamp' / 'train' / 'l1.ply')
    trimesh.creation.cylinder(0.3, 1.5, sections=12).export(root / 'lamp' / 'test' / 'l2.ply')
    trimesh.creation.capsule(1.0, 0.3, count=(8, 8)).export(root / 'table' / 't1.obj')
    trimesh.creation.cone(1.0, 1.0, sections=12).export(root / 'table' / 't2.obj')
    (root / 'table' / 'broken.off').write_text(BROKEN_OFF)
    (root / 'table' / 'empty.obj').write_text('# no vertices, no faces\n')
    (root / 'README.txt').write_text('not a mesh')
    return str(root)


def run(meshes, out, layout, *extra):
    prepare(['--meshes', meshes, '--layout', layout, '--out', str(out), '--points', '300', '--workers', '0', *extra])
    return load_config(os.path.join(out, 'dataset.yaml')).to_dict()


def test_modelnet_layout_loads_with_the_real_loader(meshes, tmp_path, capsys):
    cfg = run(meshes, tmp_path / 'mn', 'modelnet')
    err = capsys.readouterr().err
    assert 'broken.off' in err and 'empty.obj' in err
    assert cfg['NUM_CATEGORY'] == 3 and cfg['N_POINTS'] == 300
    train = build_dataset({**cfg, 'subset': 'train', 'npoints': 256})
    test = build_dataset({**cfg, 'subset': 'test', 'npoints': 256})
    assert (len(train), len(test)) == (4, 3)  # chair 2+1, lamp 1+1 (its folders), table 1+1
    labels = sorted(test[i][2][1] for i in range(len(test)))
    assert labels == [0, 1, 2]
    names = (tmp_path / 'mn' / 'modelnet3_shape_names.txt').read_text().split()
    assert names == ['chair', 'lamp', 'table']
    assert (tmp_path / 'mn' / 'modelnet3_test.txt').read_text().count('lamp') == 1
    rows = np.loadtxt(tmp_path / 'mn' / 'lamp' / 'lamp_0001.txt', delimiter=',')
    assert rows.shape == (300, 6)
    np.testing.assert_allclose(np.linalg.norm(rows[:, 3:], axis=1), 1.0, atol=1e-4)
    report = (tmp_path / 'mn' / 'prepare_report.txt').read_text()
    assert 'skipped (2)' in report and 'broken.off: cannot read' in report and 'empty.obj' in report
    assert 'README.txt: not inside a class sub-folder' not in report and 'README.txt: not a mesh' in report


def test_shapenet55_layout_loads_with_the_real_loader(meshes, tmp_path):
    cfg = run(meshes, tmp_path / 'sn', 'shapenet55')
    train = build_dataset({**cfg, 'subset': 'train', 'npoints': 128})
    test = build_dataset({**cfg, 'subset': 'test', 'npoints': 128})
    assert (len(train), len(test)) == (4, 3)
    taxonomy, model_id, points = next(test[i] for i in range(len(test)) if test[i][0] == 'lamp')
    assert (model_id, tuple(points.shape)) == ('l2', (128, 3))
    stored = np.load(tmp_path / 'sn' / 'shapenet_pc' / 'lamp-l2.npy')
    assert stored.shape == (300, 3) and stored.dtype == np.float32
    assert 'table-broken.npy' not in os.listdir(tmp_path / 'sn' / 'shapenet_pc')


def test_same_seed_same_files_in_any_number_of_processes(meshes, tmp_path):
    run(meshes, tmp_path / 'a', 'modelnet')
    run(meshes, tmp_path / 'b', 'modelnet', '--workers', '2')
    run(meshes, tmp_path / 'c', 'modelnet', '--seed', '1')
    for name in ('modelnet3_train.txt', 'modelnet3_test.txt', 'sources.csv', 'chair/chair_0001.txt'):
        assert filecmp.cmp(tmp_path / 'a' / name, tmp_path / 'b' / name, shallow=False), name
    assert not filecmp.cmp(tmp_path / 'a' / 'lamp' / 'lamp_0001.txt', tmp_path / 'c' / 'lamp' / 'lamp_0001.txt',
                           shallow=False)


def test_refuses_a_non_empty_output_and_overwrite_drops_stale_caches(meshes, tmp_path):
    cfg = run(meshes, tmp_path / 'mn', 'modelnet')
    build_dataset({**cfg, 'subset': 'train'})  # builds the FPS cache
    with pytest.raises(SystemExit, match='not empty; pass --overwrite'):
        run(meshes, tmp_path / 'mn', 'modelnet')
    run(meshes, tmp_path / 'mn', 'modelnet', '--overwrite', '--test_fraction', '0')
    assert not [f for f in os.listdir(tmp_path / 'mn') if f.endswith('_fps.dat')]
    assert len(build_dataset({**cfg, 'subset': 'test'})) == 1  # only lamp's own test/ folder


def test_folder_without_class_folders_is_an_error(tmp_path):
    trimesh.creation.box().export(tmp_path / 'loose.obj')
    with pytest.raises(SystemExit, match='no .obj/.off/.ply/.stl files inside class sub-folders'):
        run(str(tmp_path), tmp_path / 'out', 'modelnet')
    with pytest.raises(DatasetError, match='folder not found'):
        from datasets.own_data import discover
        discover(str(tmp_path / 'missing'))
