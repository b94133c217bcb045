"""Linear-SVM probe: feature extraction (FPS to the model's size), the SVM score, and the
periodic probe of the pre-training runner on the tiny demo ModelNet."""
import json
import os

import numpy as np
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


def test_runner_probes_the_frozen_encoder_and_keeps_the_best(tmp_path, demo_root, torch_globals):
    from conftest import write_tiny_config
    from datasets.demo.generate import MODELNET_POINTS, SIZES, make_modelnet
    from test_runner_pretrain import run
    make_modelnet(demo_root, 0, SIZES['tiny'])
    modelnet = {'NAME': 'ModelNet', 'DATA_PATH': os.path.join(demo_root, 'ModelNet', 'modelnet40_normal_resampled'),
                'N_POINTS': MODELNET_POINTS, 'NUM_CATEGORY': 40, 'npoints': 256}
    config = write_tiny_config(str(tmp_path), demo_root, max_epoch=2, svm_probe={'freq': 1, 'C': 0.01},
                               dataset={'svm_train': {**modelnet, 'subset': 'train'},
                                        'svm_test': {**modelnet, 'subset': 'test'}})
    path = run(config, str(tmp_path / 'exps'), 'svm')
    with open(os.path.join(path, 'metrics.jsonl')) as f:
        epochs = [r for r in map(json.loads, f) if r['tag'] == 'epoch']
    accs = [r['svm_acc'] for r in epochs]
    assert len(accs) == 2 and all(0.0 <= a <= 100.0 for a in accs)
    best = torch.load(os.path.join(path, 'ckpt-best.pth'), map_location='cpu', weights_only=False)
    assert best['best_metrics']['svm_acc'] == max(accs)
    assert best['epoch'] == best['best_metrics']['epoch'] == 1 + accs.index(max(accs))
