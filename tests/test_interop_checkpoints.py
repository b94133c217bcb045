"""Checkpoints across code bases: ours open with a plain ``torch.load(weights_only=True)`` (what
Point-MAE's and MaskClu's tools call), state dicts named the Point-MAE / released-MaskClu way load
into our models, ours export to their names, a backbone that does not fit stops the load, and the
report names what it did not load. The foreign names below are written out as their code names
its modules (Point-MAE ``increase_dim``; released MaskClu ``cut_pool`` = MinCutPoolingLayer with
``Wm``, ``Ws``, ``W1`` = Linear-LayerNorm-ReLU-Linear, ``W2``, ``norm``, and a top-level ``norm``).
"""
import logging
import random

import numpy as np
import pytest
import torch

from models import build_model
from test_models import classifier_cfg, clouds, maskclu_cfg, point_mae_checkpoint_keys, pointmae_cfg, released_cfg
from tools.optim import build_optimizer, build_scheduler
from utils.checkpoint import (CheckpointError, load_checkpoint, load_pretrained, make_checkpoint, resume_state,
                              save_checkpoint, to_foreign_names, to_our_names)
from utils.checkpoint_interop import backbone_config, export_checkpoint, export_state_dict, fill_open_keys
from utils.config import ConfigError
from utils.load_report import LoadReport

LOG = logging.getLogger('tests.interop')


def tiny(cfg_fn, seed=0):
    torch.manual_seed(seed)
    return build_model(cfg_fn())


def our_checkpoint(path, model=None, step=True):
    """A full checkpoint the way the runner writes it: model, fused AdamW (after a step, with
    ``step``), schedule, AMP scaler, every RNG stream (after a gaussian draw, so python's and
    numpy's cached gaussians are set), metrics and config."""
    model = model or tiny(released_cfg)
    optimizer = build_optimizer(model, {'type': 'AdamW', 'kwargs': {'lr': 1e-3, 'weight_decay': 0.05}})
    scheduler = build_scheduler(optimizer, {'type': 'CosLR', 'kwargs': {'epochs': 4, 'initial_epochs': 1}}, 3)
    if step:
        model(clouds())['loss'].backward()
        optimizer.step()
        scheduler.step()
    random.gauss(0, 1), np.random.randn()
    scaler = torch.amp.GradScaler('cpu', init_scale=2.0 ** 10)
    save_checkpoint(make_checkpoint(model, optimizer, scheduler, scaler, epoch=3, metrics={'svm_acc': np.float64(81.5)},
                                    best_metrics={'svm_acc': 82.0, 'epoch': 2}, config={'model': released_cfg()}),
                    path)
    return model, optimizer, scheduler, scaler


# --------------------------------------------------------------------- 1. plain torch.load

def test_our_checkpoint_opens_with_plain_weights_only_torch_load(tmp_path):
    model, *_ = our_checkpoint(tmp_path / 'ckpt-last.pth')
    ckpt = torch.load(tmp_path / 'ckpt-last.pth', weights_only=True)  # no allow-listed globals
    assert ckpt['epoch'] == 3 and ckpt['metrics'] == {'svm_acc': 81.5}
    torch.testing.assert_close(ckpt['base_model'], model.state_dict(), rtol=0, atol=0)
    assert isinstance(ckpt['rng']['numpy']['key'], torch.Tensor) and isinstance(ckpt['rng']['python']['state'],
                                                                               torch.Tensor)


def test_resume_from_a_weights_only_checkpoint_restores_every_stream(tmp_path):
    our_checkpoint(tmp_path / 'c.pth', step=False)
    expected = (random.random(), random.gauss(0, 1), np.random.rand(), np.random.randn(), torch.rand(2))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    model = tiny(released_cfg, seed=1)
    optimizer = build_optimizer(model, {'type': 'AdamW', 'kwargs': {'lr': 1e-3}})
    resume_state(tmp_path / 'c.pth', model, optimizer)
    got = (random.random(), random.gauss(0, 1), np.random.rand(), np.random.randn(), torch.rand(2))
    assert got[:4] == expected[:4]
    torch.testing.assert_close(got[4], expected[4], rtol=0, atol=0)


