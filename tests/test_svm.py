"""Linear-SVM probe: feature extraction (FPS to the model's size), the SVM score, and the
periodic probe of the pre-training runner on the tiny demo ModelNet."""
import json
import os

import numpy as np
import pytest
import torch

from utils.transforms import fps_downsample
from extensions import furthest_point_sample
from tools.svm import extract_features, linear_svm_accuracy


def modelnet_batches(b=4, n=64, batches=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [('ModelNet', 'sample', (torch.rand(b, n, 3, generator=g), torch.arange(b).view(b, 1) % 2))
            for _ in range(batches)]


def test_extract_features_downsamples_by_fps_and_flattens_labels():
    seen = []

    def feature_fn(points):
        seen.append(points)
        return points.mean(dim=1)
    batches = modelnet_batches()
    feats, labels = extract_features(feature_fn, batches, torch.device('cpu'), npoints=16)
    assert feats.shape == (12, 3) and labels.tolist() == [0, 1, 0, 1] * 3
    first = batches[0][2][0]
    expected = torch.gather(first, 1, furthest_point_sample(first, 16).unsqueeze(-1).expand(-1, -1, 3))
    torch.testing.assert_close(seen[0], expected, rtol=0, atol=0)
    assert fps_downsample(first, 64) is first


def test_linear_svm_scores_separable_features_perfectly_and_random_ones_near_chance():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    x = rng.normal(size=(300, 8)) * 0.1 + np.eye(8)[y] * 3
    assert linear_svm_accuracy(x[:200], y[:200], x[200:], y[200:], C=1.0) == 100.0
    noise = rng.normal(size=(300, 8))
    assert linear_svm_accuracy(noise[:200], y[:200], noise[200:], y[200:], C=1.0) < 60.0


def test_tuned_probe_chooses_C_on_train_features_only(monkeypatch):
    """A spy on every scaler and SVM fit of the C selection: only train rows enter it; the test
    features change the accuracy but not the C chosen or the cross-validation scores."""
    import sklearn.preprocessing
    import tools.svm as svm
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 40)
    x = rng.normal(size=(120, 5)) + np.eye(5)[y] * 1.5
    train, test = (x[::2], y[::2]), (x[1::2] + 100.0, y[1::2])   # test rows far from every train row
    seen, selecting = [], []
    fit, choose = sklearn.preprocessing.StandardScaler.fit, svm.choose_C

    def spy_fit(self, X, *args, **kwargs):
        if selecting:
            seen.append(np.asarray(X))
        return fit(self, X, *args, **kwargs)

    def spy_choose(train_x, train_y, **kwargs):
        selecting.append(train_x)
        try:
            return choose(train_x, train_y, **kwargs)
        finally:
            selecting.clear()
    monkeypatch.setattr(sklearn.preprocessing.StandardScaler, 'fit', spy_fit)
    monkeypatch.setattr(svm, 'choose_C', spy_choose)
    first = svm.tuned_svm_accuracy(train, test, seed=0)
    assert len(seen) == 5 * len(svm.C_GRID) + 1   # 5 folds per C, then the refit on all of train
    train_rows = {row.tobytes() for row in train[0]}
    for X in seen:
        assert {row.tobytes() for row in X} <= train_rows
    assert first['C'] in svm.C_GRID and set(first['cv']) == set(svm.C_GRID)
    other = svm.tuned_svm_accuracy(train, (x[1::2], y[1::2]), seed=0)
    assert (other['C'], other['cv']) == (first['C'], first['cv']) and other['acc'] > first['acc']


def test_few_items_per_class_skip_cross_validation():
    from tools.svm import choose_C
    assert choose_C(np.eye(4), np.array([0, 1, 2, 3])) == (1.0, {})


