"""utils.io.atomic_write: all or nothing, whatever interrupts the write."""
import os

import pytest

from utils.io import atomic_write


@pytest.mark.parametrize('error', [RuntimeError, KeyboardInterrupt])
def test_interrupted_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, error):
    path = tmp_path / 'ckpt-last.pth'
    path.write_bytes(b'old')
    with pytest.raises(error):
        with atomic_write(path) as f:
            f.write(b'half of the new')
            raise error()
    assert path.read_bytes() == b'old' and os.listdir(tmp_path) == [path.name]


def test_write_creates_the_folder_and_replaces_in_text_mode(tmp_path):
    path = tmp_path / 'new' / 'config.yaml'
    with atomic_write(path, 'w') as f:
        f.write('a: 1\n')
    with atomic_write(path, 'w') as f:
        f.write('a: 2\n')
    assert path.read_text() == 'a: 2\n' and os.listdir(path.parent) == ['config.yaml']
    with pytest.raises(ValueError, match='mode'):
        with atomic_write(path, 'a'):
            pass