def test_a_checkpoint_with_the_old_numpy_rng_tuples_still_resumes(tmp_path):
    model = tiny(released_cfg)
    ckpt = make_checkpoint(model, epoch=1)
    ckpt['rng']['python'], ckpt['rng']['numpy'] = random.getstate(), np.random.get_state()
    expected = (random.random(), np.random.rand())
    save_checkpoint(ckpt, tmp_path / 'old.pth')
    random.seed(1), np.random.seed(1)
    resume_state(tmp_path / 'old.pth', tiny(released_cfg), None)
    assert (random.random(), np.random.rand()) == expected


# ------------------------------------------------------------- 4. the one rename table

def point_mae_named(model):
    """Our Point_MAE state dict as Point-MAE's DataParallel-wrapped model saves it."""
    return {'module.' + k.replace('reconstruction_loss.head.', 'increase_dim.0.'): v
            for k, v in model.state_dict().items()}


def released_named(model):
    """Our released-objective state dict as the released MaskClu saves it: cut_pool.{Wm, Ws, W1, W2,
    norm} and the top-level norm (ours with ``decoder_extra_norm``; modules without a counterpart
    here, cut_pool.norm, get random values)."""
    names = {'cluster_head.graph.w_m.': 'cut_pool.Wm.', 'cluster_head.graph.w_s.': 'cut_pool.Ws.',
             'cluster_head.mlp.0.': 'cut_pool.W1.0.', 'cluster_head.mlp.1.': 'cut_pool.W1.1.',
             'cluster_head.mlp.3.': 'cut_pool.W1.3.', 'cluster_head.mlp.5.': 'cut_pool.W2.'}
    out = {}
    for key, value in model.state_dict().items():
        theirs = next((new + key[len(old):] for old, new in names.items() if key.startswith(old)), key)
        out[theirs] = value
    width = model.MAE_encoder.norm.weight.shape[0]
    for name in ('norm', 'cut_pool.norm'):
        if f'{name}.weight' not in out:
            out[f'{name}.weight'], out[f'{name}.bias'] = torch.rand(width), torch.rand(width)
    return out


def test_a_point_mae_named_checkpoint_loads_every_tensor_into_our_point_mae(tmp_path):
    source = tiny(pointmae_cfg, seed=1)
    state = point_mae_named(source)
    assert {k[len('module.'):] for k in state} == (point_mae_checkpoint_keys(2, 1)
                                                   | {'increase_dim.0.weight', 'increase_dim.0.bias'})
    torch.save({'base_model': state, 'epoch': 299, 'metrics': {'acc': np.float64(0.0)}}, tmp_path / 'pm.pth')
    model = tiny(pointmae_cfg)
    report = load_pretrained(model, tmp_path / 'pm.pth', logger=LOG)
    assert report.missing == report.unexpected == report.mismatched == []
    torch.testing.assert_close(model.state_dict(), source.state_dict(), rtol=0, atol=0)


def test_a_released_maskclu_checkpoint_loads_its_cluster_head(tmp_path):
    source = tiny(released_cfg, seed=1)
    torch.save({'base_model': {f'module.{k}': v for k, v in released_named(source).items()}}, tmp_path / 'rel.pth')
    model = tiny(released_cfg)
    report = load_pretrained(model, tmp_path / 'rel.pth', logger=LOG)
    assert report.missing == report.mismatched == []
    assert report.unexpected == ['cut_pool.norm.weight', 'cut_pool.norm.bias']
    torch.testing.assert_close(model.state_dict(), source.state_dict(), rtol=0, atol=0)  # norm.* included