@pytest.fixture(scope='module')
def probed(tmp_path_factory, demo_root):
    """A 2-epoch tiny pre-training with the probe every epoch on the tiny demo ModelNet, counting
    the evaluation loaders the probe builds: (config, experiment folder, modelnet entry, builds)."""
    from conftest import torch_settings, write_tiny_config
    from datasets.demo.generate import MODELNET_POINTS, SIZES, make_modelnet
    from test_runner_pretrain import run
    import tools.svm as svm
    tmp_path = tmp_path_factory.mktemp('svm')
    make_modelnet(demo_root, 0, SIZES['tiny'])
    modelnet = {'NAME': 'ModelNet', 'DATA_PATH': os.path.join(demo_root, 'ModelNet', 'modelnet40_normal_resampled'),
                'N_POINTS': MODELNET_POINTS, 'NUM_CATEGORY': 40, 'npoints': 256}
    config = write_tiny_config(str(tmp_path), demo_root, max_epoch=2, svm_probe={'freq': 1, 'C': 0.01},
                               dataset={'svm_train': {**modelnet, 'subset': 'train'},
                                        'svm_test': {**modelnet, 'subset': 'test'}})
    builds, build = [], svm.build_dataloader

    def counting_build(entry, **kwargs):
        builds.append(entry['subset'])
        return build(entry, **kwargs)
    svm.build_dataloader = counting_build
    try:
        with torch_settings():
            path = run(config, str(tmp_path / 'exps'), 'svm')
    finally:
        svm.build_dataloader = build
    return config, path, modelnet, builds


def test_runner_probes_the_frozen_encoder_and_keeps_the_best(probed):
    config, path, _, builds = probed
    assert builds == ['train', 'test']   # two probes, the loaders built once
    with open(os.path.join(path, 'metrics.jsonl')) as f:
        epochs = [r for r in map(json.loads, f) if r['tag'] == 'epoch']
    accs = [r['svm_acc'] for r in epochs]
    assert len(accs) == 2 and all(0.0 <= a <= 100.0 for a in accs)
    best = torch.load(os.path.join(path, 'ckpt-best.pth'), map_location='cpu', weights_only=False)
    assert best['best_metrics']['svm_acc'] == max(accs)
    assert best['epoch'] == best['best_metrics']['epoch'] == 1 + accs.index(max(accs))
    with open(os.path.join(path, 'results.json')) as f:
        results = json.load(f)
    assert results['consider_metric'] == {'name': 'svm_acc', 'mode': 'max'}
    assert results['best_epoch']['metrics']['svm_acc'] == max(accs)
    assert results['last_epoch']['epoch'] == 2 and results['last_epoch']['metrics']['svm_acc'] == accs[-1]


def svm_run(config, exp, ckpt, *extra):
    import main
    main.main(['--svm', '--ckpts', ckpt, '--config', config, '--exp', exp, '--exp_name', 'probe', '--device', 'cpu',
               '--num_workers', '0', *extra])
    stem = os.path.splitext(os.path.basename(config))[0]
    with open(os.path.join(exp, stem, 'cfgs', 'probe', 'results.json')) as f:
        return json.load(f)


def classifier_config(folder, modelnet, **model):
    """A tiny PointTransformer config with ModelNet train/test splits (no svm_* splits)."""
    import yaml
    from conftest import TINY_BACKBONE
    cfg = {'optimizer': {'type': 'AdamW', 'kwargs': {'lr': 1e-3}},
           'scheduler': {'type': 'CosLR', 'kwargs': {'epochs': 1}}, 'npoints': 256, 'total_bs': 8,
           'model': {'NAME': 'PointTransformer', **TINY_BACKBONE, 'encoder_dims': TINY_BACKBONE['trans_dim'],
                     'point_channels': 4, 'cls_dim': 40, **model},
           'dataset': {'train': {**modelnet, 'subset': 'train'}, 'test': {**modelnet, 'subset': 'test'}}}
    path = os.path.join(folder, 'cfgs', 'svm_classifier.yaml')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        yaml.safe_dump(cfg, f)
    return path


