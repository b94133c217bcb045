"""Dense frozen probe: feature sampling, the linear probe, and a tiny synthetic problem on which a
frozen (random) encoder's propagated features beat a constant predictor."""
import torch

from datasets.shapenetpart_labels import CATEGORIES, CATEGORY_OF_PART, PARTS
from models import build_model
from models.features import load_encoder
from tools.dense_probe import dense_probe, evaluate_probe, fit_linear_probe, sample_point_features
from utils.seg_metrics import PartSegMeter

TABLE = torch.from_numpy(CATEGORY_OF_PART)
LAPTOP, MUG = CATEGORIES.index('Laptop'), CATEGORIES.index('Mug')


def synthetic_loader(shapes, n=256, batch=8, seed=0):
    """Batches (points, category, parts) of ellipsoid clouds; Laptop: part by the sign of y, Mug:
    by the sign of x (as the real loader collates them)."""
    g = torch.Generator().manual_seed(seed)
    points = torch.randn(shapes, n, 3, generator=g) * torch.tensor([1.0, 0.7, 0.5])
    points = points / points.norm(dim=-1).amax(1)[:, None, None]
    category = torch.where(torch.arange(shapes) % 2 == 0, LAPTOP, MUG)
    axis = torch.where(category == LAPTOP, 1, 0)
    positive = points[torch.arange(shapes), :, axis] > 0
    first = torch.tensor([PARTS[CATEGORIES[c]][0] for c in category.tolist()])
    parts = first[:, None] + positive.long()
    return [(points[i:i + batch], category[i:i + batch], parts[i:i + batch]) for i in range(0, shapes, batch)]


def test_sample_point_features_keeps_points_and_labels_together():
    loader = synthetic_loader(16)
    feats, parts, category = sample_point_features(lambda p: p * 10, loader, 'cpu', points_per_shape=5)
    assert feats.shape == (80, 3) and feats.dtype == torch.float16 and parts.shape == category.shape == (80,)
    xyz = feats.float() / 10
    axis = torch.where(category == LAPTOP, 1, 0)
    first = torch.tensor([PARTS[CATEGORIES[c]][0] for c in category.tolist()])
    assert torch.equal(parts, first + (xyz[torch.arange(80), axis] > 0).long())
    again, _, _ = sample_point_features(lambda p: p * 10, loader, 'cpu', points_per_shape=5)
    assert torch.equal(feats, again)                                   # seeded
    every, _, _ = sample_point_features(lambda p: p, loader, 'cpu', points_per_shape=1000)
    assert every.shape == (16 * 256, 3)                                 # capped at N


def test_linear_probe_learns_badly_scaled_features():
    g = torch.Generator().manual_seed(0)
    category = torch.where(torch.rand(4000, generator=g) < 0.5, LAPTOP, MUG)
    side = torch.rand(4000, generator=g) < 0.5
    parts = torch.tensor([PARTS[CATEGORIES[c]][0] for c in category.tolist()]) + side.long()
    signal = torch.where(side, 1.0, -1.0)[:, None] * torch.tensor([1.0, -0.5])
    features = torch.cat([signal, torch.randn(4000, 6, generator=g)], 1) * 300 + 1000   # far from standardised
    probe = fit_linear_probe(features.half(), parts, category, TABLE, epochs=3, batch_size=256, lr=1e-2)
    scores = probe(features.half().float())
    allowed = TABLE[None, :] == category[:, None]
    pred = scores.masked_fill(~allowed, float('-inf')).argmax(-1)
    assert (pred == parts).float().mean() > 0.99


def constant_predictor_miou(train, test):
    """Instance mIoU of predicting every point as its category's most frequent training part."""
    points = torch.cat([b[2] for b in train]).reshape(-1)
    counts = torch.bincount(points, minlength=50).float()
    meter = PartSegMeter(TABLE)
    seen = 0
    for points, category, parts in test:
        scores = counts.expand(len(points), points.shape[1], 50)
        meter.update(scores, parts, category, torch.arange(seen, seen + len(points)))
        seen += len(points)
    return meter.compute()['instance_miou']


def test_frozen_encoder_of_a_checkpoint_beats_a_constant_predictor():
    """The path the CLI takes: the encoder of a (here untrained, tiny) MaskClu pre-training
    checkpoint through ``models.features.load_encoder``, per-point features of blocks 1 and 2."""
    from tests.test_models import maskclu_cfg
    torch.manual_seed(0)
    cfg = maskclu_cfg()
    ckpt = {'base_model': build_model(cfg).state_dict(), 'config': {'model': cfg}}
    encoder = load_encoder(ckpt, group_size=16)
    assert not encoder.training and not any(p.requires_grad for p in encoder.parameters())

    def feature_fn(points):
        return encoder(points, point_blocks=(1, 2)).point_features

    train, test = synthetic_loader(48, seed=0), synthetic_loader(16, seed=1)
    with torch.random.fork_rng():
        result = dense_probe(feature_fn, train, test, 'cpu', TABLE, CATEGORIES, points_per_shape=64, epochs=20,
                             batch_size=256, lr=3e-3)
    baseline = constant_predictor_miou(train, test)
    assert result['train_points'] == 48 * 64 and result['feature_dim'] == 64 and result['shapes'] == 16
    assert result['shapes_per_category']['Laptop'] == result['shapes_per_category']['Mug'] == 8
    assert baseline < 0.35 and result['instance_miou'] > baseline + 0.3, (baseline, result['instance_miou'])


def test_evaluate_probe_uses_given_indices():
    loader = synthetic_loader(8, batch=4)
    doubled = [(*b, torch.tensor([0, 1, 2, 3])) for b in loader]      # the second batch repeats indices 0-3
    probe = torch.nn.Linear(3, 50)
    assert evaluate_probe(lambda p: p, probe, doubled, 'cpu', TABLE)['shapes'] == 4
    assert evaluate_probe(lambda p: p, probe, loader, 'cpu', TABLE)['shapes'] == 8


def test_probe_output_layer_has_one_row_per_part():
    probe = fit_linear_probe(torch.randn(64, 4).half(), torch.full((64,), 28), torch.full((64,), LAPTOP), TABLE,
                             epochs=1, batch_size=32)
    assert probe.weight.shape == (50, 4) and not probe.training