def test_the_cluster_head_mapping_keeps_the_released_function():
    """Our graph head on the released weights computes the released logits
    ``W2(relu(W1(relu((A + I) Wm h) + Ws h))) / temp`` for the same adjacency A."""
    from models.losses.assign import knn_affinity
    model = tiny(released_cfg).double()
    theirs = {k: v.double() for k, v in released_named(model).items()}
    h, x = torch.randn(2, 16, 32, dtype=torch.float64), torch.rand(2, 16, 3, dtype=torch.float64)
    head = model.cluster_head
    adj = knn_affinity(x, h, head.graph.k)

    def lin(name, z):
        return torch.nn.functional.linear(z, theirs[f'{name}.weight'], theirs.get(f'{name}.bias'))

    out = torch.relu((adj + torch.eye(16, dtype=torch.float64)) @ lin('cut_pool.Wm', h)) + lin('cut_pool.Ws', h)
    w1 = lin('cut_pool.W1.3', torch.relu(torch.nn.functional.layer_norm(
        lin('cut_pool.W1.0', out), (out.shape[-1],), theirs['cut_pool.W1.1.weight'], theirs['cut_pool.W1.1.bias'])))
    expected = lin('cut_pool.W2', torch.relu(w1)) / head.tau
    torch.testing.assert_close(head(h, x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('cfg_fn', [pointmae_cfg, released_cfg, maskclu_cfg])
def test_the_rename_table_round_trips(cfg_fn):
    state = tiny(cfg_fn).state_dict()
    assert to_our_names(to_foreign_names(state)).keys() == state.keys()
    neutral = {pointmae_cfg: [], released_cfg: ['cut_pool.norm.weight', 'cut_pool.norm.bias'],  # has its norm
               maskclu_cfg: ['norm.weight', 'norm.bias', 'cut_pool.norm.weight', 'cut_pool.norm.bias']}
    assert list(to_our_names(export_state_dict(state))) == list(state) + neutral[cfg_fn]


def test_export_writes_point_mae_and_released_names_that_load_plainly(tmp_path):
    for cfg_fn, expected in ((pointmae_cfg, point_mae_checkpoint_keys(2, 1) | {'increase_dim.0.weight',
                                                                                 'increase_dim.0.bias'}),
                             (released_cfg, set(released_named(tiny(released_cfg))))):
        model, *_ = our_checkpoint(tmp_path / 'ours.pth', tiny(cfg_fn), step=False)
        export_checkpoint(tmp_path / 'ours.pth', tmp_path / 'theirs.pth')
        ckpt = torch.load(tmp_path / 'theirs.pth', weights_only=True)
        assert set(ckpt) == {'base_model', 'epoch', 'metrics', 'best_metrics'}
        assert set(ckpt['base_model']) == expected
        assert ckpt['epoch'] == 2 and ckpt['best_metrics'] == {'acc': 82.0}
        back = tiny(cfg_fn, seed=5)
        load_pretrained(back, tmp_path / 'theirs.pth', logger=LOG)
        torch.testing.assert_close(back.state_dict(), model.state_dict(), rtol=0, atol=0)


# ------------------------------------------------- 2. backbone fit, channel detection

def fine_tuned_point_mae(path, **cfg):
    """A checkpoint of Point-MAE's fine-tuned PointTransformer (finetune_modelnet.yaml: 3 channels)."""
    source = build_model({**classifier_cfg(point_channels=3), **cfg}).eval()
    torch.save({'base_model': {f'module.{k}': v for k, v in source.state_dict().items()}, 'epoch': 10}, path)
    return source


def test_a_3_channel_checkpoint_stops_a_4_channel_model_naming_the_key(tmp_path):
    fine_tuned_point_mae(tmp_path / 'ft.pth')
    model = build_model(classifier_cfg())
    with pytest.raises(CheckpointError, match=r'ft\.pth does not fit .*set model\.point_channels: 3'):
        load_pretrained(model, tmp_path / 'ft.pth', logger=LOG)
    report = load_pretrained(model, tmp_path / 'ft.pth', logger=LOG, partial=True)
    assert [m.key for m in report.mismatched] == ['encoder.first_conv.0.weight']


def fine_tuned_point_mae_state():
    return build_model(classifier_cfg(point_channels=3)).state_dict()


@pytest.mark.parametrize('state_of, channels, cls_token', [
    (fine_tuned_point_mae_state, 3, True),
    (lambda: {f'module.{k}': v for k, v in tiny(pointmae_cfg).state_dict().items()}, 3, False),
    (lambda: released_named(tiny(released_cfg)), 4, True),
])
def test_backbone_config_reads_channels_width_depth_and_cls_token(state_of, channels, cls_token):
    assert backbone_config(state_of()) == {'point_channels': channels, 'encoder_dims': 32, 'trans_dim': 32,
                                           'depth': 2, 'cls_token': cls_token}


def test_open_keys_take_the_checkpoints_values_and_the_model_then_fits(tmp_path):
    source = fine_tuned_point_mae(tmp_path / 'ft.pth')
    state = load_checkpoint(tmp_path / 'ft.pth')['base_model']
    cfg, filled = fill_open_keys({**classifier_cfg(), 'point_channels': 'auto', 'depth': 'auto'}, state)
    assert filled == {'point_channels': 3, 'depth': 2} and cfg['point_channels'] == 3
    model = build_model(cfg).eval()
    report = load_pretrained(model, tmp_path / 'ft.pth', logger=LOG)
    assert report.mismatched == report.missing == []
    points = clouds()
    torch.testing.assert_close(model(points), source(points), rtol=0, atol=0)
    with pytest.raises(ConfigError, match=r'model\.point_channels: auto .*set it explicitly'):
        fill_open_keys({'point_channels': 'auto'}, {'cls_head_finetune.0.weight': torch.zeros(2, 2)})


# ------------------------------------------------------------------- 5. the load report

def test_report_names_small_groups_and_calls_a_rebuilt_module_different(tmp_path, caplog):
    """A Point-MAE pre-training checkpoint into our MaskClu: no cls token there, and an MLP
    decoder position embedding where ours is sinusoidal."""
    torch.save({'base_model': point_mae_named(tiny(pointmae_cfg))}, tmp_path / 'pm.pth')
    logger = logging.getLogger('tests.interop.report')
    with caplog.at_level(logging.INFO, logger='tests.interop.report'):
        report = load_pretrained(tiny(lambda: maskclu_cfg(point_channels=3)), tmp_path / 'pm.pth', logger=logger)
    lines = report.lines()
    missing = next(line for line in lines if line.startswith('missing'))
    assert 'MAE_encoder.cls_token, MAE_encoder.cls_pos' in missing and 'MAE_encoder.*' not in missing
    assert ('different module, left as initialised: decoder_pos_embed.* (model: 1.weight, 1.bias, 3.weight, 3.bias; '
            'checkpoint: 0.weight, 0.bias, 2.weight, 2.bias)') in lines
    assert 'decoder_pos_embed' not in missing and 'unused checkpoint entries: increase_dim.0.weight, ' \
        'increase_dim.0.bias' in lines
    assert 'different module' in caplog.text


def test_report_counts_large_groups():
    report = LoadReport('x.pth', loaded=[], missing=[f'cluster_head.{i}.weight' for i in range(8)],
                        unexpected=['cluster_head.w_m', 'cluster_head.w_s'], mismatched=[], total=8)
    assert report.lines()[1:] == ['different module, left as initialised: cluster_head.* (model: 8 keys; checkpoint: '
                                  'w_m, w_s)']


def test_export_command(tmp_path, capsys):
    from tools.export_checkpoint import main
    our_checkpoint(tmp_path / 'ours.pth', tiny(released_cfg), step=False)
    main([str(tmp_path / 'ours.pth'), str(tmp_path / 'theirs.pth')])
    out = capsys.readouterr().out
    assert 'theirs.pth' in out and "'point_channels': 4" in out and 'cut_pool' in out
    (tmp_path / 'bad.pth').write_bytes(b'')
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path / 'bad.pth'), str(tmp_path / 'x.pth')])
    assert exit_.value.code == 2 and 'bad.pth is empty' in capsys.readouterr().err
