"""Every dataset a pre-training run uses (train, val, the probe's svm_train/svm_test) is opened and
checked before the first step; an epoch's checkpoint is saved before the probe runs."""
import os

import pytest

import main
from conftest import shapenet_entry, torch_settings, write_tiny_config
from datasets.files import DatasetError
from tools.engine import TrainStepper
from tools.runner_pretrain import PretrainTask
from utils.checkpoint import load_checkpoint


def probe_config(tmp_path, demo_root, svm_train):
    return write_tiny_config(str(tmp_path), demo_root, max_epoch=2, svm_probe={'freq': 1, 'C': 0.01},
                             dataset={'svm_train': svm_train, 'svm_test': shapenet_entry(demo_root, 'test', 256)})


def run(config, exp, name):
    main.main(['--config', config, '--exp', exp, '--exp_name', name, '--device', 'cpu', '--num_workers', '0'])
    return os.path.join(exp, 'pretrain_tiny', 'cfgs', name)


def test_a_bad_probe_dataset_stops_the_run_before_the_first_step(tmp_path, demo_root, monkeypatch):
    steps = []
    monkeypatch.setattr(TrainStepper, 'backward', lambda self, loss: steps.append(1))
    missing = {'NAME': 'ModelNet', 'DATA_PATH': str(tmp_path / 'no_modelnet'), 'subset': 'train', 'npoints': 256}
    config = probe_config(tmp_path, demo_root, missing)
    with torch_settings(), pytest.raises(SystemExit, match=r"main.py: error: DATA_PATH=.*no_modelnet.*folder not found"):
        run(config, str(tmp_path / 'exps'), 'bad')
    assert steps == []


def test_svm_probe_without_its_splits_is_a_config_error(tmp_path, demo_root):
    config = write_tiny_config(str(tmp_path), demo_root, svm_probe={'freq': 1, 'C': 0.01})
    with pytest.raises(SystemExit, match=r'svm_probe.freq is 1 but dataset.svm_train is not set'):
        run(config, str(tmp_path / 'exps'), 'nosplits')


def test_the_checkpoint_is_saved_before_the_probe(tmp_path, demo_root, monkeypatch):
    def failing_probe(self, epoch):
        raise DatasetError('probe file unreadable')
    monkeypatch.setattr(PretrainTask, 'svm_probe', failing_probe)
    config = probe_config(tmp_path, demo_root, shapenet_entry(demo_root, 'train', 256))
    with torch_settings(), pytest.raises(SystemExit, match='probe file unreadable'):
        run(config, str(tmp_path / 'exps'), 'probe')
    path = os.path.join(str(tmp_path / 'exps'), 'pretrain_tiny', 'cfgs', 'probe')
    assert load_checkpoint(os.path.join(path, 'ckpt-last.pth'))['epoch'] == 1
