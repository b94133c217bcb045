"""The one training loop (tools/trainer.py) on a toy task: exact resume, the best checkpoint chosen
by ``consider_metric`` in both directions, results.json, the ``train_mode`` hook, evaluations in
eval mode without gradients, and the evaluation-only path."""
import json
import os

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from datasets import EpochLoader
from tools.context import RunContext
from tools.trainer import BestMetric, Task, Trainer, due, parse_best_metric
from utils.checkpoint import load_checkpoint
from utils.config import ConfigDict, ConfigError
from utils.logger import get_logger
from utils.misc import seed_everything

LOGGER = get_logger('maskclu-test-trainer')
SCORES = [3.0, 7.0, 5.0, 9.0, 2.0]  # the toy evaluation's metric after epochs 1..5


class Toy(nn.Module):
    """A frozen embedding (Linear + BatchNorm) and a trained head with dropout: x (B, 4) -> (B,)."""

    def __init__(self):
        super().__init__()
        self.frozen = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8)).requires_grad_(False)
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(8, 1))

    def forward(self, x):
        return self.head(self.frozen(x)).squeeze(-1)


class ToyTask(Task):
    """Regression of a fixed linear target; the step draws from torch's and numpy's global RNGs
    (input noise, dropout, a random scale), so an inexact resume would change the numbers."""
    log_names = ('mse', 'scale')

    def __init__(self, ctx, scores=SCORES, best_metric=None, train=True):
        self.ctx = ctx
        g = torch.Generator().manual_seed(0)
        x = torch.randn(40, 4, generator=g)
        y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1
        if train:
            self.train_loader = EpochLoader(TensorDataset(x, y), train=True, batch_size=8, seed=ctx.seed,
                                            num_workers=0)
        self.model = Toy().to(ctx.device)
        self.scores, self.best_metric = scores, best_metric
        self.evaluations = [(1, self.evaluate)]
        self.seen = {'train_step': [], 'evaluate': []}

    def prepare(self, batch):
        x, y = batch
        return x.to(self.ctx.device), y.to(self.ctx.device)

    def train_step(self, net, inputs):
        x, y = inputs
        scale = torch.tensor(1.0 + 0.1 * np.random.rand())
        pred = net(x + 0.05 * torch.randn_like(x)) * scale
        mse = ((pred - y) ** 2).mean()
        self.seen['train_step'].append((self.model.head.training, self.model.frozen.training))
        return mse, {'mse': mse, 'scale': scale}

    def train_mode(self, net):
        net.train()
        self.model.frozen.eval()   # frozen BatchNorm keeps its running statistics

    def evaluate(self, epoch):
        self.seen['evaluate'].append((self.model.training, torch.is_grad_enabled()))
        return {'score': self.scores[epoch - 1], 'head_norm': self.model.head[1].weight.norm()}

    def evaluate_only(self):
        self.seen['evaluate'].append((self.model.training, torch.is_grad_enabled()))
        return {'acc': torch.tensor(12.5), 'items': 8}


def toy_config(**top):
    cfg = {'optimizer': {'type': 'AdamW', 'kwargs': {'lr': 0.01, 'weight_decay': 0.01}},
           'scheduler': {'type': 'CosLR', 'kwargs': {'epochs': 5, 'initial_epochs': 1}},
           'model': {'NAME': 'Toy'}, 'max_epoch': 5, 'step_per_update': 1, 'grad_norm_clip': 10.0,
           'amp': False, 'compile': False, 'log_freq': 2, 'ckpt_save_freq': 1, 'nonfinite_patience': 5,
           'consider_metric': None}
    cfg.update(top)
    return ConfigDict(cfg)


def run(folder, config, *, resume=False, mode='finetune', **task_args):
    """Seed as main.py does, build the task and the trainer, fit; returns (results, task)."""
    seed_everything(0)
    ctx = RunContext(device=torch.device('cpu'), experiment_path=str(folder), mode=mode, resume=resume,
                     num_workers=0)
    os.makedirs(folder, exist_ok=True)
    task = ToyTask(ctx, **task_args)
    return Trainer(task, ctx, config, LOGGER).fit(), task


