"""No silently ignored or half-loaded weights: ``--ckpts`` in pre-training is refused (pointing at
``--start_ckpts``); ``--start_ckpts`` with mismatched shapes stops unless ``--partial_load``, and
the report says how many tensors loaded."""
import os

import pytest
import torch

import main
from conftest import tiny_model_config, torch_settings
from models import build_model
from utils.checkpoint import CheckpointError, load_pretrained, make_checkpoint, save_checkpoint
from utils.parser import build_parser, contradiction


def test_ckpts_in_pretraining_is_refused(tmp_path):
    ckpt = tmp_path / 'model.pth'
    ckpt.write_bytes(b'x')
    cfg = tmp_path / 'c.yaml'
    cfg.write_text('max_epoch: 1\n')
    args = build_parser().parse_args(['--config', str(cfg), '--ckpts', str(ckpt)])
    assert 'pre-training starts from a checkpoint with --start_ckpts' in contradiction(args)
    args = build_parser().parse_args(['--config', str(cfg), '--partial_load'])
    assert contradiction(args) == '--partial_load applies to --start_ckpts only'


@pytest.fixture
def other_head_ckpt(tmp_path):
    """A tiny MaskClu checkpoint whose assign head has P=4 clusters (the tiny config: 8)."""
    torch.manual_seed(1)
    model = build_model(tiny_model_config(losses={'assign': {'P': 4}}))
    path = str(tmp_path / 'p4.pth')
    save_checkpoint(make_checkpoint(model, epoch=1), path)
    return path


def test_head_mismatch_stops_a_strict_load_and_partial_loads_the_rest(other_head_ckpt):
    torch.manual_seed(0)
    model = build_model(tiny_model_config())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as err:
        load_pretrained(model, other_head_ckpt, strict_shapes=True, opt_in='--partial_load')
    message = str(err.value)
    assert 'does not fit the model: cluster_head.' in message and 'nothing was loaded' in message
    assert '--partial_load' in message and f'/{len(before)} tensors that fit' in message
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    report = load_pretrained(model, other_head_ckpt, strict_shapes=True, partial=True)
    assert report.mismatched and all(m.key.startswith('cluster_head.') for m in report.mismatched)
    assert len(report.loaded) == len(before) - len(report.mismatched)
    assert load_pretrained(build_model(tiny_model_config()), other_head_ckpt).mismatched  # heads: reported only


def test_main_start_ckpts_mismatch_stops_unless_partial_load(other_head_ckpt, tiny_config, tmp_path):
    config, exp = tiny_config(max_epoch=1), str(tmp_path / 'exps')
    argv = ['--config', config, '--exp', exp, '--device', 'cpu', '--num_workers', '0', '--start_ckpts', other_head_ckpt]
    with torch_settings(), pytest.raises(SystemExit) as err:
        main.main(argv + ['--exp_name', 'strict'])
    assert str(err.value).startswith(f'main.py: error: {other_head_ckpt} does not fit the model: cluster_head.')
    assert not os.path.exists(os.path.join(exp, 'pretrain_tiny', 'cfgs', 'strict', 'ckpt-last.pth'))
    with torch_settings():
        main.main(argv + ['--exp_name', 'partial', '--partial_load'])
    with open(os.path.join(exp, 'pretrain_tiny', 'cfgs', 'partial', 'log.txt')) as f:
        log = f.read()
    assert f'model tensors from {other_head_ckpt}' in log and 'shape mismatch, not loaded: cluster_head.' in log
