"""Shared by tests/test_suite.py and tests/test_suite_jobs.py: a fake runner that plays main.py /
trainpartseg.py / the tools by writing what each would write, and a tiny project root with a
'test' suite over it."""
import json
import os
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from tools import demo, evaluate, suites
from tools.suites import Run
from utils.parser import experiment_dir


def flag(argv, name, default=None):
    return argv[argv.index(name) + 1] if name in argv else default


class FakeRunner:
    """Plays the project's commands: writes what each would write (results.json, checkpoints,
    metrics.jsonl, figures); a config whose name contains 'broken' exits 1 with main.py's one-line
    error. Accuracy = 50 + 10 * (pre-trained) + seed, so the statistics are known."""

    def __init__(self, cwd, fail_pretrain=()):
        self.cwd, self.calls, self.envs, self.fail_pretrain = str(cwd), [], [], set(fail_pretrain)

    def path(self, *parts):
        return os.path.join(self.cwd, *parts)

    def __call__(self, argv, log_path, env=None):
        self.calls.append(argv)
        self.envs.append(env)
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        script = argv[1]
        config = flag(argv, '--config')
        if config and 'broken' in config:
            with open(log_path, 'w') as f:
                f.write('loading...\nmain.py: error: dataset.train.DATA_PATH: boom\n')
            return 1
        if script == 'tools/make_demo_data.py':
            return 0
        if script == 'tools/init_checkpoint.py':
            os.makedirs(os.path.dirname(self.path(flag(argv, '--out'))), exist_ok=True)
            open(self.path(flag(argv, '--out')), 'w').close()
            return 0
        if script == 'tools/visualize.py':
            from matplotlib.image import imsave
            os.makedirs(os.path.dirname(self.path(flag(argv, '--out'))), exist_ok=True)
            imsave(self.path(flag(argv, '--out')), np.random.default_rng(0).random((8, 8, 3)))
            return 0
        seed = int(flag(argv, '--seed', 0))
        if script == 'trainpartseg.py':
            folder = self.path(flag(argv, '--exp'), 'partseg', flag(argv, '--log_dir'))
            results = {'best_epoch': {'epoch': 3, 'metrics': {'instance_miou': 70.0 + seed, 'class_miou': 65.0 + seed}},
                       'last_epoch': {'epoch': 3, 'metrics': {'instance_miou': 70.0 + seed}}}
        else:
            folder = self.path(experiment_dir(SimpleNamespace(config=config, exp=flag(argv, '--exp'),
                                                              exp_name=flag(argv, '--exp_name'))))
            ckpt = flag(argv, '--ckpts', '')
            bonus = 0 if 'random' in ckpt else 10
            if '--svm' in argv:
                results = {'mode': 'svm', 'metrics': {'svm_acc': 60.0 + bonus + seed, 'svm_C': 0.01}}
            elif '--test' in argv:
                results = {'mode': 'test', 'metrics': {'vote_acc_mean': 51.0 + bonus + seed, 'vote_acc_std': 0.1,
                                                       'vote_acc_max': 52.0 + bonus + seed}}
            elif '--way' in argv:
                results = {'best_epoch': {'metrics': {'acc': 70.0 + bonus + int(flag(argv, '--fold'))}}} \
                    if flag(argv, '--fold') != '-1' \
                    else {'mode': 'fewshot',
                          'folds': [{'fold': f, 'acc': 70.0 + bonus + f, 'last_acc': 69.0 + bonus + f}
                                    if f != 9 or seed == 0 else {'fold': 9, 'error': 'OOM'} for f in range(10)]}
            elif '--finetune_model' in argv:
                results = {'best_epoch': {'epoch': 3, 'metrics': {'acc': 50.0 + bonus + seed}},
                           'last_epoch': {'epoch': 4, 'metrics': {'acc': 49.0 + bonus + seed}}}
            else:   # pre-training
                if flag(argv, '--exp_name') in self.fail_pretrain:
                    with open(log_path, 'w') as f:
                        f.write('main.py: error: NonFiniteLossError: 5 steps in a row\n')
                    return 1
                os.makedirs(folder, exist_ok=True)
                for name in ('ckpt-last.pth', 'ckpt-epoch-003.pth'):
                    open(os.path.join(folder, name), 'w').close()
                with open(os.path.join(folder, 'metrics.jsonl'), 'w') as f:
                    for epoch in (1, 2, 3):
                        f.write(json.dumps({'tag': 'epoch', 'step': epoch, 'epoch': epoch, 'loss': 5.0 / epoch,
                                            'assign': 2.0 / epoch, 'val_loss': 5.5 / epoch}) + '\n')
                return 0
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, 'results.json'), 'w') as f:
            json.dump(results, f)
        return 0