def read_json(path):
    with open(path) as f:
        return json.load(f)


def epoch_records(folder):
    with open(os.path.join(folder, 'metrics.jsonl')) as f:
        records = [json.loads(line) for line in f]
    drop = {'time', 'samples_per_s', 'epoch_time_s'}
    return [{k: v for k, v in r.items() if k not in drop} for r in records]


# ------------------------------------------------------------------------------ exact resume

def test_resume_is_exact(tmp_path, monkeypatch, torch_globals):
    """3 epochs, an interruption right after the epoch-3 checkpoint, ``resume`` for 2 more == 5
    uninterrupted epochs: weights, optimizer moments, schedule, logged losses, results.json."""
    config = toy_config(consider_metric='score')
    full_results, _ = run(tmp_path / 'full', config)

    save = Trainer.save

    def save_then_interrupt(self, done, metrics):
        save(self, done, metrics)
        if done == 3:
            raise KeyboardInterrupt
    monkeypatch.setattr(Trainer, 'save', save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / 'resumed', config)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / 'resumed' / 'ckpt-last.pth')['epoch'] == 3
    resumed_results, task = run(tmp_path / 'resumed', config, resume=True)
    assert len(task.seen['train_step']) == 2 * 5  # only epochs 4 and 5 were trained: 5 steps each

    a = load_checkpoint(tmp_path / 'full' / 'ckpt-last.pth')
    b = load_checkpoint(tmp_path / 'resumed' / 'ckpt-last.pth')
    assert a['epoch'] == b['epoch'] == 5
    for key, value in a['base_model'].items():
        torch.testing.assert_close(b['base_model'][key], value, rtol=0, atol=0, msg=key)
    for index, state in a['optimizer']['state'].items():
        for name, value in state.items():
            torch.testing.assert_close(b['optimizer']['state'][index][name], value, rtol=0, atol=0)
    assert a['scheduler'] == b['scheduler']
    assert epoch_records(tmp_path / 'full') == [r for r in epoch_records(tmp_path / 'resumed')]
    for results in (full_results, resumed_results):
        for part in ('best_epoch', 'last_epoch'):
            results[part]['metrics'].pop('epoch_time_s'), results[part]['metrics'].pop('samples_per_s')
    assert resumed_results == full_results


def test_a_changed_rng_would_show(tmp_path, torch_globals):
    """The comparison above can fail: another seed gives other weights."""
    config = toy_config(max_epoch=1)
    run(tmp_path / 'a', config)
    seed_everything(1)
    ctx = RunContext(device=torch.device('cpu'), experiment_path=str(tmp_path / 'b'), num_workers=0)
    task = ToyTask(ctx)
    seed_everything(1)
    Trainer(task, ctx, config, LOGGER).fit()
    a = load_checkpoint(tmp_path / 'a' / 'ckpt-last.pth')['base_model']
    b = load_checkpoint(tmp_path / 'b' / 'ckpt-last.pth')['base_model']
    assert not torch.equal(a['head.1.weight'], b['head.1.weight'])


# ---------------------------------------------------------------- best checkpoint, results.json

@pytest.mark.parametrize('consider, best_epoch', [('score', 4), ({'name': 'score', 'mode': 'max'}, 4),
                                                   ({'name': 'score', 'mode': 'min'}, 5)])
def test_best_checkpoint_follows_consider_metric(tmp_path, torch_globals, consider, best_epoch):
    results, _ = run(tmp_path, toy_config(consider_metric=consider))
    best = load_checkpoint(tmp_path / 'ckpt-best.pth')
    assert best['epoch'] == best['best_metrics']['epoch'] == best_epoch
    assert best['best_metrics']['score'] == SCORES[best_epoch - 1]
    same_epoch = load_checkpoint(tmp_path / f'ckpt-epoch-{best_epoch:03d}.pth')
    for key, value in same_epoch['base_model'].items():
        torch.testing.assert_close(best['base_model'][key], value, rtol=0, atol=0, msg=key)

    written = read_json(tmp_path / 'results.json')
    assert written == json.loads(json.dumps(results))
    mode = consider['mode'] if isinstance(consider, dict) else 'max'
    assert written['mode'] == 'finetune'
    assert written['consider_metric'] == {'name': 'score', 'mode': mode}
    assert written['best_epoch']['epoch'] == best_epoch
    assert written['best_epoch']['metrics']['score'] == SCORES[best_epoch - 1]
    assert ('highest' if mode == 'max' else 'lowest') in written['best_epoch']['note']
    assert written['last_epoch']['epoch'] == 5 and written['last_epoch']['metrics']['score'] == SCORES[-1]
    assert {'loss', 'mse', 'scale', 'lr', 'skipped_steps', 'head_norm'} <= set(written['last_epoch']['metrics'])
    assert not [n for n in os.listdir(tmp_path) if n.endswith('.tmp')]


