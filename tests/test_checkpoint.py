"""Checkpoints: round trip and resume, atomic save, safe loading, prefix handling, load report."""
import argparse
import logging
import os
import random

import numpy as np
import pytest
import torch
from torch import nn

from utils import checkpoint as ckpt_mod
from utils.checkpoint import (CHECKPOINT_KEYS, CheckpointError, encoder_state_dict, extract_state_dict,
                              load_checkpoint, load_pretrained, make_checkpoint, resume_state, save_checkpoint,
                              strip_prefixes)
from utils.config import ConfigDict
from utils.load_report import group_keys


class Encoder(nn.Module):
    """Point-MAE encoder names: encoder.first_conv, pos_embed, blocks.blocks.i, norm, cls_token."""

    def __init__(self, channels=4, width=8):
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.first_conv = nn.Sequential(nn.Conv1d(channels, 16, 1), nn.BatchNorm1d(16), nn.ReLU(),
                                                nn.Conv1d(16, width, 1))
        self.pos_embed = nn.Sequential(nn.Linear(3, 16), nn.GELU(), nn.Linear(16, width))
        self.blocks = nn.Module()
        self.blocks.blocks = nn.ModuleList([nn.Linear(width, width) for _ in range(2)])
        self.norm = nn.LayerNorm(width)
        self.cls_token = nn.Parameter(torch.randn(1, 1, width))


class Pretrain(nn.Module):
    """Pre-training names: MAE_encoder.*, mask_token, MAE_decoder.*."""

    def __init__(self, channels=4, width=8):
        super().__init__()
        self.MAE_encoder = Encoder(channels, width)
        self.mask_token = nn.Parameter(torch.randn(1, 1, width))
        self.MAE_decoder = nn.ModuleList([nn.Linear(width, width) for _ in range(2)])


class Classifier(Encoder):
    """Downstream names: the encoder's without prefix, plus cls_head_finetune.*."""

    def __init__(self, channels=4, width=8, classes=5):
        super().__init__(channels, width)
        self.cls_head_finetune = nn.Sequential(nn.Linear(width, 16), nn.ReLU(), nn.Linear(16, classes))

    def forward(self, x):
        return self.cls_head_finetune(self.norm(x))


def make_run(seed):
    """A model, optimizer, warmup+cosine scheduler and CPU grad scaler after a few steps."""
    torch.manual_seed(seed)
    model = Classifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.05)
    scheduler = torch.optim.lr_scheduler.SequentialLR(optimizer, [
        torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=2),
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10)], milestones=[2])
    scaler = torch.amp.GradScaler('cpu', init_scale=2.0 ** 10)
    for _ in range(3):
        train_step(model, optimizer, scaler)
        scheduler.step()
    scaler.update(new_scale=123.0)
    return model, optimizer, scheduler, scaler


def train_step(model, optimizer, scaler):
    loss = model(torch.randn(4, 8)).square().mean()
    optimizer.zero_grad()
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def draw_all_rngs():
    return random.random(), np.random.rand(), torch.rand(3)


def test_round_trip_restores_model_optimizer_scheduler_scaler_rng(tmp_path):
    model, optimizer, scheduler, scaler = make_run(seed=0)
    config = ConfigDict({'model': {'NAME': 'Classifier', 'cls_dim': 5}, 'max_epoch': 3})
    state = make_checkpoint(model, optimizer, scheduler, scaler, epoch=7, metrics={'acc': torch.tensor(91.5)},
                            best_metrics={'acc': np.float64(92.0)}, config=config)
    assert set(state) == set(CHECKPOINT_KEYS)
    save_checkpoint(state, tmp_path / 'ckpt-last.pth')
    expected_draws = draw_all_rngs()

    resumed = make_run(seed=1)
    draw_all_rngs()
    start_epoch, metrics, best = resume_state(tmp_path / 'ckpt-last.pth', *resumed)

    assert (start_epoch, metrics, best) == (7, {'acc': 91.5}, {'acc': 92.0})
    torch.testing.assert_close(resumed[0].state_dict(), model.state_dict(), rtol=0, atol=0)
    torch.testing.assert_close(resumed[1].state_dict(), optimizer.state_dict(), rtol=0, atol=0)
    assert resumed[2].state_dict()['last_epoch'] == 3
    assert resumed[2].get_last_lr() == scheduler.get_last_lr()
    assert resumed[3].get_scale() == 123.0
    got = draw_all_rngs()
    assert got[:2] == expected_draws[:2]
    torch.testing.assert_close(got[2], expected_draws[2], rtol=0, atol=0)


