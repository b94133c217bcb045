"""Part-segmentation model: contract, gradients, Point-MAE layout and names, feature propagation
against a float64 NumPy brute force, encoder loading, the frozen option."""
import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models import MODELS, build_model
from models.partseg import FeaturePropagation, PartSegmentation, nll_loss
from tools.optim import build_optimizer
from utils.checkpoint import CheckpointError
from utils.config import ConfigError

LOG = logging.getLogger('tests.partseg')
TINY = {'NAME': 'PartSegmentation', 'trans_dim': 32, 'encoder_dims': 32, 'depth': 3, 'num_heads': 2,
        'num_group': 16, 'group_size': 8, 'feature_blocks': [1, 2, 3], 'propagation_dims': [48, 40],
        'head_dims': [32, 24], 'label_dim': 8}
HEAD_GROUPS = {'label_conv', 'propagation_0', 'convs1', 'bns1', 'convs2', 'bns2', 'convs3'}


def tiny(seed=0, **over):
    torch.manual_seed(seed)
    return build_model({**TINY, **over})


def clouds(b=4, n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, 3, generator=g) * torch.tensor([1.0, 0.6, 0.3])
    return x / x.norm(dim=-1).amax(1)[:, None, None]


CATEGORY = torch.tensor([0, 3, 15, 4])


def random_parts(category, n, seed=0):
    """Random valid ShapeNetPart labels of each shape's category: (B, n)."""
    from datasets.shapenetpart_labels import PARTS, CATEGORIES
    g = torch.Generator().manual_seed(seed)
    rows = [torch.tensor(PARTS[CATEGORIES[c]])[torch.randint(len(PARTS[CATEGORIES[c]]), (n,), generator=g)]
            for c in category.tolist()]
    return torch.stack(rows)


# ------------------------------------------------------------------------------ contract
def test_registered_and_outputs_log_probabilities():
    assert 'PartSegmentation' in MODELS.names()
    model = tiny()
    out = model(clouds(), CATEGORY)
    assert out.shape == (4, 256, 50) and out.dtype == torch.float32
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(4, 256), rtol=0, atol=1e-5)
    uniform = torch.full((2, 5, 50), -np.log(50.0))
    loss = nll_loss(uniform, torch.zeros(2, 5, dtype=torch.long))
    torch.testing.assert_close(loss, torch.tensor(np.log(50.0)).float())


@pytest.mark.parametrize('over', [{}, {'point_channels': 3}, {'cls_token': True}, {'fps_random_start': True}])
def test_every_parameter_gets_a_finite_gradient(over):
    model = tiny(**over)
    out = model(clouds(), CATEGORY, torch.Generator().manual_seed(0))
    nll_loss(out, random_parts(CATEGORY, 256)).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()
               or not p.grad.abs().sum() > 0]
    assert not missing, f'parameters without a nonzero finite gradient: {missing}'


def test_bf16_autocast_gives_float32_log_probabilities():
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = tiny()(clouds(), CATEGORY)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(4, 256), rtol=0, atol=1e-5)


def test_category_changes_the_prediction_and_eval_is_deterministic():
    model = tiny().eval()
    points = clouds()
    a, b = model(points, CATEGORY), model(points, CATEGORY)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, model(points, torch.tensor([1, 1, 1, 1])))


@pytest.mark.parametrize('over, message', [
    ({'type': 'linear'}, 'model.type'),
    ({'feature_blocks': [1, 2, 4]}, 'feature_blocks'),
    ({'feature_blocks': [2, 1]}, 'feature_blocks'),
    ({'head_dims': [32]}, 'head_dims'),
    ({'point_channels': 6}, 'point_channels'),
    ({'encoder_dims': 64}, 'encoder_dims'),
    ({'num_parst': 50}, "did you mean 'num_parts'"),
])
def test_config_errors_name_the_key(over, message):
    with pytest.raises(ConfigError, match=message):
        build_model({**TINY, **over})


