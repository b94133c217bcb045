"""``--resume`` checks the new resolved config against the saved one before anything is built or
written: changes that alter the run (batch, model, schedule, data) stop it with a diff unless
``--allow_changes`` names them; ``max_epoch`` may grow; an accepted change is saved beside the
old ``config.yaml`` (``config-resume-K.yaml``), never over it."""
import hashlib
import os
import time

import pytest
import yaml

import main
from conftest import torch_settings, write_tiny_config
from utils.checkpoint import load_checkpoint
from utils.config import ConfigError, save_config
from utils.run_config import check_resume_config, config_changes, saved_config_path, write_run_config

SAVED = {'total_bs': 8, 'max_epoch': 1, 'model': {'NAME': 'MaskClu', 'num_group': 16},
         'dataset': {'train': {'DATA_PATH': '/data/a', 'npoints': 256}}, 'scheduler': {'kwargs': {'epochs': 4}}}


def changed(**edits):
    cfg = yaml.safe_load(yaml.safe_dump(SAVED))
    for key, value in edits.items():
        node, *path = key.split('__')
        parent = cfg
        for part in [node, *path][:-1]:
            parent = parent[part]
        parent[[node, *path][-1]] = value
    return cfg


def test_config_changes_lists_dotted_keys():
    assert config_changes(SAVED, changed(total_bs=16, model__num_group=32)) == [
        ('total_bs', 8, 16), ('model.num_group', 16, 32)]
    assert config_changes(SAVED, {**SAVED, 'amp': 'auto'}) == [('amp', '<absent>', 'auto')]


@pytest.mark.parametrize('edits, shown', [
    ({'total_bs': 16}, 'total_bs: 8 -> 16'),
    ({'model__num_group': 32}, 'model.num_group: 16 -> 32'),
    ({'scheduler__kwargs__epochs': 8}, 'scheduler.kwargs.epochs: 4 -> 8'),
    ({'dataset__train__DATA_PATH': '/data/b'}, "dataset.train.DATA_PATH: '/data/a' -> '/data/b'"),
])
def test_meaningful_changes_stop_with_a_diff(tmp_path, edits, shown):
    save_config(SAVED, str(tmp_path / 'config.yaml'))
    with pytest.raises(ConfigError) as err:
        check_resume_config(str(tmp_path), changed(**edits))
    assert shown in str(err.value) and '--allow_changes' in str(err.value) and '\n' not in str(err.value)


def test_max_epoch_and_allowed_keys_pass_and_are_saved_beside(tmp_path):
    save_config(SAVED, str(tmp_path / 'config.yaml'))
    first = changed(max_epoch=3)
    assert check_resume_config(str(tmp_path), first) == [('max_epoch', 1, 3)]
    assert write_run_config(str(tmp_path), first, [('max_epoch', 1, 3)]) == str(tmp_path / 'config-resume-1.yaml')
    second = changed(max_epoch=3, dataset__train__DATA_PATH='/data/b')
    changes = check_resume_config(str(tmp_path), second, ['dataset'])  # compared with config-resume-1
    assert changes == [('dataset.train.DATA_PATH', '/data/a', '/data/b')]
    write_run_config(str(tmp_path), second, changes)
    assert saved_config_path(str(tmp_path)) == str(tmp_path / 'config-resume-2.yaml')
    assert write_run_config(str(tmp_path), second, []) is None
    with open(tmp_path / 'config.yaml') as f:
        assert yaml.safe_load(f) == SAVED


def digest(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest(), os.stat(path).st_mtime_ns


@pytest.fixture(scope='module')
def finished(tmp_path_factory, demo_root):
    """A finished 1-epoch tiny run: (config, exp root, experiment folder)."""
    folder = str(tmp_path_factory.mktemp('resume_cfg'))
    config = write_tiny_config(folder, demo_root, max_epoch=1)
    exp = os.path.join(folder, 'exps')
    with torch_settings():
        run(config, exp, '--opts', 'max_epoch=1')
    return config, exp, os.path.join(exp, 'pretrain_tiny', 'cfgs', 'r')


def run(config, exp, *extra):
    main.main(['--config', config, '--exp', exp, '--exp_name', 'r', '--device', 'cpu', '--num_workers', '0', *extra])


@pytest.mark.parametrize('opts, shown', [
    ('total_bs=4', 'total_bs: 8 -> 4'),
    ('model.num_group=8', 'model.num_group: 16 -> 8'),
    ('scheduler.kwargs.initial_epochs=2', 'scheduler.kwargs.initial_epochs: 1 -> 2'),
])
def test_resume_with_a_changed_run_stops_before_writing(finished, opts, shown):
    config, exp, folder = finished
    before = {name: digest(os.path.join(folder, name)) for name in ('config.yaml', 'ckpt-last.pth')}
    with torch_settings(), pytest.raises(SystemExit) as err:
        run(config, exp, '--resume', '--opts', opts)
    assert str(err.value).startswith('main.py: error: --resume with a config that differs from ')
    assert shown in str(err.value)
    assert {name: digest(os.path.join(folder, name)) for name in before} == before
    assert not [n for n in os.listdir(folder) if n.startswith('config-resume')]


def test_resume_extending_max_epoch_runs_and_saves_the_config_beside(finished):
    config, exp, folder = finished
    original = digest(os.path.join(folder, 'config.yaml'))
    stale = os.path.join(folder, '.ckpt-last.pth.0123abcd.tmp')  # what a run killed mid-save leaves
    with open(stale, 'wb') as f:
        f.write(b'partial')
    os.utime(stale, (time.time() - 60, time.time() - 60))
    with torch_settings():
        run(config, exp, '--resume', '--opts', 'max_epoch=2')
    assert load_checkpoint(os.path.join(folder, 'ckpt-last.pth'))['epoch'] == 2
    assert digest(os.path.join(folder, 'config.yaml')) == original
    with open(os.path.join(folder, 'config-resume-1.yaml')) as f:
        assert yaml.safe_load(f)['max_epoch'] == 2
    with open(os.path.join(folder, 'log.txt')) as f:
        log = f.read()
    assert '--resume with changed max_epoch: 1 -> 2' in log
    assert 'removed temporary files of an interrupted run: .ckpt-last.pth.0123abcd.tmp' in log
    assert not os.path.exists(stale)
    assert open(os.path.join(folder, '.lock')).read() == ''  # released at the end of the run