def test_task_default_metric_and_nan_is_never_best(tmp_path, torch_globals):
    scores = [2.0, float('nan'), 4.0, 1.0, float('nan')]
    results, _ = run(tmp_path, toy_config(), scores=scores, best_metric={'name': 'score', 'mode': 'min'})
    assert results['best_epoch']['epoch'] == 4
    assert results['consider_metric'] == {'name': 'score', 'mode': 'min'}
    assert read_json(tmp_path / 'results.json')['last_epoch']['metrics']['score'] is None  # NaN as null


def test_without_a_metric_there_is_no_best_checkpoint(tmp_path, torch_globals):
    results, _ = run(tmp_path, toy_config(max_epoch=2, consider_metric='not_a_metric'))
    assert results['best_epoch'] is None and results['last_epoch']['epoch'] == 2
    assert not os.path.exists(tmp_path / 'ckpt-best.pth')


@pytest.mark.parametrize('bad', [{'name': 'acc', 'mode': 'up'}, {'metric': 'acc'}, 3, ''])
def test_bad_consider_metric_is_a_one_line_error(bad):
    with pytest.raises(ConfigError, match=r'consider_metric: expected a metric name or \{name'):
        parse_best_metric(bad)


def test_best_metric_and_due():
    assert BestMetric('a').better(2, 1) and not BestMetric('a').better(1, 2)
    assert BestMetric('a', 'min').better(1, 2) and BestMetric('a', 'min').better(5, None)
    assert [e for e in range(1, 8) if due(e, 3, 7)] == [3, 6, 7]
    assert not any(due(e, 0, 7) for e in range(1, 8))


# ------------------------------------------------------------------ modes of the model, frozen

def test_train_mode_hook_and_evaluation_modes(tmp_path, torch_globals):
    seed_everything(0)
    ctx = RunContext(device=torch.device('cpu'), experiment_path=str(tmp_path), num_workers=0)
    task = ToyTask(ctx)
    frozen = {k: v.clone() for k, v in task.model.frozen.state_dict().items()}
    Trainer(task, ctx, toy_config(max_epoch=2), LOGGER).fit()
    assert set(task.seen['train_step']) == {(True, False)}   # head trains, frozen part in eval
    assert task.seen['evaluate'] == [(False, False)] * 2     # eval mode, no gradients
    for key, value in task.model.frozen.state_dict().items():  # weights and BatchNorm statistics
        torch.testing.assert_close(value, frozen[key], rtol=0, atol=0, msg=key)


# ------------------------------------------------------------------------- evaluation only

def test_evaluate_only_writes_results(tmp_path, torch_globals):
    ctx = RunContext(device=torch.device('cpu'), experiment_path=str(tmp_path), mode='test', ckpts='x.pth')
    task = ToyTask(ctx, train=False)
    trainer = Trainer(task, ctx, toy_config(), LOGGER)
    assert trainer.evaluate() == {'acc': 12.5, 'items': 8}
    assert task.seen['evaluate'] == [(False, False)]
    assert read_json(tmp_path / 'results.json') == {'mode': 'test', 'checkpoint': 'x.pth',
                                                    'metrics': {'acc': 12.5, 'items': 8}}
    assert not os.path.exists(tmp_path / 'metrics.jsonl')
    with pytest.raises(RuntimeError, match='no train_loader'):
        trainer.fit()