def test_resume_continues_training_identically(tmp_path):
    run = make_run(seed=0)
    save_checkpoint(make_checkpoint(*run, epoch=0), tmp_path / 'c.pth')
    resumed = make_run(seed=1)
    resume_state(tmp_path / 'c.pth', *resumed)
    for model, optimizer, scheduler, scaler in (run, resumed):
        torch.manual_seed(5)
        train_step(model, optimizer, scaler)
        scheduler.step()
    torch.testing.assert_close(resumed[0].state_dict(), run[0].state_dict(), rtol=0, atol=0)
    assert resumed[2].get_last_lr() == run[2].get_last_lr()


@pytest.mark.filterwarnings('ignore::DeprecationWarning')  # raised inside torch.compile's import
def test_checkpoint_config_is_plain_and_model_unwrapped():
    model = Classifier()
    wrapped = nn.DataParallel(torch.compile(model))
    state = make_checkpoint(wrapped, epoch=0, config=ConfigDict({'a': {'b': [1, {'c': 2}]}}))
    assert list(state['base_model']) == list(model.state_dict())
    assert type(state['config']) is dict and type(state['config']['a']) is dict
    assert state['config'] == {'a': {'b': [1, {'c': 2}]}}
    with pytest.raises(TypeError, match=r'config\.x'):
        make_checkpoint(model, epoch=0, config={'x': object()})


