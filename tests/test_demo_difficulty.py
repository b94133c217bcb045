"""tools/demo_difficulty.py: the descriptors compute what they claim, the report checks the targets,
and the script runs end to end on the tiny demo data (pre-training through main.py: slow)."""
import contextlib
import io
import json
import os

import numpy as np
import pytest
import torch
import yaml

from conftest import ROOT, TINY_MODEL, TINY_TOP, deep_merge, torch_settings
from datasets.demo.generate import make_demo_data
from tools import demo_difficulty as dd
from utils.config import load_config

# the tiny data has 2 shapes per class
pytestmark = pytest.mark.filterwarnings('ignore:The number of unique classes is greater than 50%')


def test_distance_histogram_counts_every_ordered_pair():
    two = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])
    hist = dd.distance_histogram(two, bins=32)
    expected = torch.zeros(1, 32)
    expected[0, 0] = expected[0, 16] = 0.5   # (a, a), (b, b) at 0; (a, b), (b, a) at 1 of [0, 2]
    torch.testing.assert_close(hist, expected, rtol=0, atol=1e-7)
    cloud = torch.rand(3, 200, 3) - 0.5
    torch.testing.assert_close(dd.distance_histogram(cloud).sum(1), torch.ones(3), rtol=0, atol=1e-5)


def test_box_extents_are_the_box_and_its_principal_spreads():
    corners = torch.tensor([[x, y, z] for x in (-0.6, 0.6) for y in (-0.2, 0.2) for z in (-0.4, 0.4)])
    feats = dd.box_extents(corners[None])
    torch.testing.assert_close(feats, torch.tensor([[1.2, 0.4, 0.8, 0.6, 0.4, 0.2]]), rtol=0, atol=1e-6)
    turned = corners @ torch.tensor([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]]).T   # principal spreads do not turn
    torch.testing.assert_close(dd.box_extents(turned[None])[:, 3:], feats[:, 3:], rtol=0, atol=1e-6)


def test_coordinate_histograms_are_one_profile_per_axis():
    cloud = torch.rand(2, 500, 3) * 2 - 1
    hist = dd.coordinate_histograms(cloud, bins=8).view(2, 3, 8)
    torch.testing.assert_close(hist.sum(2), torch.ones(2, 3), rtol=0, atol=1e-6)
    low = torch.full((1, 10, 3), -0.99)
    assert dd.coordinate_histograms(low, bins=8).view(3, 8)[:, 0].tolist() == [1.0, 1.0, 1.0]


def test_tuned_protocol_separates_separable_features_and_not_noise():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 30)
    x = rng.normal(size=(120, 6)) + np.eye(6)[y] * 4
    assert dd.tuned_accuracy((x[::2], y[::2]), (x[1::2], y[1::2]), seed=0) > 95
    noise = rng.normal(size=(120, 6))
    assert dd.tuned_accuracy((noise[::2], y[::2]), (noise[1::2], y[1::2]), seed=0) < 50


def test_summary_checks_each_target():
    args = dd.parse_args(['--seeds', '0', '1'])
    results = {'box extents': {'modelnet': [60.0, 62.0], 'scan objectbg': [65.0, 61.0]},
               'random init': {'modelnet': [50.0, 52.0], 'scan objectbg': [30.0, 30.0]},
               'pre-trained': {'modelnet': [65.0, 63.0], 'scan objectbg': [35.0, 37.0]}}
    table, checks = dd.summarise(results, args)
    assert '| box extents | 61.0 ± 1.4 | 63.0 ± 2.8 |' in table          # sample std (n - 1)
    assert '| gain of pre-training (points) | +13.0 ± 2.8 | +6.0 ± 1.4 |' in table
    assert dict(checks) == {'box extents <= 70 % on modelnet': True, 'box extents <= 60 % on scan objectbg': False,
                            'random init <= 70 % on modelnet': True, 'random init <= 60 % on scan objectbg': True,
                            'gain >= 10 points on modelnet': True, 'gain >= 10 points on scan objectbg': False}


@pytest.fixture(scope='module')
def tiny_setup(tmp_path_factory):
    """Tiny demo data and a tiny pre-training config whose probe splits point at it; returns the
    arguments of a difficulty run (without --epochs)."""
    root = tmp_path_factory.mktemp('difficulty')
    data = str(root / 'demo')
    make_demo_data(data, seed=0, size='tiny')
    demo_cfgs = os.path.join(ROOT, 'cfgs', 'demo', 'dataset_configs')

    def entry(name, **others):
        with open(os.path.join(demo_cfgs, f'{name}.yaml')) as f:
            cfg = yaml.safe_load(f)
        return {**{k: v.replace('data/demo', data) if isinstance(v, str) else v for k, v in cfg.items()}, **others}

    scans = []
    for name in ('ScanObjectNN_objectbg', 'ScanObjectNN_hardest'):
        scans.append(str(root / f'{name}.yaml'))
        with open(scans[-1], 'w') as f:
            yaml.safe_dump(entry(name), f)
    paper = load_config(os.path.join(ROOT, 'cfgs', 'pretrain.yaml')).to_dict()
    config = deep_merge({k: v for k, v in paper.items() if k not in ('dataset', 'model')},
                        {**TINY_TOP, 'total_bs': 8})
    config['model'] = deep_merge(paper['model'], TINY_MODEL)
    config['dataset'] = {'train': entry('ShapeNet-55', subset='train', npoints=256),
                         'svm_train': entry('ModelNet40', subset='train', npoints=256),
                         'svm_test': entry('ModelNet40', subset='test', npoints=256)}
    path = str(root / 'pretrain_tiny.yaml')
    with open(path, 'w') as f:
        yaml.safe_dump(config, f)
    return ['--config', path, '--scan_configs', *scans, '--exp', str(root / 'exps'), '--num_workers', '0',
            '--seeds', '0', '1', '--out', str(root / 'difficulty.json')]


def run_script(argv):
    printed = io.StringIO()
    with torch_settings(), contextlib.redirect_stdout(printed):
        dd.main(argv)
    return printed.getvalue()


def test_script_probes_descriptors_and_the_random_encoder(tiny_setup):
    printed = run_script([*tiny_setup, '--epochs', '0'])
    rows = [line.split(' | ')[0].lstrip('| ') for line in printed.splitlines() if line.startswith('| ')]
    assert rows[1:] == [*dd.DESCRIPTORS, 'random init', 'random init (tuned)']
    assert '| features (2 seeds, mean ± sample std, %) | modelnet | scan objectbg | scan hardest |' in printed
    assert printed.count('PASS') + printed.count('FAIL') == 5 * 3 and 'gain' not in printed
    saved = json.load(open(tiny_setup[tiny_setup.index('--out') + 1]))
    assert all(len(accs) == 2 and all(0 <= a <= 100 for a in accs)
               for row in saved['results'].values() for accs in row.values())


@pytest.mark.slow
def test_script_pretrains_through_main_and_reuses_finished_runs(tiny_setup):
    printed = run_script([*tiny_setup, '--epochs', '2', '--seeds', '0'])
    assert '+ ' in printed and 'main.py' in printed and '| gain of pre-training (points) |' in printed
    saved = json.load(open(tiny_setup[tiny_setup.index('--out') + 1]))['results']
    assert 'the run itself logged' in printed and set(saved) >= {'pre-trained', 'pre-trained (tuned)'}
    again = run_script([*tiny_setup, '--epochs', '2', '--seeds', '0'])
    assert '+ ' not in again and json.load(open(tiny_setup[tiny_setup.index('--out') + 1]))['results'] == saved
