"""Data reliability: clouds that cannot be normalised are fixed (float64) or refused naming the file;
a worker's DatasetError is one line; an empty split names its list file; evaluation items do not
depend on the number of DataLoader workers."""
import numpy as np
import pytest
import torch

from datasets import build_dataloader, build_dataset
from datasets.files import DatasetError
from datasets.points import pc_normalize
from datasets.shapenet55 import write_shapenet55


def pointmae_normalize(pc):
    """Point-MAE's ``pc_normalize`` (in the input's dtype)."""
    pc = pc - np.mean(pc, axis=0)
    return pc / np.max(np.sqrt(np.sum(pc ** 2, axis=1)))


def cloud(seed, n=64, scale=1.0):
    return (np.random.default_rng(seed).normal(size=(n, 3)) * scale).astype(np.float32)


def test_ordinary_clouds_normalise_as_point_mae_does():
    points = cloud(0, scale=3.0)
    np.testing.assert_array_equal(pc_normalize(points), pointmae_normalize(points))


@pytest.mark.parametrize('scale', [1e20, 1e25, 1e37])
def test_huge_finite_coordinates_normalise_in_float64(scale):
    points = cloud(1, scale=scale)
    with np.errstate(all='raise'):
        out = pc_normalize(points)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    torch.testing.assert_close(torch.from_numpy(out), torch.from_numpy(pc_normalize(cloud(1))), rtol=1e-5, atol=1e-6)


def test_coincident_points_are_refused_naming_the_file():
    with pytest.raises(DatasetError, match=r'^x\.npy: the cloud cannot be normalised to the unit sphere \(all 8 points coincide\)'):
        pc_normalize(np.full((8, 3), 2.0, np.float32), 'x.npy')


def shapenet(tmp_path, train, test, npoints=32):
    root = tmp_path / 'sn'
    write_shapenet55(str(root / 'ShapeNet-55'), str(root / 'shapenet_pc'),
                     {'train': [('02691156', f'a{i}', p) for i, p in enumerate(train)],
                      'test': [('02691156', f'b{i}', p) for i, p in enumerate(test)]})
    return lambda subset: {'NAME': 'ShapeNet', 'DATA_PATH': str(root / 'ShapeNet-55'),
                           'PC_PATH': str(root / 'shapenet_pc'), 'N_POINTS': 64, 'subset': subset, 'npoints': npoints}


def test_dataset_item_with_huge_coordinates_is_not_all_zeros(tmp_path):
    entry = shapenet(tmp_path, [cloud(2, scale=1e25)], [np.zeros((64, 3), np.float32)])
    points = build_dataset(entry('train'))[0][2]
    radius = points.norm(dim=1).max()
    torch.testing.assert_close(radius, torch.tensor(1.0), rtol=0, atol=1e-5)
    with pytest.raises(DatasetError, match=r'shapenet_pc/02691156-b0\.npy: the cloud cannot be normalised'):
        build_dataset(entry('test'))[0]


def test_worker_dataset_error_is_one_line(tmp_path):
    bad = cloud(3)
    bad[5, 1] = np.nan
    entry = shapenet(tmp_path, [cloud(4)], [cloud(5), bad])
    loader = build_dataloader(entry('test'), train=False, total_bs=2, seed=0, num_workers=1)
    with pytest.raises(DatasetError) as err:
        list(loader)
    message = str(err.value)
    assert '\n' not in message and 'Traceback' not in message
    assert message.startswith(str(tmp_path / 'sn' / 'shapenet_pc' / '02691156-b1.npy') + ': coordinates contain NaN')


def test_empty_split_names_its_list_file(tmp_path):
    entry = shapenet(tmp_path, [cloud(6)], [])
    with pytest.raises(DatasetError) as err:
        build_dataloader(entry('test'), train=False, total_bs=2, seed=0, num_workers=0)
    list_file = tmp_path / 'sn' / 'ShapeNet-55' / 'test.txt'
    assert str(err.value) == f"dataset: the test split of ShapeNet is empty (no item in {list_file})"
    assert 'total_bs' not in str(err.value)


def test_evaluation_items_do_not_depend_on_workers_or_epoch(tmp_path):
    entry = shapenet(tmp_path, [cloud(7)], [cloud(10 + i) for i in range(6)])

    def batches(workers, epochs=1):
        np.random.seed(123 + workers)  # the main process's RNG must not matter either
        loader = build_dataloader(entry('test'), train=False, total_bs=2, seed=0, num_workers=workers)
        return [torch.cat([b[2] for b in loader]) for _ in range(epochs)]
    first, second = batches(0, epochs=2)
    torch.testing.assert_close(second, first, rtol=0, atol=0)
    torch.testing.assert_close(batches(2)[0], first, rtol=0, atol=0)
