"""ConClu baseline: the global term alone on two independently augmented, unmasked views
(``view_transforms``, ``mask_ratio: 0``), and the shipped cfgs/pretrain_conclu.yaml."""
import math
import os

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from models import build_model
from test_models import TINY_TRANSFORMER, clouds, count_calls, maskclu_cfg, run
from tools.config_check import validate_config
from utils.config import ConfigError, load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONCLU_VIEWS = [{'NAME': 'HalfSpaceCrop', 'keep': 0.85}, {'NAME': 'RotateUp', 'max_angle': 5.0, 'axis': 'y'},
                {'NAME': 'Jitter', 'sigma': 0.01, 'clip': 0.025}]
GLOBAL_ONLY = {'assign': {'weight': 0.0}, 'center': {'weight': 0.0}, 'global': {'type': 'conclu'}}
UNMASKED = {**TINY_TRANSFORMER, 'mask_ratio': 0.0}
B, N = 4, 256


def conclu_cfg(view_transforms=CONCLU_VIEWS, losses=GLOBAL_ONLY, transformer_config=UNMASKED):
    return maskclu_cfg(losses, view_transforms=view_transforms, transformer_config=transformer_config)


def build(cfg=None, seed=0):
    torch.manual_seed(seed)
    return build_model(cfg or conclu_cfg())


def record_inputs(module):
    """Inputs (first positional argument) of every call of ``module``."""
    seen = []
    module.register_forward_hook(lambda _module, args, _out: seen.append(args[0]))
    return seen


def test_global_terms_alone_with_every_gradient_and_no_dense_modules():
    model = build()
    assert {k.split('.')[0] for k in model.state_dict()} == {'MAE_encoder', 'global_loss'}
    assert not model.needs_decoder and model.cluster_head is None and model.reconstruction_loss is None
    out = run(model)
    assert set(out['terms']) == {'global_con', 'global_clu', 'global_orth'}
    assert all(math.isfinite(v.item()) for v in [out['loss'], *out['terms'].values()])
    total = sum(model.term_weights[k] * v for k, v in out['terms'].items())
    torch.testing.assert_close(out['loss'], total, rtol=1e-6, atol=1e-6)
    out['loss'].backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad
               and (p.grad is None or not torch.isfinite(p.grad).all())]
    assert not missing, f'parameters without a finite gradient: {missing}'


def test_views_are_augmented_independently_tokenized_once_and_unmasked():
    model = build()
    grouped, encoded = record_inputs(model.MAE_encoder.group_divider), record_inputs(model.MAE_encoder.blocks)
    embedding = count_calls(model.MAE_encoder.encoder)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run(model, points=clouds(b=B, n=N))
    stacked, = grouped
    assert stacked.shape == (2 * B, round(0.85 * N), 3) and len(embedding) == 1
    assert (stacked[:B] - stacked[B:]).abs().amax(dim=(1, 2)).min() > 1e-2  # every sample's views differ
    tokens, = encoded
    assert tokens.shape == (2 * B, 1 + 16, 32)  # cls + all G patches of both views
    assert 'phase/augment' in {e.name for e in prof.events()}


def test_view_v_of_sample_b_is_row_v_times_b():
    model = build(conclu_cfg(view_transforms=[{'NAME': 'HalfSpaceCrop', 'keep': 0.5}]))
    grouped = record_inputs(model.MAE_encoder.group_divider)
    points = clouds(b=B, n=N)
    run(model, points=points)
    views = grouped[0].reshape(2, B, N // 2, 1, 3)
    assert (views == points[:, None]).all(-1).any(-1).all()  # each row is a crop of its own sample
    assert not (views == points.roll(1, 0)[:, None]).all(-1).any()
    assert not torch.equal(views[0], views[1])


def test_view_draws_come_from_the_generator():
    model = build()
    losses = []
    for seed in (5, 5, 6):
        torch.manual_seed(1)
        losses.append(run(model, seed=seed)['loss'].item())
    assert losses[0] == losses[1] != losses[2]


def test_view_transforms_also_feed_masked_views_and_reconstruction():
    cfg = conclu_cfg(losses={'reconstruction': {'weight': 1.0}}, transformer_config=TINY_TRANSFORMER)
    model = build(cfg)
    grouped = record_inputs(model.MAE_encoder.group_divider)
    out = run(model)
    assert set(out['terms']) == {'assign', 'center', 'global_contrast', 'reconstruction'}  # the paper's terms
    assert all(math.isfinite(v.item()) for v in out['terms'].values())
    assert grouped[0].shape[0] == 2 * B


def test_unmasked_encoder_features_are_the_probe_features():
    model = build().eval()
    points = clouds()
    torch.testing.assert_close(model.global_features(points), model.MAE_encoder(points), rtol=0, atol=0)


@pytest.mark.parametrize('cfg, message', [
    (conclu_cfg(view_transforms=[{'NAME': 'HalfSpaceCrp'}]),
     r"model\.view_transforms\[0\]: unknown transform 'HalfSpaceCrp' \(did you mean 'HalfSpaceCrop'\?\)"),
    (conclu_cfg(view_transforms=[{'NAME': 'Jitter', 'sigam': 0.01}]), r"model\.view_transforms\[0\] Jitter: .*'sigam'"),
    (conclu_cfg(view_transforms={'NAME': 'Jitter'}), r'model\.view_transforms: expected a list'),
    (conclu_cfg(losses={}), r'mask_ratio: 0 \(no masking\) .* assign, center need'),
    (conclu_cfg(view_transforms=[]), r'model\.view_transforms: .* 2 views are identical'),
    (conclu_cfg(transformer_config={**TINY_TRANSFORMER, 'mask_ratio': 0.01}), r'must be 0 \(no masking\) or mask'),
    ({'NAME': 'Point_MAE', 'transformer_config': {'mask_ratio': 0}}, r'active terms reconstruction need'),
])
def test_config_errors_name_the_key(cfg, message):
    with pytest.raises(ConfigError, match=message):
        build_model(cfg)


@pytest.mark.parametrize('path', ['cfgs/pretrain_conclu.yaml', 'cfgs/demo/pretrain_conclu.yaml'])
def test_shipped_conclu_configs_validate(path):
    cfg = validate_config(load_config(os.path.join(ROOT, path)), path)
    model = cfg.model
    assert model.views == 2 and model.transformer_config.mask_ratio == 0 and cfg.train_transforms == []
    assert [t['NAME'] for t in model.view_transforms] == ['HalfSpaceCrop', 'RotateUp', 'Jitter']
    assert model.losses.assign.weight == model.losses.center.weight == model.losses.reconstruction.weight == 0
    g = model.losses['global']
    assert (g.type, g.weight_con, g.weight_clu, g.weight_orth) == ('conclu', 1.0, 1.0, 0.01)
