"""``datasets.unpack_batch``: every dataset kind's collated batch -> Batch(points, label, parts),
by the loader's kind and by structure, on real loaders over the tiny demo data; ShapeNetPart's
3-tuple gives its points (not its part labels); malformed batches are one-line errors."""
import os

import numpy as np
import pytest
import torch

from datasets import Batch, DatasetError, build_dataloader, unpack_batch
from datasets.batch import batch_kind


@pytest.fixture(scope='module')
def demo_layouts(tmp_path_factory):
    """Tiny ModelNet, ShapeNetPart and ScanObjectNN layouts (ShapeNet comes from ``demo_root``)."""
    from datasets.demo.generate import SIZES, make_modelnet, make_partseg, make_scans
    out = str(tmp_path_factory.mktemp('demo_layouts'))
    make_modelnet(out, 0, SIZES['tiny'])
    make_partseg(out, 0, SIZES['tiny'])
    make_scans(out, 0, SIZES['tiny'])
    return out


def entries(demo_root, layouts):
    from datasets.demo.generate import MODELNET_POINTS
    return {
        'ShapeNet': {'NAME': 'ShapeNet', 'DATA_PATH': os.path.join(demo_root, 'ShapeNet55-34', 'ShapeNet-55'),
                     'PC_PATH': os.path.join(demo_root, 'ShapeNet55-34', 'shapenet_pc'), 'subset': 'test',
                     'npoints': 128},
        'ModelNet': {'NAME': 'ModelNet', 'DATA_PATH': os.path.join(layouts, 'ModelNet', 'modelnet40_normal_resampled'),
                     'N_POINTS': MODELNET_POINTS, 'subset': 'test'},
        'ScanObjectNN': {'NAME': 'ScanObjectNN', 'ROOT': os.path.join(layouts, 'ScanObjectNN', 'main_split'),
                         'subset': 'test'},
        'ShapeNetPart': {'NAME': 'ShapeNetPart', 'subset': 'test', 'npoints': 256,
                         'DATA_PATH': os.path.join(layouts, 'shapenetcore_partanno_segmentation_benchmark_v0_normal')},
    }


@pytest.mark.parametrize('name, kind', [('ShapeNet', 'shapes'), ('ModelNet', 'classification'),
                                        ('ScanObjectNN', 'classification'), ('ShapeNetPart', 'partseg')])
def test_each_dataset_kind_unpacks(demo_root, demo_layouts, name, kind):
    loader = build_dataloader(entries(demo_root, demo_layouts)[name], train=False, total_bs=2, seed=0,
                              num_workers=0)
    assert loader.kind == kind
    raw = next(iter(loader))
    batch = unpack_batch(raw, loader.kind)
    assert isinstance(batch, Batch)
    assert batch_kind(raw) == kind and unpack_batch(raw)._fields == batch._fields  # the structure agrees
    B, N, C = batch.points.shape
    assert B == 2 and C == 3 and batch.points.dtype == torch.float32
    if kind == 'shapes':
        assert batch.label is None and batch.parts is None
        torch.testing.assert_close(batch.points, raw[2], rtol=0, atol=0)
    if kind == 'classification':
        assert batch.label.shape == (2,) and batch.label.dtype == torch.int64 and batch.parts is None
        torch.testing.assert_close(batch.points, raw[2][0], rtol=0, atol=0)
    if kind == 'partseg':  # (points, category, parts): the points are the first element, not the parts
        torch.testing.assert_close(batch.points, raw[0], rtol=0, atol=0)
        assert batch.label.shape == (2,) and batch.parts.shape == (2, N) and batch.parts.dtype == torch.int64
        assert batch.points.abs().max() <= 1.0 + 1e-5   # normalised coordinates, not part ids


def test_point_mae_layout_plain_pair_and_column_labels():
    points, labels = torch.rand(3, 16, 3), torch.tensor([[1], [0], [2]])
    for raw in (['ModelNet'] * 3, ['sample'] * 3, (points, labels)), (points, labels):
        batch = unpack_batch(raw, 'classification')
        assert batch.points is points and batch.label.tolist() == [1, 0, 2] and batch.parts is None
        assert unpack_batch(raw).label.tolist() == [1, 0, 2]


def test_partseg_triple_is_not_read_as_pretraining():
    """The 3-tuple case ``unpack_batch`` got wrong before: ShapeNetPart's third element is parts."""
    points, category, parts = torch.rand(2, 32, 3), torch.tensor([3, 7]), torch.randint(0, 50, (2, 32))
    batch = unpack_batch((points, category, parts))
    assert batch.points is points and batch.parts is parts and torch.equal(batch.label, category)
    shapes = unpack_batch((['02691156', '03001627'], ['a', 'b'], points))
    assert shapes.points is points and shapes.label is None


@pytest.mark.parametrize('raw, kind, message', [
    ((torch.rand(2, 8, 3), torch.tensor([0, 1])), 'partseg', r"a 'partseg' batch must be \(points"),
    ((['a'], ['b'], torch.rand(2, 8, 3)), 'classification', r"a 'classification' batch must be"),
    ((torch.rand(2, 8, 3), torch.tensor([0, 1]), torch.rand(2, 8, 3)), 'partseg', r'got a 3-tuple of \(tensor'),
    (torch.rand(2, 8, 3), None, r'is no known batch layout'),
])
def test_malformed_batches_name_what_was_found(raw, kind, message):
    with pytest.raises(DatasetError, match=message):
        unpack_batch(raw, kind)


def test_unknown_kind():
    with pytest.raises(ValueError, match="kind must be one of"):
        unpack_batch((torch.rand(1, 4, 3),), 'points')


def test_evaluation_loaders_keep_the_stored_point_order(demo_layouts, torch_globals):
    """A train split read by an evaluation loader gives the same clouds whatever the RNG; the
    training loader still shuffles each cloud's points."""
    entry = entries('', demo_layouts)['ModelNet'] | {'subset': 'train'}

    def first_cloud(train, seed):
        torch.manual_seed(seed)
        np.random.seed(seed)
        loader = build_dataloader(entry, train=train, total_bs=1, seed=0, num_workers=0)
        return unpack_batch(next(iter(loader)), loader.kind).points
    torch.testing.assert_close(first_cloud(False, 0), first_cloud(False, 1), rtol=0, atol=0)
    assert not torch.equal(first_cloud(True, 0), first_cloud(True, 1))
