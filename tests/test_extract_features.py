"""tools/extract_features.py on a folder of clouds and meshes: npz contents, skipped files, and the
same features as load_encoder on the same preprocessed cloud."""
import os

import numpy as np
import pytest
import torch
import trimesh

from datasets.meshes import model_input, read_points, shape_rng
from models.features import load_encoder
from test_features import ours_pretrain
from tools.extract_features import main as extract

NPOINTS = 128


@pytest.fixture(autouse=True)
def _torch(torch_globals):
    yield


@pytest.fixture
def shapes(tmp_path):
    root = tmp_path / 'shapes'
    os.makedirs(root / 'sub')
    rng = np.random.default_rng(0)
    np.save(root / 'cloud.npy', rng.normal(size=(500, 3)).astype(np.float32))
    np.savetxt(root / 'modelnet_row.txt', rng.normal(size=(400, 6)), delimiter=',', fmt='%.6f')
    np.savetxt(root / 'sub' / 'scan.xyz', rng.normal(size=(300, 3)))
    trimesh.creation.box((1.0, 2.0, 0.5)).export(root / 'sub' / 'box.stl')
    trimesh.creation.icosphere(subdivisions=1).export(root / 'sphere.off')
    np.savetxt(root / 'few.xyz', rng.normal(size=(20, 3)))
    (root / 'broken.ply').write_bytes(b'ply\nformat ascii 1.0\nelement vertex 3\nend_header\n1 2\n')
    (root / 'notes.md').write_text('ignored: not a shape file')
    return root


def test_folder_to_npz(tmp_path, shapes, capsys):
    ckpt, _, _ = ours_pretrain(tmp_path)
    out = tmp_path / 'feats.npz'
    extract(['--ckpts', str(ckpt), '--input', str(shapes), '--out', str(out), '--npoints', str(NPOINTS),
             '--batch', '2', '--device', 'cpu', '--patches', '--per_point'])
    err = capsys.readouterr().err
    assert 'few.xyz: 20 points, fewer than the 128 requested' in err and 'broken.ply' in err
    data = np.load(out)
    names = list(data['names'])
    assert names == ['cloud.npy', 'modelnet_row.txt', 'sphere.off', 'sub/box.stl', 'sub/scan.xyz']
    assert sorted(data['skipped']) == ['broken.ply', 'few.xyz'] and len(data['skipped_reasons']) == 2
    n = len(names)
    assert data['global_features'].shape == (n, 64)
    assert data['patch_tokens'].shape == (n, 16, 32) and data['centers'].shape == (n, 16, 3)
    assert data['points'].shape == (n, NPOINTS, 3) and data['point_features'].shape == (n, NPOINTS, 32)
    # the same cloud through the Python entry gives the same features
    i = names.index('sphere.off')
    cloud = model_input(str(shapes / 'sphere.off'), NPOINTS, 8192, shape_rng(0, 'sphere.off'))
    np.testing.assert_allclose(data['points'][i], cloud)
    with torch.no_grad():
        expected = load_encoder(ckpt)(torch.from_numpy(cloud)[None])
    np.testing.assert_allclose(data['global_features'][i], expected.global_feature[0].numpy(), rtol=1e-4, atol=1e-5)
    assert np.abs(data['points']).max() <= 1.0 + 1e-5  # pc_normalize: unit sphere


def test_single_file_and_defaults(tmp_path, shapes):
    ckpt, _, _ = ours_pretrain(tmp_path)
    out = tmp_path / 'one.npz'
    extract(['--ckpts', str(ckpt), '--input', str(shapes / 'cloud.npy'), '--out', str(out), '--npoints', '64'])
    data = np.load(out)
    assert data['global_features'].shape == (1, 64)
    assert 'point_features' not in data and 'patch_tokens' not in data


def test_mesh_sampling_is_seeded_and_text_clouds_keep_xyz(shapes):
    a = read_points(str(shapes / 'sphere.off'), 256, shape_rng(0, 'x'))
    b = read_points(str(shapes / 'sphere.off'), 256, shape_rng(0, 'x'))
    c = read_points(str(shapes / 'sphere.off'), 256, shape_rng(1, 'x'))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (256, 3) and not np.array_equal(a, c)
    rows = np.loadtxt(shapes / 'modelnet_row.txt', delimiter=',')
    np.testing.assert_allclose(read_points(str(shapes / 'modelnet_row.txt')), rows[:, :3], rtol=1e-6)


def test_nothing_readable_is_an_error(tmp_path, shapes):
    ckpt, _, _ = ours_pretrain(tmp_path)
    with pytest.raises(SystemExit, match='none of the 1 input files could be read'):
        extract(['--ckpts', str(ckpt), '--input', str(shapes / 'few.xyz'), '--out', str(tmp_path / 'x.npz')])
    with pytest.raises(SystemExit, match='no such file or folder'):
        extract(['--ckpts', str(ckpt), '--input', str(tmp_path / 'missing'), '--out', str(tmp_path / 'x.npz')])
