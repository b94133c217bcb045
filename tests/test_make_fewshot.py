"""tools/make_fewshot.py: seeded fold files in the standard layout, read back by the few-shot loader."""
import os

import pytest

from datasets import build_dataset
from test_datasets import write_modelnet_raw
from tools import make_fewshot


def run(root, out, *extra):
    return make_fewshot.main(['--modelnet', str(root), '--out', str(out), '--points', '16', '--ways', '2',
                              '--shots', '1', '2', '--folds', '2', '--queries', '1', *extra])


def test_folds_are_seeded_in_the_standard_layout_and_load(tmp_path):
    write_modelnet_raw(tmp_path / 'mn', per_class=2)
    paths = run(tmp_path / 'mn', tmp_path / 'a')
    again = run(tmp_path / 'mn', tmp_path / 'b')
    other = run(tmp_path / 'mn', tmp_path / 'c', '--seed', '1')
    assert [os.path.relpath(p, tmp_path / 'a') for p in paths] == ['2way_1shot/0.pkl', '2way_1shot/1.pkl',
                                                                    '2way_2shot/0.pkl', '2way_2shot/1.pkl']
    assert all(open(p, 'rb').read() == open(q, 'rb').read() for p, q in zip(paths, again))
    assert any(open(p, 'rb').read() != open(q, 'rb').read() for p, q in zip(paths, other))
    entry = {'NAME': 'ModelNetFewShot', 'DATA_PATH': str(tmp_path / 'a'), 'N_POINTS': 16, 'way': 2, 'shot': 2,
             'fold': 1}
    train, test = build_dataset({**entry, 'subset': 'train'}), build_dataset({**entry, 'subset': 'test'})
    assert (len(train), len(test)) == (4, 2) and sorted(set(train.labels)) == [0, 1]


def test_missing_modelnet_folder_is_one_line(tmp_path):
    with pytest.raises(SystemExit, match=r"make_fewshot.py: error: .*--modelnet"):
        run(tmp_path / 'nowhere', tmp_path / 'out')
