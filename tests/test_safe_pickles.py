"""Dataset pickles (ModelNet ``.dat`` cache, few-shot ``.pkl`` folds) are read with a restricted
unpickler: numeric data loads under numpy 1.x and 2.x names; a ``__reduce__`` payload is refused,
naming the file and the global, and runs nothing unless ``MASKCLU_TRUST_PICKLES=1``."""
import io
import os
import pickle

import numpy as np
import pytest

from datasets import pickles
from datasets.files import DatasetError, read_pickle, write_pickle
from datasets.modelnet_cache import read_cache
from datasets.modelnet_fewshot import read_fold


class Payload:
    """Unpickling this creates the file ``target`` (what a malicious mirror could ship)."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, 'w'))


def malicious_cache(path, target):
    points = [np.zeros((4, 6), np.float32)]
    with open(path, 'wb') as f:
        pickle.dump([points, [np.array([0], np.int32)], Payload(target)], f)


def test_cache_with_reduce_payload_is_refused_and_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv(pickles.TRUST_ENV, raising=False)
    path, target = tmp_path / 'modelnet40_train_4pts_fps.dat', tmp_path / 'pwned'
    malicious_cache(path, target)
    with pytest.raises(DatasetError) as err:
        read_cache(str(path), 4, 40)
    assert not target.exists()
    message = str(err.value)
    assert str(path) in message and "refused global 'io.open'" in message
    assert pickles.TRUST_ENV in message and '\n' not in message


def test_fewshot_fold_with_payload_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv(pickles.TRUST_ENV, raising=False)
    path, target = tmp_path / '0.pkl', tmp_path / 'pwned'
    with open(path, 'wb') as f:
        pickle.dump({'train': [(np.zeros((4, 6), np.float32), 0, 3)], 'test': Payload(target)}, f)
    with pytest.raises(DatasetError, match=r"0\.pkl: refused global 'io\.open'"):
        read_fold(str(path), 4, 5)
    assert not target.exists()


def test_trust_env_unpickles_fully(tmp_path, monkeypatch):
    path, target = tmp_path / 'legacy.dat', tmp_path / 'created'
    malicious_cache(path, target)
    monkeypatch.setenv(pickles.TRUST_ENV, '1')
    read_pickle(str(path))
    assert target.exists()


@pytest.mark.parametrize('protocol', [2, 3, 4, 5])
def test_numeric_data_loads_with_every_protocol(protocol, monkeypatch):
    monkeypatch.delenv(pickles.TRUST_ENV, raising=False)
    obj = {'train': [(np.arange(12, dtype=np.float32).reshape(2, 6), 1, np.int32(7))],
           'test': [np.float64(2.5), np.array([True, False]), np.complex64(1j), [1, 2.0, 'x'], (None,)]}
    back = pickles.load(io.BytesIO(pickle.dumps(obj, protocol=protocol)))
    np.testing.assert_array_equal(back['train'][0][0], obj['train'][0][0])
    assert back['train'][0][2] == 7 and back['train'][0][2].dtype == np.int32
    assert back['test'][:1] == [2.5] and back['test'][3:] == [[1, 2.0, 'x'], (None,)]


def test_our_files_under_numpy_1_names_load(tmp_path, monkeypatch):
    monkeypatch.delenv(pickles.TRUST_ENV, raising=False)
    path = tmp_path / 'cache.dat'
    write_pickle(str(path), [[np.ones((4, 6), np.float32)], [np.array([3], np.int32)]])
    assert pickles.global_names(path.read_bytes())[0].startswith('numpy.core.')
    points, labels = read_cache(str(path), 4, 40)
    np.testing.assert_array_equal(points[0], np.ones((4, 6), np.float32))
    assert labels.tolist() == [3]


def test_object_arrays_are_refused(tmp_path, monkeypatch):
    monkeypatch.delenv(pickles.TRUST_ENV, raising=False)
    path = tmp_path / 'obj.pkl'
    with open(path, 'wb') as f:
        pickle.dump(np.array([1, 'a'], dtype=object), f)
    with pytest.raises(DatasetError, match=r"obj\.pkl: refused numpy dtype"):
        read_pickle(str(path))


def test_no_plain_pickle_load_of_dataset_files():
    """Every dataset reader goes through ``datasets.files.read_pickle``."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for folder in ('datasets', 'tools', 'utils'):
        for name in os.listdir(os.path.join(root, folder)):
            if name.endswith('.py') and name != 'pickles.py':  # pickles.load: the trusted opt-in
                text = open(os.path.join(root, folder, name)).read()
                assert 'pickle.load(' not in text.replace('pickles.load(', ''), name
