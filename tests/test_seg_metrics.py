"""Part-segmentation metrics: hand-computed cases, a loop reference, dedupe, DDP gathering."""
import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from datasets.shapenetpart_labels import CATEGORIES, CATEGORY_OF_PART, PARTS
from utils.seg_metrics import (PartSegMeter, first_occurrences, format_table, restricted_prediction, shape_ious,
                               summarize)

# A small table: category 0 owns parts 0, 1, 2; category 1 owns parts 3, 4.
TABLE = torch.tensor([0, 0, 0, 1, 1])


def scores_for(pred, category, distractor=5.0):
    """Scores (B, N, 5) whose argmax restricted to each category gives ``pred``, while the
    unrestricted argmax is a part of the other category."""
    pred = torch.as_tensor(pred)
    scores = torch.nn.functional.one_hot(pred, 5).float() * 2.0
    other = torch.where(torch.as_tensor(category) == 0, 3, 0)
    scores[torch.arange(len(pred))[:, None], :, other[:, None]] = distractor
    return scores


# Shape A (category 0): part 0: truth {0,1,5}, pred {0,4,5} -> 2/4; part 1: truth {2,3,4},
#   pred {1,2,3} -> 2/4; part 2 absent from both -> 1. IoU (0.5 + 0.5 + 1) / 3 = 2/3; 4/6 correct.
# Shape B (category 1): part 3: 5/6; part 4 only predicted -> 0. IoU 5/12; 5/6 correct.
# Shape C (category 0): all three parts exact -> 1; 6/6 correct.
TRUTH = torch.tensor([[0, 0, 1, 1, 1, 0], [3, 3, 3, 3, 3, 3], [0, 1, 2, 2, 1, 0]])
PRED = torch.tensor([[0, 1, 1, 1, 0, 0], [3, 3, 4, 3, 3, 3], [0, 1, 2, 2, 1, 0]])
CATS = torch.tensor([0, 1, 0])


def test_restricted_prediction_ignores_other_categories_parts():
    scores = scores_for(PRED, CATS)
    assert not torch.equal(scores.argmax(-1), PRED)
    torch.testing.assert_close(restricted_prediction(scores, CATS, TABLE), PRED, rtol=0, atol=0)


def test_hand_computed_shape_ious():
    torch.testing.assert_close(shape_ious(PRED, TRUTH, CATS, TABLE), torch.tensor([2 / 3, 5 / 12, 1.0]),
                               rtol=1e-6, atol=1e-7)


def test_hand_computed_summary_and_duplicates_counted_once():
    meter = PartSegMeter(TABLE, names=['Cat0', 'Cat1'])
    meter.update(scores_for(PRED[:2], CATS[:2]), TRUTH[:2], CATS[:2], torch.tensor([10, 11]))
    # a DDP-padded duplicate of shape 10 with another prediction, then shape C and shape 11 again
    meter.update(scores_for(TRUTH[:1], CATS[:1]), TRUTH[:1], CATS[:1], torch.tensor([10]))
    meter.update(scores_for(PRED[1:], CATS[1:]), TRUTH[1:], CATS[1:], torch.tensor([11, 12]))
    m = meter.compute()
    assert m['shapes'] == 3 and m['shapes_per_category'] == {'Cat0': 2, 'Cat1': 1}
    assert m['instance_miou'] == pytest.approx((2 / 3 + 5 / 12 + 1) / 3, abs=1e-7)
    assert m['per_category'] == pytest.approx({'Cat0': (2 / 3 + 1) / 2, 'Cat1': 5 / 12}, abs=1e-7)
    assert m['class_miou'] == pytest.approx(((2 / 3 + 1) / 2 + 5 / 12) / 2, abs=1e-7)
    assert m['accuracy'] == pytest.approx((4 + 5 + 6) / 18, abs=1e-12)


