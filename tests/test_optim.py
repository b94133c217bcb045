"""Optimizer parameter groups and the per-step cosine schedule with warm-up."""
import math

import pytest
import torch

from tools.optim import build_optimizer, build_scheduler, param_groups
from utils.config import ConfigError


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)
        self.norm = torch.nn.LayerNorm(4)
        self.cls_token = torch.nn.Parameter(torch.zeros(1, 1, 4))
        self.cls_pos = torch.nn.Parameter(torch.zeros(1, 1, 4))


def test_no_decay_on_bias_norm_and_tokens():
    decay, rest = param_groups(Tiny(), 0.05)
    assert [p.shape for p in decay['params']] == [torch.Size([4, 4])]
    assert len(rest['params']) == 5 and rest['weight_decay'] == 0.0


def test_unknown_optimizer_and_kwarg_are_errors():
    with pytest.raises(ConfigError, match="unknown optimizer 'AdamX'"):
        build_optimizer(Tiny(), {'type': 'AdamX', 'kwargs': {}})
    with pytest.raises(ConfigError, match="unknown key 'learning_rate'"):
        build_optimizer(Tiny(), {'type': 'AdamW', 'kwargs': {'learning_rate': 1e-3}})


def test_schedule_warms_up_linearly_then_follows_cosine():
    opt = build_optimizer(Tiny(), {'type': 'AdamW', 'kwargs': {'lr': 1e-3, 'weight_decay': 0.05}})
    sched = build_scheduler(opt, {'type': 'CosLR', 'kwargs': {'epochs': 10, 'initial_epochs': 2}}, steps_per_epoch=5)
    lrs = [sched.get_last_lr()[0]]
    for _ in range(50):
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    assert lrs[0] == pytest.approx(1e-6)
    assert lrs[5] == pytest.approx(1e-6 + (1e-3 - 1e-6) * 0.5)
    assert lrs[10] == pytest.approx(1e-3)
    mid = 1e-6 + 0.5 * (1e-3 - 1e-6) * (1 + math.cos(math.pi * 0.5))
    assert lrs[30] == pytest.approx(mid)
    assert lrs[50] == pytest.approx(1e-6)
    assert all(b <= a + 1e-12 for a, b in zip(lrs[10:], lrs[11:]))


def test_scheduler_state_round_trip():
    opt = build_optimizer(Tiny(), {'type': 'AdamW', 'kwargs': {'lr': 1e-3}})
    sched = build_scheduler(opt, {'type': 'CosLR', 'kwargs': {'epochs': 4, 'initial_epochs': 1}}, steps_per_epoch=3)
    for _ in range(7):
        sched.step()
    opt2 = build_optimizer(Tiny(), {'type': 'AdamW', 'kwargs': {'lr': 1e-3}})
    sched2 = build_scheduler(opt2, {'type': 'CosLR', 'kwargs': {'epochs': 4, 'initial_epochs': 1}}, steps_per_epoch=3)
    sched2.load_state_dict(sched.state_dict())
    assert sched2.get_last_lr() == sched.get_last_lr()


@pytest.mark.parametrize('kwargs', [{'fused': False}, {'foreach': True}])
def test_non_fused_optimizers_are_refused(kwargs):
    with pytest.raises(ConfigError, match='fused implementation is required'):
        build_optimizer(Tiny(), {'type': 'AdamW', 'kwargs': {'lr': 1e-3, **kwargs}})
