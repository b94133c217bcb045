"""Classification evaluation: data path, metrics, voting aggregation, the FPS cache, R-repeat statistics."""
import pytest
import torch

import tools.classification as clf
from tools.classification import (VotingTest, accuracy_metrics, classification_config, random_subset, summary,
                                  train_points, vote_logits, vote_metrics)
from utils.config import ConfigError
from utils.transforms import build_transforms

K = 4


class Recorder(torch.nn.Module):
    """A stub classifier: logits (B, K) from the mean and spread of each cloud; remembers its inputs."""

    def __init__(self):
        super().__init__()
        self.inputs = []
        self.weight = torch.randn(4, K, generator=torch.Generator().manual_seed(3))

    def forward(self, points):
        self.inputs.append(points.clone())
        feats = torch.cat([points.mean(1), points.std(1).mean(-1, keepdim=True)], -1)
        return feats @ self.weight


def clouds(n=6, p=40, seed=0):
    return torch.randn(n, p, 3, generator=torch.Generator().manual_seed(seed))


class ListLoader(list):
    """A loader stub: batches in the classification layout (name, 'sample', (points, labels))."""

    def __init__(self, points, labels, bs):
        super().__init__(('M', 's', (points[i:i + bs], labels[i:i + bs])) for i in range(0, len(points), bs))


def test_vote_logits_are_the_mean_of_the_votes_over_subsets_of_the_cached_cloud():
    model, data, V = Recorder(), clouds(), 5
    out = vote_logits(model, data, npoints=16, votes=V, transforms=build_transforms([]),
                      generator=torch.Generator().manual_seed(0), batch_size=4)
    assert out.shape == (6, K)
    expected, offset = [], 0
    for views in model.inputs:                   # one forward per chunk of B clouds, V votes each
        B = views.shape[0] // V
        views = views.view(V, B, 16, 3)
        expected.append(torch.stack([Recorder()(v) for v in views]).mean(0))
        for b in range(B):                       # every vote is 16 distinct points of its cloud
            for v in range(V):
                match = (views[v, b][:, None] == data[offset + b][None]).all(-1)
                assert match.any(1).all() and len(set(match.float().argmax(1).tolist())) == 16
        assert not torch.equal(views[0], views[1])
        offset += B
    assert offset == 6
    torch.testing.assert_close(out, torch.cat(expected), rtol=1e-6, atol=1e-6)


def test_voting_picks_the_class_of_the_mean_logits_not_the_majority():
    class Votes(torch.nn.Module):   # votes 0, 0, 1 for class 0, 0, 1, but class 1 wins on the mean
        def forward(self, points):
            logits = torch.zeros(points.shape[0], 2)
            third = points.shape[0] // 3
            logits[:2 * third, 0] = 1.0
            logits[2 * third:, 1] = 5.0
            return logits
    out = vote_logits(Votes(), clouds(n=2, p=8), npoints=8, votes=3, transforms=build_transforms([]))
    assert out.argmax(-1).tolist() == [1, 1]
    torch.testing.assert_close(out, torch.tensor([[2 / 3, 5 / 3]] * 2), rtol=0, atol=1e-6)


def test_fps_runs_once_per_test_cloud_for_all_votes_and_repeats(monkeypatch):
    calls = []
    real = clf.fps_downsample
    monkeypatch.setattr(clf, 'fps_downsample', lambda p, n: calls.append(p.shape[0]) or real(p, n))
    data, labels = clouds(n=10, p=64), torch.arange(10) % K
    test = VotingTest(ListLoader(data, labels, 4), torch.device('cpu'), npoints=16, fps_points=20, votes=3,
                      repeats=3, transforms=build_transforms([{'NAME': 'ScaleAndTranslate'}]), num_classes=K)
    metrics, per_repeat = test(Recorder(), seed=1)
    test(Recorder(), seed=2)
    assert calls == [4, 4, 2]                    # each test cloud once, whatever V and R
    assert test.clouds.shape == (10, 20, 3) and len(per_repeat) == 3 == metrics['vote_repeats']


