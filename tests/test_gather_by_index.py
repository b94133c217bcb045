"""Exact DDP metrics: ``utils.dist.gather_by_index`` counts every test item once although a
DistributedSampler pads the ranks with repeated items. Two gloo processes (torchrun's environment,
as in tests/test_ddp.py) evaluate a 5-item set in batches of 2: rank 0 sees items 0, 2, 4 and
rank 1 items 1, 3 and 0 again (padding). A plain all-gather would count item 0 twice.

Run as a script, this file is the worker (``python tests/test_gather_by_index.py <out_dir>``).
"""
import os
import sys

import numpy as np
import torch
from torch.utils.data import TensorDataset

HERE = os.path.dirname(os.path.abspath(__file__))
ITEMS = 5
LABELS = torch.tensor([0, 1, 1, 0, 1])
PREDICTIONS = torch.tensor([0, 0, 0, 1, 0])   # only item 0 is right: accuracy 1/5


def dataset():
    """Clouds (5, 16, 3) whose points all equal the item index, with LABELS."""
    points = torch.arange(ITEMS, dtype=torch.float32).view(ITEMS, 1, 1).expand(ITEMS, 16, 3).contiguous()
    return TensorDataset(points, LABELS)


def worker(out_dir):
    from datasets import EpochLoader, unpack_batch
    from tools.svm import extract_features
    from utils import dist
    torch.set_num_threads(1)
    dist.init_distributed('pytorch', 'cpu')
    loader = EpochLoader(dataset(), train=False, batch_size=2, seed=0, num_workers=0)
    index = loader.sample_indices()
    preds, labels = [], []
    for raw in loader:
        batch = unpack_batch(raw)
        item = batch.points[:, 0, 0].long()
        preds.append(PREDICTIONS[item])
        labels.append(batch.label)
    preds, labels = torch.cat(preds), torch.cat(labels)
    gathered_index, values = dist.gather_by_index(index, {'pred': preds, 'label': labels})
    naive_preds, naive_labels = dist.all_gather_cat(preds), dist.all_gather_cat(labels)
    feats, feat_labels = extract_features(lambda p: p[:, 0, :2] * 10, loader, torch.device('cpu'), npoints=16)
    torch.save({'rank_index': index, 'index': gathered_index, 'pred': values['pred'], 'label': values['label'],
                'exact_acc': (values['pred'] == values['label']).float().mean(),
                'naive_acc': (naive_preds == naive_labels).float().mean(), 'naive_count': len(naive_preds),
                'feats': torch.from_numpy(feats), 'feat_labels': torch.from_numpy(feat_labels)},
               os.path.join(out_dir, f'rank{dist.get_rank()}.pt'))
    dist.cleanup_distributed()


def test_two_ranks_count_every_item_once(tmp_path):
    from test_ddp import run_ranks_of
    results = run_ranks_of(__file__, [str(tmp_path)], str(tmp_path))
    assert [r['rank_index'].tolist() for r in results] == [[0, 2, 4], [1, 3, 0]]   # the padded sampler
    for r in results:   # every rank holds the same, exact result
        assert r['index'].tolist() == list(range(ITEMS))
        assert r['pred'].tolist() == PREDICTIONS.tolist() and r['label'].tolist() == LABELS.tolist()
        torch.testing.assert_close(r['exact_acc'], torch.tensor(0.2), rtol=0, atol=1e-7)
        assert r['naive_count'] == 6   # what the comparison guards against: item 0 twice
        torch.testing.assert_close(r['naive_acc'], torch.tensor(2 / 6), rtol=0, atol=1e-7)
        expected = np.repeat(np.arange(ITEMS, dtype=np.float32)[:, None] * 10, 2, axis=1)
        np.testing.assert_array_equal(r['feats'].numpy(), expected)   # the SVM features: dataset order, once
        assert r['feat_labels'].tolist() == LABELS.tolist()


def test_single_process_drops_duplicates_and_sorts():
    from utils.dist import gather_by_index
    index, values = gather_by_index(torch.tensor([3, 1, 3, 0]), {'x': torch.tensor([[30], [10], [31], [0]])})
    assert index.tolist() == [0, 1, 3] and values['x'].tolist() == [[0], [10], [30]]


if __name__ == '__main__':
    sys.path[:0] = [os.path.dirname(HERE), HERE]
    worker(sys.argv[1])