# ------------------------------------------------------------------------------ Point-MAE layout
def point_mae_partseg_keys(depth):
    """The state-dict keys of Point-MAE's segmentation ``get_model`` (pt.py) at ``depth`` blocks."""
    conv = [f'encoder.{s}.{i}.{p}' for s in ('first_conv', 'second_conv') for i in (0, 3) for p in ('weight', 'bias')]
    bn_stats = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')
    bn = lambda name: [f'{name}.{p}' for p in bn_stats]  # noqa: E731
    block = ['norm1.weight', 'norm1.bias', 'attn.qkv.weight', 'attn.proj.weight', 'attn.proj.bias',
             'norm2.weight', 'norm2.bias', 'mlp.fc1.weight', 'mlp.fc1.bias', 'mlp.fc2.weight', 'mlp.fc2.bias']
    keys = conv + bn('encoder.first_conv.1') + bn('encoder.second_conv.1')
    keys += [f'pos_embed.{i}.{p}' for i in (0, 2) for p in ('weight', 'bias')]
    keys += [f'blocks.blocks.{i}.{k}' for i in range(depth) for k in block] + ['norm.weight', 'norm.bias']
    keys += ['label_conv.0.weight'] + bn('label_conv.1')
    keys += [f'propagation_0.mlp_convs.{i}.{p}' for i in (0, 1) for p in ('weight', 'bias')]
    keys += bn('propagation_0.mlp_bns.0') + bn('propagation_0.mlp_bns.1')
    keys += [f'convs{i}.{p}' for i in (1, 2, 3) for p in ('weight', 'bias')] + bn('bns1') + bn('bns2')
    return set(keys)


def test_full_size_names_and_shapes_are_point_mae_s():
    model = PartSegmentation({'NAME': 'PartSegmentation', 'point_channels': 3})
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert set(shapes) == point_mae_partseg_keys(depth=12)
    assert shapes['propagation_0.mlp_convs.0.weight'] == (1536, 1152 + 3, 1)
    assert shapes['propagation_0.mlp_convs.1.weight'] == (1024, 1536, 1)
    assert shapes['convs1.weight'] == (512, 3392, 1) and shapes['convs2.weight'] == (256, 512, 1)
    assert shapes['convs3.weight'] == (50, 256, 1) and shapes['label_conv.0.weight'] == (64, 16, 1)
    assert model.group_divider.num_group == 128 and model.feature_blocks == (4, 8, 12)


def reference_forward(model, points, category):
    """The model written as Point-MAE's layout: channels-first tensors, the per-point input of
    propagation is concat(xyz, interpolated features) and the head's input concatenates the
    global features repeated over the N points (B, 3392, N)."""
    B, N, _ = points.shape
    features, center = model.block_features(points, model.feature_blocks)
    x = torch.cat(features, dim=-1)                                             # (B, G, 3C)
    d2 = torch.cdist(points, center).square()
    dist, idx = d2.topk(3, dim=-1, largest=False)
    w = 1.0 / (dist + 1e-8)
    w = w / w.sum(-1, keepdim=True)
    interp = (x[torch.arange(B)[:, None, None], idx] * w[..., None]).sum(2)     # (B, N, 3C)
    h = torch.cat([points, interp], dim=-1).transpose(1, 2)
    for conv, bn in zip(model.propagation_0.mlp_convs, model.propagation_0.mlp_bns):
        h = F.relu(bn(conv(h)))
    label = model.label_conv(F.one_hot(category, 16).to(points.dtype)[:, :, None])
    glob = torch.cat([x.amax(1), x.mean(1)], dim=-1)[:, :, None].expand(-1, -1, N)
    h = torch.cat([h, glob, label.expand(-1, -1, N)], dim=1)
    h = model.dp1(F.relu(model.bns1(model.convs1(h))))
    h = F.relu(model.bns2(model.convs2(h)))
    return F.log_softmax(model.convs3(h), dim=1).transpose(1, 2)


@pytest.mark.parametrize('mode', ['eval', 'train'])
def test_forward_equals_point_mae_layout(mode):
    model = tiny(drop_path_rate=0.0, dropout=0.0).double()
    model.train(mode == 'train')
    points, category = clouds().double(), CATEGORY
    torch.testing.assert_close(model(points, category), reference_forward(model, points, category),
                               rtol=1e-10, atol=1e-10)


