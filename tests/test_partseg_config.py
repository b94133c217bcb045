"""cfgs/partseg.yaml and cfgs/demo/partseg.yaml: their keys are what trainpartseg.py accepts,
their model sections build, and the demo model takes the demo pre-training encoder."""
import logging
import os

import pytest
import torch

import trainpartseg
from models import build_model
from tools.classifier_checkpoint import model_config_for
from utils.config import ConfigError, load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FULL, DEMO = os.path.join(ROOT, 'cfgs', 'partseg.yaml'), os.path.join(ROOT, 'cfgs', 'demo', 'partseg.yaml')


def test_full_config_is_the_protocol(tmp_path):
    args = trainpartseg.parse_args(['--config', FULL, '--root', str(tmp_path)])
    assert (args.learning_rate, args.weight_decay, args.epoch, args.warmup_epoch, args.batch_size, args.npoint) == \
        (2e-4, 0.05, 300, 10, 16, 2048)
    model = args.model
    assert model['NAME'] == 'PartSegmentation' and model['num_group'] == 128 and model['feature_blocks'] == [4, 8, 12]
    assert (model['trans_dim'], model['depth'], model['propagation_dims'], model['head_dims']) == \
        (384, 12, [1536, 1024], [512, 256])
    assert args.dataset == {'NAME': 'ShapeNetPart', 'DATA_PATH': str(tmp_path), 'LAYOUT': 'auto'}


def test_demo_config_points_at_the_demo_data_and_flags_win(tmp_path):
    parser = trainpartseg.build_parser()
    parser.set_defaults(**trainpartseg.config_defaults(parser, DEMO))
    args = trainpartseg.resolve_sections(parser.parse_args([]))
    assert args.root == 'data/demo/shapenetcore_partanno_segmentation_benchmark_v0_normal'
    assert args.dataset['DATA_PATH'] == args.root and args.npoint == 1024 and args.learning_rate == 2e-4
    assert args.model['trans_dim'] == 192 and args.model['feature_blocks'] == [2, 4, 6]
    args = trainpartseg.parse_args(['--config', DEMO, '--root', str(tmp_path), '--epoch', '3', '--warmup_epoch', '1'])
    assert args.epoch == 3 and args.dataset['DATA_PATH'] == str(tmp_path)


def test_demo_model_runs_and_takes_the_demo_pretraining_encoder():
    seg_cfg = trainpartseg.model_section(load_config(DEMO).to_dict()['model'])
    pre_cfg = load_config(os.path.join(ROOT, 'cfgs', 'demo', 'pretrain.yaml')).to_dict()['model']
    torch.manual_seed(0)
    ckpt = {'base_model': build_model(pre_cfg).state_dict()}
    assert seg_cfg['point_channels'] == 'auto'
    model = build_model(model_config_for(seg_cfg, ckpt, 'the demo checkpoint', logging.getLogger('tests'))).eval()
    assert model.config['point_channels'] == pre_cfg['point_channels']
    report = model.load_encoder(ckpt, logging.getLogger('tests'))
    assert report.mismatched == [] and report.unexpected == ['cls_token', 'cls_pos']
    assert {k.split('.')[0] for k in report.loaded} == {'encoder', 'pos_embed', 'blocks', 'norm'}
    with torch.no_grad():
        out = model(torch.rand(2, 1024, 3) - 0.5, torch.tensor([0, 15]))
    assert out.shape == (2, 1024, 50)


@pytest.mark.parametrize('text, message', [
    ('model: {NAME: PartSegmentation, depht: 12}\n', "did you mean 'depth'"),
    ('model: {NAME: PointTransformer}\n', 'PartSegmentation model section'),
    ('dataset: {NAME: ModelNet}\n', 'ShapeNetPart entry'),
    ('dataset: {NAME: ShapeNetPart, LAYOT: h5}\n', "did you mean 'LAYOUT'"),
])
def test_bad_sections_are_one_line_errors(tmp_path, capsys, text, message):
    cfg = tmp_path / 'seg.yaml'
    cfg.write_text(text)
    with pytest.raises(SystemExit) as exit_info:
        trainpartseg.parse_args(['--config', str(cfg), '--root', str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and str(cfg) in err[0]


def test_auto_backbone_keys_come_from_a_point_mae_checkpoint_or_default_from_scratch():
    """The demo config leaves point_channels ``auto``: a Point-MAE encoder (3 channels) sets 3, no
    checkpoint sets the model default 4, and building with a key still ``auto`` names it."""
    seg_cfg = trainpartseg.model_section(load_config(DEMO).to_dict()['model'])
    pre_cfg = {**load_config(os.path.join(ROOT, 'cfgs', 'demo', 'pretrain_pointmae.yaml')).to_dict()['model']}
    ckpt = {'base_model': build_model(pre_cfg).state_dict()}
    log = logging.getLogger('tests')
    from_pointmae = build_model(model_config_for(seg_cfg, ckpt, 'pointmae.pth', log))
    assert from_pointmae.config['point_channels'] == 3
    report = from_pointmae.load_encoder(ckpt, log)
    assert report.mismatched == [] and report.missing and not any(k.startswith('encoder.') for k in report.missing)
    assert build_model(model_config_for(seg_cfg, None, None, log)).config['point_channels'] == 4
    with pytest.raises(ConfigError, match='model.point_channels: auto is read from a checkpoint'):
        build_model(seg_cfg)
    with pytest.raises(ConfigError, match=r"model.depth: expected an integer or auto.*'twelve'"):
        build_model({**seg_cfg, 'point_channels': 3, 'depth': 'twelve'})