@pytest.mark.parametrize('error', [RuntimeError('disk full'), KeyboardInterrupt()])
def test_failed_save_keeps_previous_file_and_removes_temp(tmp_path, monkeypatch, error):
    path = tmp_path / 'ckpt-last.pth'
    save_checkpoint({'epoch': 1, 'w': torch.arange(4.0)}, path)

    def partial_save(obj, f, *args, **kwargs):
        f.write(b'PK\x03\x04partial')
        raise error

    monkeypatch.setattr(torch, 'save', partial_save)
    with pytest.raises(type(error)):
        save_checkpoint({'epoch': 2, 'w': torch.zeros(4)}, path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ['ckpt-last.pth']
    loaded = load_checkpoint(path)
    assert loaded['epoch'] == 1
    torch.testing.assert_close(loaded['w'], torch.arange(4.0), rtol=0, atol=0)


def test_save_overwrites_and_creates_folder(tmp_path):
    path = tmp_path / 'new' / 'ckpt.pth'
    save_checkpoint({'epoch': 1}, path)
    save_checkpoint({'epoch': 2}, path)
    assert os.listdir(path.parent) == ['ckpt.pth']
    assert load_checkpoint(path)['epoch'] == 2


@pytest.mark.parametrize('key, expected', [
    ('module.blocks.0.weight', 'blocks.0.weight'),
    ('MAE_encoder.norm.weight', 'norm.weight'),
    ('base_model.cls_token', 'cls_token'),
    ('transformer_q.encoder.first_conv.0.weight', 'encoder.first_conv.0.weight'),
    ('module.base_model.MAE_encoder.pos_embed.0.bias', 'pos_embed.0.bias'),
    ('_orig_mod.module.norm.bias', 'norm.bias'),
    ('MAE_decoder.blocks.0.weight', 'MAE_decoder.blocks.0.weight'),
])
def test_strip_prefixes(key, expected):
    assert list(strip_prefixes({key: torch.zeros(1)})) == [expected]


def test_strip_prefixes_rejects_collisions():
    with pytest.raises(CheckpointError, match="'module.w' and 'w'"):
        strip_prefixes({'module.w': torch.zeros(1), 'w': torch.zeros(1)})


def test_encoder_state_dict_drops_decoder_and_heads():
    pretrain = {f'module.{k}': v for k, v in Pretrain().state_dict().items()}
    assert list(encoder_state_dict(pretrain)) == list(Encoder().state_dict())
    point_bert = {'transformer_q.norm.weight': torch.ones(8), 'transformer_k.norm.weight': torch.ones(8),
                  'dvae.conv.weight': torch.ones(2)}
    assert list(encoder_state_dict(point_bert)) == ['norm.weight']
    finetuned = {f'module.{k}': v for k, v in Classifier().state_dict().items()}
    assert list(encoder_state_dict(finetuned)) == list(Classifier().state_dict())


def test_extract_state_dict_layouts():
    sd = {'w': torch.zeros(1)}
    assert extract_state_dict({'base_model': sd, 'epoch': 3}) == sd
    assert extract_state_dict({'model': sd}) == sd
    assert extract_state_dict({'state_dict': sd}) == sd
    assert extract_state_dict({'epoch': 3, 'model_state_dict': sd, 'optimizer_state_dict': {}}) == sd
    assert extract_state_dict(sd) == sd
    with pytest.raises(CheckpointError, match='x.pth holds no model state dict'):
        extract_state_dict({'epoch': 1}, source='x.pth')


def test_group_keys_names_small_groups_and_counts_large_ones():
    keys = ['cls_head_finetune.0.weight', 'cls_head_finetune.0.bias', 'cls_head_finetune.2.weight',
            'cls_head_finetune.2.bias', 'blocks.blocks.0.weight', 'blocks.blocks.1.weight', 'cls_token',
            'MAE_encoder.cls_token', 'MAE_encoder.cls_pos']
    assert group_keys(keys) == ['cls_head_finetune.* (4 keys)', 'blocks.blocks.0.weight, blocks.blocks.1.weight',
                                'cls_token', 'MAE_encoder.cls_token, MAE_encoder.cls_pos']


def point_mae_checkpoint(path, channels):
    """A foreign (Point-MAE style) pre-training checkpoint: DDP prefixes, numpy metric."""
    torch.manual_seed(3)
    sd = {f'module.{k}': v for k, v in Pretrain(channels).state_dict().items()}
    torch.save({'base_model': sd, 'epoch': 300, 'metrics': {'acc': np.float64(0.0)}}, path)
    return {k[len('module.MAE_encoder.'):]: v for k, v in sd.items() if k.startswith('module.MAE_encoder.')}


def test_backbone_shape_mismatch_stops_the_load_naming_the_config_key(tmp_path):
    point_mae_checkpoint(tmp_path / 'pointmae.pth', channels=3)
    model = Classifier(channels=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as err:
        load_pretrained(model, tmp_path / 'pointmae.pth')
    message = str(err.value)
    assert '\n' not in message and 'pointmae.pth' in message and 'set model.point_channels: 3' in message
    assert 'encoder.first_conv.0.weight: checkpoint (16, 3, 1) vs model (16, 4, 1)' in message
    torch.testing.assert_close(model.state_dict(), before, rtol=0, atol=0)  # nothing loaded


def test_head_shape_mismatch_is_reported_not_fatal():
    classifier = Classifier(classes=7)
    report = load_pretrained(classifier, {'base_model': Classifier(classes=5).state_dict()})
    assert [m.key for m in report.mismatched] == ['cls_head_finetune.2.weight', 'cls_head_finetune.2.bias']
    assert len(report.loaded) == len(classifier.state_dict()) - 2


def test_load_pretrained_reports_channel_mismatch_with_hint(tmp_path, caplog):
    encoder = point_mae_checkpoint(tmp_path / 'pointmae.pth', channels=3)
    model = Classifier(channels=4)
    before = model.encoder.first_conv[0].weight.detach().clone()
    with caplog.at_level(logging.INFO, logger='tests.checkpoint'):
        report = load_pretrained(model, tmp_path / 'pointmae.pth', logger=logging.getLogger('tests.checkpoint'),
                                 partial=True)

    assert [m.key for m in report.mismatched] == ['encoder.first_conv.0.weight']
    mismatch = report.mismatched[0]
    assert (mismatch.checkpoint, mismatch.model) == ((16, 3, 1), (16, 4, 1))
    assert 'set model.point_channels: 3' in mismatch.hint
    assert set(report.loaded) == set(encoder) - {'encoder.first_conv.0.weight'}
    assert report.unexpected == []
    assert group_keys(report.missing) == ['cls_head_finetune.* (4 keys)']
    torch.testing.assert_close(model.encoder.first_conv[0].weight, before, rtol=0, atol=0)
    torch.testing.assert_close(model.norm.weight, encoder['norm.weight'], rtol=0, atol=0)
    log = caplog.text
    assert 'cls_head_finetune.* (4 keys)' in log and 'model.point_channels: 3' in log
    assert f'from {tmp_path / "pointmae.pth"}' in log


def test_load_pretrained_user_hint_and_pretraining_model(tmp_path):
    point_mae_checkpoint(tmp_path / 'p.pth', channels=4)
    model = Pretrain(channels=4, width=8)
    report = load_pretrained(model, tmp_path / 'p.pth', logger=logging.getLogger('tests.checkpoint'))
    assert report.missing == report.unexpected == report.mismatched == []
    assert len(report.loaded) == len(model.state_dict())

    classifier = Classifier(classes=7)
    report = load_pretrained(classifier, {'base_model': Classifier(classes=5).state_dict()},
                             logger=logging.getLogger('tests.checkpoint'), hints={r'cls_head': 'custom {ckpt[0]}'})
    assert [m.hint for m in report.mismatched] == ['custom 5', 'custom 5']


def test_corrupt_truncated_and_missing_files_name_the_file(tmp_path):
    good = tmp_path / 'good.pth'
    save_checkpoint(make_checkpoint(Classifier(), epoch=0), good)
    data = good.read_bytes()
    cases = {'truncated.pth': data[:len(data) // 2], 'garbage.pth': b'not a checkpoint' * 8, 'empty.pth': b''}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError, match=str(tmp_path / name)):
            load_checkpoint(tmp_path / name)
    with pytest.raises(CheckpointError, match='missing.pth does not exist'):
        load_checkpoint(tmp_path / 'missing.pth')
    with pytest.raises(CheckpointError, match='truncated.pth'):
        load_pretrained(Classifier(), tmp_path / 'truncated.pth')


def test_unsafe_objects_are_refused_unless_trusted(tmp_path, monkeypatch):
    path = tmp_path / 'foreign.pth'
    torch.save({'model': {'w': torch.ones(2)}, 'args': argparse.Namespace(lr=1)}, path)
    with pytest.raises(CheckpointError, match=r'foreign\.pth holds objects .*argparse\.Namespace'):
        load_checkpoint(path)
    assert load_checkpoint(path, trusted=True)['args'].lr == 1
    monkeypatch.setenv(ckpt_mod.TRUST_ENV, '1')
    assert load_checkpoint(path)['args'].lr == 1


def test_checkpoint_saved_on_cuda_loads_on_cpu(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.serialization, 'location_tag', lambda storage: 'cuda:0')
    save_checkpoint(make_checkpoint(Classifier(), epoch=0), tmp_path / 'cuda.pth')
    monkeypatch.undo()
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match='CUDA'):
            torch.load(tmp_path / 'cuda.pth', weights_only=False)
    loaded = load_checkpoint(tmp_path / 'cuda.pth')
    assert all(v.device.type == 'cpu' for v in loaded['base_model'].values())
    assert load_pretrained(Classifier(), tmp_path / 'cuda.pth').mismatched == []


def test_resume_rejects_foreign_and_mismatching_checkpoints(tmp_path):
    point_mae_checkpoint(tmp_path / 'pointmae.pth', channels=4)
    model = Classifier()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(CheckpointError, match=r"pointmae\.pth cannot be resumed from: it lacks \['version'"):
        resume_state(tmp_path / 'pointmae.pth', model, optimizer)
    save_checkpoint(make_checkpoint(Classifier(classes=3), optimizer, epoch=0), tmp_path / 'other.pth')
    with pytest.raises(CheckpointError, match=r'other\.pth does not match the model'):
        resume_state(tmp_path / 'other.pth', model, optimizer)
