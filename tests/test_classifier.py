"""The classifier's three protocols (full / MLP-Linear / MLP-3): heads, freezing, open keys."""
import pytest
import torch

from models import build_model
from test_models import classifier_cfg, clouds
from tools.optim import build_optimizer
from utils.config import ConfigError

ADAMW = {'type': 'AdamW', 'kwargs': {'lr': 1e-2, 'weight_decay': 0.05}}


def backbone_state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items() if not k.startswith('cls_head_finetune.')}


def one_step(model):
    optimizer = build_optimizer(model, ADAMW)
    model.train()
    logits = model(clouds(b=6))
    torch.nn.functional.cross_entropy(logits, torch.arange(6) % 5).backward()
    optimizer.step()
    return optimizer


@pytest.mark.parametrize('kind, head_layers', [('full', 9), ('linear', 1), ('mlp3', 9)])
def test_protocol_heads(kind, head_layers):
    model = build_model({**classifier_cfg(), 'type': kind})
    assert len(model.cls_head_finetune) == head_layers
    assert model(clouds()).shape == (4, 5)
    assert model.cls_head_finetune[-1].out_features == 5


@pytest.mark.parametrize('kind', ['linear', 'mlp3', 'full'])
def test_frozen_protocols_leave_the_encoder_bit_identical(kind):
    torch.manual_seed(0)
    model = build_model({**classifier_cfg(), 'type': kind, 'drop_path_rate': 0.1})
    before = backbone_state(model)
    head_before = model.cls_head_finetune[0].weight.detach().clone()
    one_step(model)
    after = backbone_state(model)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    head = list(model.cls_head_finetune.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head if p.dim() > 1)
    assert not torch.equal(head_before, model.cls_head_finetune[0].weight)
    if kind == 'full':  # the same step does move a trainable encoder (weights and BatchNorm statistics)
        assert 'encoder.first_conv.1.running_mean' in changed and 'blocks.blocks.0.attn.qkv.weight' in changed
    else:
        assert changed == []
        assert all(not p.requires_grad and p.grad is None for p in model.backbone_parameters())
        assert not model.blocks.training and not model.encoder.training and model.cls_head_finetune.training


def test_frozen_backbone_optimizer_holds_only_the_head():
    model = build_model({**classifier_cfg(), 'type': 'linear'})
    optimizer = build_optimizer(model, ADAMW)
    held = {id(p) for group in optimizer.param_groups for p in group['params']}
    assert held == {id(p) for p in model.parameters() if p.requires_grad} == \
        {id(p) for p in model.cls_head_finetune.parameters()}


def test_open_keys_must_be_filled_before_building():
    cfg = {**classifier_cfg(), 'point_channels': 'auto'}
    from models import check_model_config
    assert check_model_config(cfg)['point_channels'] == 'auto'
    with pytest.raises(ConfigError, match=r'model\.point_channels: auto is read from a checkpoint'):
        build_model(cfg)
    with pytest.raises(ConfigError, match=r'model\.cls_dim'):
        build_model({**classifier_cfg(), 'cls_dim': 1})


@pytest.mark.parametrize('value, message', [('outo', r"model\.depth: expected an integer or auto .*'outo'"),
                                            (1.5, r'model\.depth: expected an integer or a string')])
def test_readable_keys_take_an_integer_or_auto(value, message):
    from models import check_model_config
    with pytest.raises(ConfigError, match=message):
        check_model_config({**classifier_cfg(), 'depth': value})