def write_yaml(root, path, content):
    full = os.path.join(root, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, 'w') as f:
        yaml.safe_dump(content, f)
    return path


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A tmp project root with tiny configs: ModelNet (data present), ScanObjectNN (data missing),
    a broken config, few-shot, partseg; and a 'test' suite over them."""
    root = str(tmp_path)
    os.makedirs(os.path.join(root, 'data', 'modelnet'))
    mn = {'NAME': 'ModelNet', 'DATA_PATH': 'data/modelnet'}
    write_yaml(root, 'cfgs/t/finetune_modelnet.yaml', {'npoints': 1024, 'max_epoch': 4,
                                                       'classification': {'votes': 10, 'vote_repeats': 3},
                                                       'dataset': {'train': mn, 'test': mn}})
    write_yaml(root, 'cfgs/t/finetune_scan_objbg.yaml', {'dataset': {'train': {'NAME': 'ScanObjectNN',
                                                                                'ROOT': 'data/ScanObjectNN'}}})
    write_yaml(root, 'cfgs/t/broken_fewshot.yaml', {'dataset': {'train': mn}})
    write_yaml(root, 'cfgs/t/fewshot.yaml', {'npoints': 1024, 'max_epoch': 10, 'dataset': {'train': mn}})
    write_yaml(root, 'cfgs/t/partseg.yaml', {'npoint': 1024, 'epoch': 3,
                                             'dataset': {'NAME': 'ShapeNetPart', 'DATA_PATH': 'data/modelnet'}})
    write_yaml(root, 'cfgs/t/pretrain.yaml', {'max_epoch': 3, 'dataset': {'train': mn},
                                              'model': {'w': 0, 'losses': {'assign': {'weight': 1}}}})
    suite = {'about': 'test', 'random_config': 'cfgs/t/pretrain.yaml',
             'runs': suites.modelnet_runs('cfgs/t') + suites.scan_runs('cfgs/t', suites.SCAN[:1])
             + suites.fewshot_runs('cfgs/t/fewshot.yaml', ((5, 10),), folds=(0, 1))
             + suites.fewshot_runs('cfgs/t/fewshot.yaml', ((10, 20),))
             + [Run('broken', 'cfgs/t/broken_fewshot.yaml', suites.FINETUNE, {'10w10s': 'acc_best'}),
                suites.svm_run('cfgs/t/finetune_modelnet.yaml'), suites.partseg_run('cfgs/t/partseg.yaml')]}
    monkeypatch.setitem(evaluate.SUITES, 'test', suite)
    open(os.path.join(root, 'pre.pth'), 'w').close()
    return root


def demo_project(project, monkeypatch, modelnet_path):
    """``project`` set up for tools/demo.py: its quick suite is the 'test' suite, the two
    pre-trainings are the tiny configs, and the demo ModelNet config points at ``modelnet_path``."""
    monkeypatch.setitem(evaluate.SUITES, 'quick', evaluate.SUITES['test'])
    monkeypatch.setattr(demo, 'PRETRAIN', (('maskclu', 'cfgs/t/pretrain.yaml'),
                                           ('pointmae', 'cfgs/t/pretrain_pm.yaml')))
    write_yaml(project, 'cfgs/t/pretrain_pm.yaml', {'max_epoch': 3, 'dataset': {}})
    write_yaml(project, 'cfgs/demo/dataset_configs/ModelNet40.yaml', {'NAME': 'ModelNet', 'DATA_PATH': modelnet_path})

