"""Dataset registry, config checking and the epoch-aware data loader."""
import glob
import os

import pytest
import torch

import datasets.build
from datasets import DATASETS, build_dataloader, build_dataset, check_dataset_config
from test_datasets import write_shapenet
from utils.config import ConfigError, load_yaml

NAMES = ['ModelNet', 'ModelNetFewShot', 'ScanObjectNN', 'ScanObjectNN_hardest', 'ShapeNet', 'ShapeNetPart']


def test_registry_holds_every_format():
    assert DATASETS.names() == NAMES
    for name in NAMES:
        keys = DATASETS.get(name).CONFIG_KEYS
        assert {'NAME', 'subset', 'npoints', 'bs', 'whole'} <= set(keys)


def test_unknown_key_is_rejected_with_a_close_match():
    with pytest.raises(ConfigError, match=r"dataset.train: unknown key 'DATA_PTH' \(did you mean 'DATA_PATH'\?\)"):
        check_dataset_config({'NAME': 'ShapeNet', 'DATA_PTH': 'x'}, 'dataset.train')


def test_unknown_or_missing_name_lists_the_accepted_ones():
    with pytest.raises(ConfigError, match="unknown dataset 'ShapeNet55'.*accepted: ModelNet, ModelNetFewShot"):
        check_dataset_config({'NAME': 'ShapeNet55'})
    with pytest.raises(ConfigError, match='expected a dataset entry with a NAME'):
        check_dataset_config({'subset': 'train'})


def test_defaults_are_filled_and_others_flattened():
    cfg = check_dataset_config({'NAME': 'ModelNet', 'others': {'subset': 'train', 'bs': 32}})
    assert cfg.subset == 'train' and cfg.bs == 32 and cfg.N_POINTS == 8192 and cfg.USE_NORMALS is False
    assert cfg.DATA_PATH == 'data/ModelNet/modelnet40_normal_resampled' and cfg.whole is False


CFGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'cfgs')
SHIPPED = sorted(glob.glob(f'{CFGS}/dataset_configs/*.yaml') + glob.glob(f'{CFGS}/demo/dataset_configs/*.yaml'))


@pytest.mark.parametrize('path', SHIPPED)
def test_shipped_dataset_configs_pass_the_checker(path):
    assert len(SHIPPED) == 14
    cfg = check_dataset_config({**load_yaml(path), 'subset': 'test'}, path)
    assert cfg.get('DATA_PATH', cfg.get('ROOT')).startswith('data/demo/' if '/demo/' in path else 'data/')


def test_bad_subset_lists_the_accepted_ones(tmp_path):
    with pytest.raises(ConfigError, match="subset='tran'; accepted: train, test"):
        build_dataset({**write_shapenet(tmp_path), 'subset': 'tran'})


def fake_world(monkeypatch, size, rank):
    monkeypatch.setattr(datasets.build.dist, 'get_world_size', lambda: size)
    monkeypatch.setattr(datasets.build.dist, 'get_rank', lambda: rank)


def test_batch_size_is_the_per_rank_share_of_total_bs(tmp_path, monkeypatch):
    entry = write_shapenet(tmp_path, n_train=8)
    fake_world(monkeypatch, 2, 1)
    loader = build_dataloader(entry, train=True, total_bs=4, seed=0, num_workers=0)
    assert loader.batch_size == 2 and loader.sampler.num_replicas == 2 and len(loader) == 2
    assert [len(batch[2]) for batch in loader] == [2, 2]
    with pytest.raises(ConfigError, match='total_bs=3 is not divisible by the world size 2'):
        build_dataloader(entry, train=True, total_bs=3, seed=0, num_workers=0)


def test_training_drops_the_last_batch_evaluation_keeps_it(tmp_path):
    entry = write_shapenet(tmp_path, n_train=5)
    train = build_dataloader(entry, train=True, total_bs=2, seed=0, num_workers=0)
    evaluate = build_dataloader(entry, train=False, total_bs=2, seed=0, num_workers=0)
    assert [b[2].shape[0] for b in train] == [2, 2]
    assert [b[2].shape[0] for b in evaluate] == [2, 2, 1]
    assert [m for b in evaluate for m in b[1]] == [f'model{i:03d}' for i in range(5)]
    with pytest.raises(ConfigError, match='no full batch of 8'):
        build_dataloader(entry, train=True, total_bs=8, seed=0, num_workers=0)


def epoch_ids(loader):
    return [m for batch in loader for m in batch[1]]


def test_shuffle_depends_only_on_seed_and_epoch(tmp_path):
    entry = write_shapenet(tmp_path, n_train=8)
    first = build_dataloader(entry, train=True, total_bs=2, seed=5, num_workers=0)
    epochs = [epoch_ids(first) for _ in range(3)]
    assert epochs[0] != epochs[1] and sorted(epochs[0]) == sorted(epochs[1])
    resumed = build_dataloader(entry, train=True, total_bs=2, seed=5, num_workers=0)
    resumed.set_epoch(2)
    assert epoch_ids(resumed) == epochs[2]
    other_seed = build_dataloader(entry, train=True, total_bs=2, seed=6, num_workers=0)
    assert epoch_ids(other_seed) != epochs[0]


def test_worker_randomness_is_seeded_per_epoch(tmp_path):
    entry = write_shapenet(tmp_path, n_train=4)

    def run(epoch):
        """{model id: points} of one epoch; the points are a random subset drawn in a worker."""
        loader = build_dataloader(entry, train=True, total_bs=2, seed=1, num_workers=2)
        loader.set_epoch(epoch)
        return {m: p for batch in loader for m, p in zip(batch[1], batch[2])}

    first, again, later = run(0), run(0), run(1)
    assert all(torch.equal(first[m], again[m]) for m in first)
    assert not any(torch.equal(first[m], later[m]) for m in first)
