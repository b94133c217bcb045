"""Failures of the machine, not of the code, end in one line (and in log.txt where there is one):
``--launcher pytorch`` without torchrun, ``--exp`` under a plain file, a full disk while saving,
and a read-only folder without a second error from the temporary file's clean-up."""
import errno
import os

import pytest

import main
import utils.io
from conftest import torch_settings
from utils.checkpoint import load_checkpoint
from utils.io import TEMP_FILE, atomic_write


def run(config, exp, name, *extra):
    main.main(['--config', config, '--exp', exp, '--exp_name', name, '--device', 'cpu', '--num_workers', '0', *extra])


def test_launcher_pytorch_without_torchrun(tiny_config, tmp_path, monkeypatch):
    for key in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK'):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(SystemExit) as err:
        run(tiny_config(), str(tmp_path / 'exps'), 'x', '--launcher', 'pytorch')
    message = str(err.value)
    assert message.startswith('main.py: error: --launcher pytorch needs torchrun') and '\n' not in message


def test_exp_under_a_plain_file(tiny_config, tmp_path):
    plain = tmp_path / 'plain'
    plain.write_text('not a folder')
    with pytest.raises(SystemExit) as err:
        run(tiny_config(), str(plain), 'x')
    message = str(err.value)
    assert message.startswith(f'main.py: error: cannot use the experiment folder {plain}/') and '\n' not in message
    assert 'Not a directory' in message


def test_full_disk_while_saving_is_one_line_and_logged(tiny_config, tmp_path, monkeypatch):
    import utils.checkpoint
    save, calls = utils.checkpoint.torch.save, []

    def save_until_full(obj, f):
        calls.append(1)
        if len(calls) > 1:  # epoch 2: the disk fills up half-way
            f.write(b'partial')
            raise OSError(errno.ENOSPC, 'No space left on device')
        save(obj, f)
    monkeypatch.setattr(utils.checkpoint.torch, 'save', save_until_full)
    exp = str(tmp_path / 'exps')
    with torch_settings(), pytest.raises(SystemExit) as err:
        run(tiny_config(ckpt_save_freq=5), exp, 'full')
    folder = os.path.join(exp, 'pretrain_tiny', 'cfgs', 'full')
    last = os.path.join(folder, 'ckpt-last.pth')
    assert str(err.value) == (f"main.py: error: [Errno 28] No space left on device: '{last}' "
                              f"(files written before are intact)")
    with open(os.path.join(folder, 'log.txt')) as f:
        assert 'No space left on device' in f.read()
    monkeypatch.undo()
    assert load_checkpoint(last)['epoch'] == 1
    assert not [n for n in os.listdir(folder) if TEMP_FILE.match(n)]


def test_read_only_folder_raises_one_error_without_a_clean_up_error(tmp_path, monkeypatch):
    def read_only(path, *args, **kwargs):
        raise OSError(errno.EROFS, 'Read-only file system', path)

    def unlink(path):
        raise OSError(errno.EROFS, 'Read-only file system', path)  # what unlink says there, file or not
    monkeypatch.setattr(utils.io, 'open', read_only, raising=False)
    monkeypatch.setattr(utils.io.os, 'remove', unlink)
    with pytest.raises(OSError) as err:
        with atomic_write(str(tmp_path / 'ckpt-last.pth')) as f:
            f.write(b'x')
    assert err.value.errno == errno.EROFS
    assert err.value.__context__ is None and err.value.__cause__ is None


def test_write_error_names_the_file_and_removes_the_temporary(tmp_path):
    path = str(tmp_path / 'config.yaml')
    with pytest.raises(OSError) as err:
        with atomic_write(path, 'w'):
            raise OSError(errno.ENOSPC, 'No space left on device')
    assert err.value.filename == path and err.value.errno == errno.ENOSPC
    assert os.listdir(tmp_path) == []