def numpy_propagation(points, center, features, layers, eps_bn=1e-5):
    """Brute force in float64: every point's squared distances to every center, the 3 nearest,
    weights (1/(d²+1e-8)) normalised, concat(xyz, interpolated), then per layer W x + b, BatchNorm
    with the batch statistics over all B*N points (biased variance), ReLU."""
    B, N, _ = points.shape
    out = np.zeros((B, N, features.shape[-1] + 3))
    for b in range(B):
        for i in range(N):
            d2 = ((center[b] - points[b, i]) ** 2).sum(-1)
            near = np.argsort(d2, kind='stable')[:3]
            w = 1.0 / (d2[near] + 1e-8)
            out[b, i] = np.concatenate([points[b, i], (w[:, None] * features[b, near]).sum(0) / w.sum()])
    x = out.reshape(B * N, -1)
    for weight, bias, gamma, beta in layers:
        x = x @ weight.T + bias
        x = (x - x.mean(0)) / np.sqrt(x.var(0) + eps_bn) * gamma + beta
        x = np.maximum(x, 0)
    return x.reshape(B, N, -1)


def test_feature_propagation_matches_numpy_brute_force():
    torch.manual_seed(0)
    prop = FeaturePropagation(3 + 10, [12, 7]).double().train()
    for bn in prop.mlp_bns:
        torch.nn.init.normal_(bn.weight)
        torch.nn.init.normal_(bn.bias)
    points = torch.rand(2, 40, 3, dtype=torch.float64)
    center = torch.rand(2, 9, 3, dtype=torch.float64)
    features = torch.randn(2, 9, 10, dtype=torch.float64)
    layers = [(c.weight.detach().squeeze(-1).numpy(), c.bias.detach().numpy(), bn.weight.detach().numpy(),
               bn.bias.detach().numpy()) for c, bn in zip(prop.mlp_convs, prop.mlp_bns)]
    expected = numpy_propagation(points.numpy(), center.numpy(), features.numpy(), layers)
    torch.testing.assert_close(prop(points, center, features), torch.from_numpy(expected), rtol=1e-9, atol=1e-9)


# ------------------------------------------------------------------------------ loading encoders
def maskclu_pretraining_state(point_channels=4):
    from tests.test_models import maskclu_cfg
    torch.manual_seed(5)
    cfg = maskclu_cfg(point_channels=point_channels)
    cfg['transformer_config'] = {**cfg['transformer_config'], 'depth': 3}
    return build_model(cfg).state_dict()


def point_mae_pretraining_state():
    from tests.test_models import pointmae_cfg
    torch.manual_seed(6)
    cfg = pointmae_cfg()
    cfg['transformer_config'] = {**cfg['transformer_config'], 'depth': 3}
    return build_model(cfg).state_dict()


def groups(keys):
    return {k.split('.')[0] for k in keys}


def assert_encoder_loaded(model, state, prefix):
    for key, value in model.state_dict().items():
        if prefix + key in state:
            torch.testing.assert_close(value, state[prefix + key], rtol=0, atol=0)


def test_our_pretraining_checkpoint_loads_the_encoder(tmp_path):
    state = maskclu_pretraining_state()
    path = tmp_path / 'ckpt-last.pth'
    torch.save({'base_model': state, 'epoch': 3}, path)
    model = tiny()
    report = model.load_encoder(path, LOG)
    assert report.unexpected == ['cls_token', 'cls_pos'] and report.mismatched == []
    assert groups(report.missing) == HEAD_GROUPS
    assert groups(report.loaded) == {'encoder', 'pos_embed', 'blocks', 'norm'}
    assert_encoder_loaded(model, state, 'MAE_encoder.')
    with_cls = tiny(cls_token=True).load_encoder({'base_model': state}, LOG)
    assert with_cls.unexpected == [] and groups(with_cls.missing) == HEAD_GROUPS