def test_repeats_are_seeded_and_reported_as_mean_std_and_max():
    data, labels = clouds(n=12, p=64, seed=4), torch.arange(12) % K

    def run(seed):
        test = VotingTest(ListLoader(data, labels, 5), torch.device('cpu'), npoints=8, fps_points=32, votes=2,
                          repeats=4, transforms=build_transforms([{'NAME': 'ScaleAndTranslate'}]), num_classes=K)
        return test(Recorder(), seed=seed)

    (m1, r1), (m2, r2), (_, r3) = run(0), run(0), run(7)
    assert r1 == r2 and r1 != r3
    accs = [r['acc'] for r in r1]
    assert len(set(accs)) > 1     # the repeats differ, so mean, std and max say different things
    stats = summary(accs)
    assert m1['vote_acc_mean'] == pytest.approx(sum(accs) / 4)
    assert m1['vote_acc_max'] == max(accs) and m1['vote_acc_std'] == pytest.approx(stats['std'])
    assert m1['vote_acc_std'] == pytest.approx(torch.tensor(accs).std(unbiased=True).item(), rel=1e-6)


def test_summary_statistics():
    s = summary([90.0, 92.0, 94.0])
    assert (s['mean'], s['max'], s['min'], s['n']) == (92.0, 94.0, 90.0, 3)
    assert s['std'] == pytest.approx(2.0)
    assert summary([91.0])['std'] == 0.0
    m = vote_metrics([{'acc': 50.0, 'mean_class_acc': 40.0}, {'acc': 70.0, 'mean_class_acc': 60.0}])
    assert m['vote_acc_mean'] == 60.0 and m['vote_acc_max'] == 70.0 and m['vote_mean_class_acc_max'] == 60.0


def test_overall_and_mean_class_accuracy():
    label = torch.tensor([0, 0, 0, 0, 1, 2])
    pred = torch.tensor([0, 0, 0, 0, 0, 2])       # class 0: 4/4, class 1: 0/1, class 2: 1/1; class 3 absent
    m = accuracy_metrics(pred, label, num_classes=4)
    assert m['acc'] == pytest.approx(500 / 6) and m['mean_class_acc'] == pytest.approx(200 / 3)


def test_training_clouds_fps_then_random_subset_then_augmentation():
    data = clouds(n=3, p=50)
    out = train_points(data, 16, 20, build_transforms([]), torch.Generator().manual_seed(0))
    fps = clf.fps_downsample(data, 20)
    assert out.shape == (3, 16, 3)
    for b in range(3):  # each a subset of that cloud's FPS points, drawn per cloud
        assert (out[b][:, None] == fps[b][None]).all(-1).any(1).all()
    assert random_subset(data, 50) is data
    with pytest.raises(ValueError, match='fewer than npoints=64'):
        train_points(data, 64, 80, build_transforms([]))


def test_classification_config_checks_keys():
    cfg = classification_config({'npoints': 1024, 'classification': {'fps_points': 1200}})
    assert cfg == {'fps_points': 1200, 'votes': 10, 'vote_repeats': 10}
    assert classification_config({'npoints': 2048})['fps_points'] == 2048
    with pytest.raises(ConfigError, match='classification.fps_points'):
        classification_config({'npoints': 1024, 'classification': {'fps_points': 1000}})
    with pytest.raises(ConfigError, match='vote_repeat'):
        classification_config({'classification': {'vote_repeat': 3}})


FINETUNE_CONFIGS = ['finetune_modelnet', 'finetune_modelnet_8k', 'finetune_scan_objbg', 'finetune_scan_objonly',
                    'finetune_scan_hardest', 'fewshot']


@pytest.mark.parametrize('folder', ['cfgs', 'cfgs/demo'])
@pytest.mark.parametrize('name', FINETUNE_CONFIGS)
def test_shipped_finetune_configs_validate(folder, name):
    import os

    from conftest import ROOT
    from tools.config_check import validate_config
    from utils.config import load_config
    path = os.path.join(ROOT, folder, f'{name}.yaml')
    if folder == 'cfgs/demo' and name == 'finetune_modelnet_8k':
        assert not os.path.exists(path)
        return
    cfg = validate_config(load_config(path), path)
    section = classification_config(cfg)
    expected = {'finetune_modelnet': (1024, 1200, 64), 'finetune_modelnet_8k': (8192, 8192, 512),
                'fewshot': (1024, 1200, 64)}.get(name, (2048, 2048, 128))
    if folder == 'cfgs':
        assert (cfg.npoints, section['fps_points'], cfg.model.num_group) == expected
        assert cfg.model.point_channels == 'auto' and cfg.grad_norm_clip == 10 and cfg.total_bs == 32
    else:
        assert cfg.model.trans_dim == 192 and cfg.dataset.train.get('DATA_PATH', cfg.dataset.train.get('ROOT'))\
            .startswith('data/demo/')