def test_category_without_shapes_is_left_out_of_class_miou():
    state = {'index': torch.tensor([0, 1]), 'category': torch.tensor([0, 0]), 'iou': torch.tensor([0.5, 1.0]),
             'correct': torch.tensor([3, 4]), 'points': torch.tensor([4, 4])}
    m = summarize(state, 3, ['a', 'b', 'c'])
    assert m['per_category'] == {'a': 0.75, 'b': None, 'c': None} and m['class_miou'] == 0.75
    lines = format_table(m)
    assert lines[1].split() == ['a', '2', '75.00'] and lines[2].split() == ['b', '0', '-']
    assert 'instance mIoU 75.00' in lines[-1] and 'point accuracy 87.50' in lines[-1]
    empty = PartSegMeter(TABLE).compute()
    assert empty['shapes'] == 0 and np.isnan(empty['instance_miou']) and np.isnan(empty['class_miou'])


def test_first_occurrences():
    index = torch.tensor([5, 3, 5, 1, 3, 7])
    assert first_occurrences(index).tolist() == [3, 1, 0, 5]


def loop_reference(scores, parts, category):
    """Point-MAE's evaluation loop: per shape, argmax over the category's parts, per-part IoU."""
    out = []
    for s, truth, c in zip(scores.numpy(), parts.numpy(), category.tolist()):
        ids = PARTS[CATEGORIES[c]]
        pred = s[:, ids].argmax(1) + ids[0]
        ious = [1.0 if not ((truth == p).any() or (pred == p).any())
                else ((truth == p) & (pred == p)).sum() / ((truth == p) | (pred == p)).sum() for p in ids]
        out.append(np.mean(ious))
    return torch.tensor(out, dtype=torch.float32)


def test_vectorised_ious_match_the_loop_on_shapenetpart_labels():
    g = torch.Generator().manual_seed(0)
    category = torch.randint(16, (32,), generator=g)
    table = torch.from_numpy(CATEGORY_OF_PART)
    first = torch.tensor([PARTS[CATEGORIES[c]][0] for c in category.tolist()])
    count = torch.tensor([len(PARTS[CATEGORIES[c]]) for c in category.tolist()])
    # truth uses only some of the parts (so absent parts occur), scores are noisy
    parts = first[:, None] + (torch.rand(32, 64, generator=g) * count[:, None] * 0.7).long()
    scores = torch.randn(32, 64, 50, generator=g)
    pred = restricted_prediction(scores, category, table)
    torch.testing.assert_close(shape_ious(pred, parts, category, table), loop_reference(scores, parts, category),
                               rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------------ DDP gathering
def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


SHARDS = {0: [0, 1, 2, 3], 1: [4, 5, 0]}     # unequal shard sizes; shape 0 is padded onto rank 1


def shard_inputs(indices):
    g = torch.Generator().manual_seed(1)
    category = torch.randint(16, (6,), generator=g)
    table = torch.from_numpy(CATEGORY_OF_PART)
    first = torch.tensor([PARTS[CATEGORIES[c]][0] for c in category.tolist()])
    parts = first[:, None] + torch.randint(2, (6, 32), generator=g)
    scores = torch.randn(6, 32, 50, generator=g)
    idx = torch.tensor(indices)
    return scores[idx], parts[idx], category[idx], idx, table


def _worker(rank, port, out):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.distributed.init_process_group('gloo', rank=rank, world_size=2)
    try:
        scores, parts, category, idx, table = shard_inputs(SHARDS[rank])
        meter = PartSegMeter(table, CATEGORIES)
        for rows in (slice(0, 2), slice(2, None)):
            meter.update(scores[rows], parts[rows], category[rows], idx[rows])
        with open(os.path.join(out, f'rank{rank}.json'), 'w') as f:
            json.dump(meter.gather().compute(), f)
    finally:
        torch.distributed.destroy_process_group()


def test_two_ranks_count_every_shape_once(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2)
    scores, parts, category, idx, table = shard_inputs(range(6))
    meter = PartSegMeter(table, CATEGORIES)
    meter.update(scores, parts, category, idx)
    expected = meter.compute()
    for rank in range(2):
        got = json.loads((tmp_path / f'rank{rank}.json').read_text())
        assert got['shapes'] == 6 and got['shapes_per_category'] == expected['shapes_per_category']
        for key in ('instance_miou', 'class_miou', 'accuracy'):
            assert got[key] == pytest.approx(expected[key], abs=1e-12)