def test_released_maskclu_names_load_only_the_encoder():
    """The released MaskClu model keeps a second, top-level ``norm`` beside ``MAE_encoder.norm``
    (and its cut-pool head): only the encoder's may reach the segmentation backbone."""
    state = maskclu_pretraining_state()
    released = {**{f'module.{k}': v for k, v in state.items() if k.startswith('MAE_encoder.')},
                'module.norm.weight': torch.full((32,), 7.0), 'module.norm.bias': torch.full((32,), 7.0),
                'module.cut_pool.proj.weight': torch.zeros(8, 32), 'module.mask_token': torch.zeros(1, 1, 32)}
    model = tiny()
    report = model.load_encoder({'base_model': released}, LOG)
    assert report.unexpected == ['cls_token', 'cls_pos'] and groups(report.missing) == HEAD_GROUPS
    torch.testing.assert_close(model.norm.weight, state['MAE_encoder.norm.weight'], rtol=0, atol=0)


def test_point_mae_and_point_bert_names_load_the_encoder():
    state = point_mae_pretraining_state()
    wrapped = {'base_model': {f'module.{k}': v for k, v in state.items()}}
    model = tiny(point_channels=3)
    report = model.load_encoder(wrapped, LOG)
    assert report.unexpected == [] and report.mismatched == [] and groups(report.missing) == HEAD_GROUPS
    assert_encoder_loaded(model, state, 'MAE_encoder.')

    encoder = {k[len('MAE_encoder.'):]: v for k, v in state.items() if k.startswith('MAE_encoder.')}
    point_bert = {**{f'transformer_q.{k}': v for k, v in encoder.items()},
                  **{f'transformer_k.{k}': v for k, v in encoder.items()}, 'queue': torch.zeros(4, 8)}
    report = tiny(point_channels=3).load_encoder({'model': point_bert}, LOG)
    assert report.unexpected == [] and groups(report.missing) == HEAD_GROUPS and not report.mismatched


def test_channel_mismatch_names_the_config_key():
    state = {'base_model': maskclu_pretraining_state(4)}
    with pytest.raises(CheckpointError, match='set model.point_channels: 4'):
        tiny(point_channels=3).load_encoder(state, LOG)
    report = tiny(point_channels=3).load_encoder(state, LOG, partial=True)
    assert [m.key for m in report.mismatched] == ['encoder.first_conv.0.weight']


def test_point_mae_segmentation_checkpoint_loads_whole(tmp_path):
    source = tiny(seed=1, point_channels=3)
    source(clouds(), CATEGORY)  # move the BatchNorm statistics
    path = tmp_path / 'best_model.pth'
    torch.save({'epoch': 7, 'inctance_avg_iou': np.float64(0.8),
                'model_state_dict': {f'module.{k}': v for k, v in source.state_dict().items()}}, path)
    model = tiny(seed=2, point_channels=3)
    report = model.load_encoder(path, LOG)
    assert report.missing == report.unexpected == report.mismatched == []
    points = clouds(seed=3)
    torch.testing.assert_close(model.eval()(points, CATEGORY), source.eval()(points, CATEGORY), rtol=0, atol=0)


# ------------------------------------------------------------------------------ frozen encoder
def backbone_state(model):
    return {k: v.clone() for k, v in model.state_dict().items() if k.split('.')[0] not in HEAD_GROUPS}


def train_steps(model, steps=3):
    optimizer = build_optimizer(model, {'type': 'AdamW', 'kwargs': {'lr': 1e-2, 'weight_decay': 0.05}})
    parts = random_parts(CATEGORY, 256)
    for step in range(steps):
        loss = nll_loss(model.train()(clouds(seed=step), CATEGORY), parts)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@pytest.mark.parametrize('kind', ['frozen', 'full'])
def test_frozen_backbone_stays_bit_identical(kind):
    model = tiny(type=kind, fps_random_start=True)
    model.load_encoder({'base_model': maskclu_pretraining_state()}, LOG)
    before = backbone_state(model)
    head_before = model.convs1.weight.detach().clone()
    train_steps(model)
    after = backbone_state(model)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert not torch.equal(head_before, model.convs1.weight)
    if kind == 'frozen':
        assert changed == []
        assert all(p.grad is None and not p.requires_grad for p in model.backbone_parameters())
        assert not model.encoder.training and not model.blocks.training and model.propagation_0.training
    else:   # the same steps do move a trainable backbone (weights and BatchNorm statistics)
        assert 'encoder.first_conv.1.running_mean' in changed and 'blocks.blocks.0.attn.qkv.weight' in changed
