"""Checkpoints into the classifier: Point-MAE / released / our names, the head dropped on fine-tuning,
and ``--test`` refusing what it cannot evaluate with one line."""
import logging

import pytest
import torch

from models import build_model
from test_interop_checkpoints import point_mae_named, released_named, tiny
from test_models import classifier_cfg, clouds, maskclu_cfg, pointmae_cfg, released_cfg
from tools.classifier_checkpoint import (check_test_checkpoint, head_of, load_for_finetune, load_for_test,
                                         model_config_for, model_state)
from utils.checkpoint import CheckpointError, load_checkpoint

LOG = logging.getLogger('tests.classifier_checkpoint')
HEAD3 = {f'cls_head_finetune.{i}.{p}' for i in (0, 4, 8) for p in ('weight', 'bias')} | \
    {f'cls_head_finetune.{i}.{p}' for i in (1, 5) for p in ('weight', 'bias', 'running_mean', 'running_var',
                                                             'num_batches_tracked')}


def saved(tmp_path, name, state):
    path = tmp_path / name
    torch.save({'base_model': state, 'epoch': 300}, path)
    return str(path), load_checkpoint(path)


def test_point_mae_pretraining_checkpoint_gives_exactly_the_expected_keys(tmp_path):
    source = tiny(pointmae_cfg)
    path, ckpt = saved(tmp_path, 'pointmae.pth', point_mae_named(source))
    model = build_model(classifier_cfg(point_channels=3))
    report = load_for_finetune(model, ckpt, path, LOG)
    assert set(report.missing) == {'cls_token', 'cls_pos'} | HEAD3
    assert report.unexpected == [] and report.mismatched == []
    encoder = {k[len('MAE_encoder.'):]: v for k, v in source.state_dict().items() if k.startswith('MAE_encoder.')}
    assert set(report.loaded) == set(encoder)
    for k, v in encoder.items():
        torch.testing.assert_close(model.state_dict()[k], v, rtol=0, atol=0)


@pytest.mark.parametrize('cfg_fn, named', [(released_cfg, released_named), (maskclu_cfg, lambda m: m.state_dict())])
def test_maskclu_checkpoints_load_the_whole_encoder_with_cls_token(tmp_path, cfg_fn, named):
    path, ckpt = saved(tmp_path, 'pre.pth', named(tiny(cfg_fn)))
    report = load_for_finetune(build_model(classifier_cfg()), ckpt, path, LOG)
    assert set(report.missing) == HEAD3 and report.unexpected == [] and report.mismatched == []


def test_open_keys_are_read_from_a_point_mae_checkpoint(tmp_path):
    path, ckpt = saved(tmp_path, 'pointmae.pth', point_mae_named(tiny(pointmae_cfg)))
    cfg = model_config_for({**classifier_cfg(), 'point_channels': 'auto', 'depth': 'auto'}, ckpt, path, LOG)
    assert (cfg['point_channels'], cfg['depth']) == (3, 2)


def fine_tuned(tmp_path, name='ft.pth', **cfg):
    model = build_model({**classifier_cfg(), **cfg}).eval()
    path, ckpt = saved(tmp_path, name, {f'module.{k}': v for k, v in model.state_dict().items()})
    return model, path, ckpt


def test_finetuning_a_finetuned_checkpoint_says_the_head_is_dropped(tmp_path, caplog):
    source, path, ckpt = fine_tuned(tmp_path, cls_dim=7)
    model = build_model(classifier_cfg())
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        report = load_for_finetune(model, ckpt, path, LOG)
    assert f'{path} is a fine-tuned classifier: its head (cls_head_finetune.*, 7 classes, full or mlp3) is ' \
           f'dropped' in caplog.text
    assert set(report.missing) == HEAD3 and report.unexpected == [] and report.mismatched == []
    torch.testing.assert_close(model.blocks.state_dict(), source.blocks.state_dict(), rtol=0, atol=0)


def test_test_loads_a_point_mae_finetuned_classifier_whole(tmp_path):
    source, path, ckpt = fine_tuned(tmp_path)
    model = build_model(classifier_cfg()).eval()
    report = load_for_test(model, ckpt, path, LOG)
    assert report.missing == report.unexpected == report.mismatched == []
    points = clouds()
    torch.testing.assert_close(model(points), source(points), rtol=0, atol=0)


def test_test_refuses_a_pretraining_checkpoint_in_one_line(tmp_path):
    path, ckpt = saved(tmp_path, 'pre.pth', tiny(maskclu_cfg).state_dict())
    with pytest.raises(CheckpointError) as err:
        load_for_test(build_model(classifier_cfg()), ckpt, path, LOG)
    message = str(err.value)
    assert '\n' not in message and 'a pre-training checkpoint' in message and 'expects a fine-tuned' in message
    assert path in message


def test_test_refuses_a_head_of_another_class_count_or_kind(tmp_path):
    _, path, ckpt = fine_tuned(tmp_path, cls_dim=7)
    with pytest.raises(CheckpointError, match=r'its head has 7 classes, the config expects model.cls_dim=5'):
        check_test_checkpoint(ckpt, path, build_model(classifier_cfg()).config)
    _, path, ckpt = fine_tuned(tmp_path, 'lin.pth', type='linear')
    assert head_of(model_state(ckpt, path)) == (5, 1)
    with pytest.raises(CheckpointError, match=r'1 Linear layer\(s\) \(linear\), the config.s model.type=full'):
        check_test_checkpoint(ckpt, path, build_model(classifier_cfg()).config)
    check_test_checkpoint(ckpt, path, build_model({**classifier_cfg(), 'type': 'linear'}).config)