def test_svm_mode_chooses_C_on_train_only_and_writes_results(probed, tmp_path, monkeypatch, capsys, torch_globals):
    import tools.svm as svm
    from tools.svm import SvmProbe
    config, path, modelnet, _ = probed
    ckpt = os.path.join(path, 'ckpt-last.pth')
    extracted, chosen_on = [], []
    features, choose = SvmProbe.features, svm.choose_C

    def spy_features(self, feature_fn):
        out = features(self, feature_fn)
        extracted.append(out)
        return out

    def spy_choose(train_x, train_y, **kwargs):
        chosen_on.append((train_x, train_y))
        return choose(train_x, train_y, **kwargs)
    monkeypatch.setattr(SvmProbe, 'features', spy_features)
    monkeypatch.setattr(svm, 'choose_C', spy_choose)

    figures = []
    for name, cfg in (('pre-training', config), ('classifier', classifier_config(str(tmp_path), modelnet))):
        extracted.clear(), chosen_on.clear()
        results = svm_run(cfg, str(tmp_path / name), ckpt)   # svm_train/svm_test, then train/test splits
        (train, test), = extracted
        (x, y), = chosen_on
        assert x is train[0] and y is train[1]   # the C selection saw the train features, nothing else
        metrics = results['metrics']
        assert results['mode'] == 'svm' and results['checkpoint'] == ckpt
        assert metrics['svm_C'] in svm.C_GRID and (metrics['train_items'], metrics['test_items']) == (len(y), len(test[1]))
        assert 0.0 <= metrics['svm_acc'] <= 100.0 and f"svm_cv_acc_C={metrics['svm_C']:g}" in metrics
        printed = capsys.readouterr().out
        assert f"accuracy {metrics['svm_acc']:.2f} % with C = {metrics['svm_C']:g}" in printed
        figures.append(metrics)
    assert figures[0] == figures[1]   # the same encoder through either model: the same features and figures


def test_svm_mode_refuses_a_checkpoint_of_another_backbone(probed, tmp_path, torch_globals):
    _, path, modelnet, _ = probed
    config = classifier_config(str(tmp_path), modelnet, trans_dim=48, encoder_dims=48)
    with pytest.raises(SystemExit, match=r"main.py: error: .*does not fit the model's backbone"):
        svm_run(config, str(tmp_path / 'exps'), os.path.join(path, 'ckpt-last.pth'))


def test_svm_mode_needs_labelled_splits(probed, tmp_path, torch_globals):
    import yaml
    config, path, _, _ = probed
    with open(config) as f:
        cfg = yaml.safe_load(f)
    cfg['dataset'] = {'train': cfg['dataset']['train']}
    cfg['svm_probe'] = {**cfg.get('svm_probe', {}), 'freq': 0}  # else the periodic probe's check speaks first
    bad = tmp_path / 'cfgs' / 'nosplits.yaml'
    bad.parent.mkdir()
    bad.write_text(yaml.safe_dump(cfg))
    with pytest.raises(SystemExit, match=r'--svm needs labelled splits svm_train and svm_test \(or train and test\)'):
        svm_run(str(bad), str(tmp_path / 'exps'), os.path.join(path, 'ckpt-last.pth'))


def test_svm_mode_probes_a_point_mae_encoder_without_a_cls_token(probed, tmp_path, torch_globals):
    """Point-MAE's pre-training has no cls token: --svm builds the classifier without one and probes
    concat(mean, max) -- the feature-extraction entry's global feature of the same checkpoint -- rather
    than stopping on (or probing) a random token."""
    from conftest import TINY_BACKBONE
    from models import build_model
    from models.features import load_encoder
    _, _, modelnet, _ = probed
    torch.manual_seed(0)
    pointmae = build_model({'NAME': 'Point_MAE', 'num_group': TINY_BACKBONE['num_group'],
                            'group_size': TINY_BACKBONE['group_size'],
                            'transformer_config': {'trans_dim': 32, 'encoder_dims': 32, 'depth': 2, 'num_heads': 2,
                                                   'decoder_depth': 1, 'decoder_num_heads': 2}})
    ckpt = str(tmp_path / 'pointmae.pth')
    torch.save({'base_model': pointmae.state_dict()}, ckpt)
    assert not any('cls_token' in k for k in pointmae.state_dict())
    config = classifier_config(str(tmp_path), modelnet, point_channels='auto')
    metrics = svm_run(config, str(tmp_path / 'exps'), ckpt)['metrics']
    assert 0.0 <= metrics['svm_acc'] <= 100.0 and metrics['train_items'] > 0

    from tools.runner_svm import load_frozen_model
    from utils.config import load_config
    import logging
    model = load_frozen_model(load_config(config), ckpt, torch.device('cpu'), logging.getLogger('tests'))
    assert model.cls_token is None
    points = torch.rand(2, 256, 3) - 0.5
    with torch.no_grad():
        encoder = load_encoder(ckpt, num_heads=2, num_group=TINY_BACKBONE['num_group'],
                               group_size=TINY_BACKBONE['group_size'])
        expected = encoder(points, per_point=False).global_feature
        torch.testing.assert_close(model.global_features(points), expected, rtol=1e-5, atol=1e-6)
