"""The pre-training runner end to end through ``main.main``, on the tiny demo data and a tiny
paper config (tests/conftest.py): outputs and refusal to overwrite, exact resume,
``--start_ckpts`` and loading into the classifier, and the non-finite guard."""
import hashlib
import itertools
import json
import math
import os

import pytest
import torch
import yaml

import main
from conftest import TINY_BACKBONE, torch_settings, write_tiny_config
from models import build_model
from models.maskclu import MaskClu, active_term_weights
from tools.config_check import validate_config
from tools.engine import TrainStepper
from tools.trainer import Trainer
from utils.checkpoint import load_checkpoint, load_pretrained
from utils.config import load_config

STEPS_PER_EPOCH = 3  # 24 tiny ShapeNet training clouds, total_bs 8


def run(config, exp, name, *extra, workers=0):
    """``python main.py`` in-process on the CPU; returns the experiment folder."""
    main.main(['--config', config, '--exp', exp, '--exp_name', name, '--device', 'cpu',
               '--num_workers', str(workers), '--seed', '0', *extra])
    return os.path.join(exp, 'pretrain_tiny', 'cfgs', name)


def read_metrics(folder):
    with open(os.path.join(folder, 'metrics.jsonl')) as f:
        return [json.loads(line) for line in f]


def term_names(config):
    model = MaskClu.check_config(load_config(config).model)
    return set(active_term_weights(model['losses']))


def snapshot(folder):
    """{file name: (sha256, mtime_ns)} of every file in ``folder``."""
    out = {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        with open(path, 'rb') as f:
            out[name] = (hashlib.sha256(f.read()).hexdigest(), os.stat(path).st_mtime_ns)
    return out


@pytest.fixture(scope='module')
def pretrained(tmp_path_factory, demo_root):
    """One 2-epoch run of the tiny paper config: (config path, experiment folder)."""
    folder = str(tmp_path_factory.mktemp('pretrain'))
    config = write_tiny_config(folder, demo_root)
    with torch_settings():
        path = run(config, os.path.join(folder, 'exps'), 'e2e')
    return config, path


# ------------------------------------------------------------------------------ 1. end to end

def test_two_epochs_write_config_log_metrics_and_checkpoints(pretrained):
    config, path = pretrained
    assert path.endswith(os.path.join('exps', 'pretrain_tiny', 'cfgs', 'e2e'))
    expected = {'config.yaml', 'log.txt', 'metrics.jsonl', 'ckpt-last.pth', 'ckpt-epoch-001.pth',
                'ckpt-epoch-002.pth'}
    assert expected <= set(os.listdir(path))
    assert not [n for n in os.listdir(path) if n.endswith('.tmp')]

    with open(os.path.join(path, 'config.yaml')) as f:
        assert yaml.safe_load(f) == validate_config(load_config(config), config).to_dict()
    with open(os.path.join(path, 'log.txt')) as f:
        log = f.read()
    assert 'epoch 2/2' in log and 'steps per epoch' in log

    terms = term_names(config)
    assert terms == {'assign', 'center', 'global_contrast'}  # the paper's objective
    records = read_metrics(path)
    train = [r for r in records if r['tag'] == 'train']
    epochs = [r for r in records if r['tag'] == 'epoch']
    # log_freq 2 with 3 steps per epoch: every 2nd step and the last step of each epoch
    assert [r['step'] for r in train] == [2, 3, 5, 6]
    assert [(r['step'], r['epoch']) for r in epochs] == [(1, 1), (2, 2)]
    for r in train:
        assert terms | {'loss', 'lr', 'samples_per_s'} <= set(r)
    for r in epochs:
        assert terms | {'loss', 'lr', 'samples_per_s', 'epoch_time_s', 'skipped_steps'} <= set(r)
        assert r['skipped_steps'] == 0
    for r in train + epochs:
        for name in terms | {'loss', 'lr', 'samples_per_s'}:
            assert r[name] is not None and math.isfinite(r[name]), (r['tag'], r['step'], name)
        assert r['samples_per_s'] > 0

    last = load_checkpoint(os.path.join(path, 'ckpt-last.pth'))
    assert last['epoch'] == 2 and load_checkpoint(os.path.join(path, 'ckpt-epoch-001.pth'))['epoch'] == 1
    final = load_checkpoint(os.path.join(path, 'ckpt-epoch-002.pth'))
    for key, value in last['base_model'].items():
        torch.testing.assert_close(final['base_model'][key], value, rtol=0, atol=0)
    assert last['metrics']['loss'] == pytest.approx(epochs[-1]['loss'])
    assert last['scheduler']['step_count'] == 2 * STEPS_PER_EPOCH


def test_same_folder_without_resume_is_refused_and_nothing_overwritten(pretrained, torch_globals):
    config, path = pretrained
    before = snapshot(path)
    with pytest.raises(SystemExit, match=r'already holds ckpt-last\.pth; use --resume'):
        run(config, os.path.dirname(os.path.dirname(os.path.dirname(path))), 'e2e')
    assert snapshot(path) == before


# ---------------------------------------------------------------------------- 2. exact resume

def interrupt_after_saving(monkeypatch, epochs_done):
    """Make the run stop (KeyboardInterrupt) right after the checkpoint of ``epochs_done`` is saved."""
    save = Trainer.save

    def save_then_interrupt(self, done, metrics):
        save(self, done, metrics)
        if done == epochs_done:
            raise KeyboardInterrupt
    monkeypatch.setattr(Trainer, 'save', save_then_interrupt)


def assert_same_training_state(path_a, path_b):
    a, b = load_checkpoint(path_a), load_checkpoint(path_b)
    assert a['epoch'] == b['epoch']
    assert a['base_model'].keys() == b['base_model'].keys()
    for key, value in a['base_model'].items():
        torch.testing.assert_close(b['base_model'][key], value, rtol=0, atol=1e-6, msg=key)
    assert a['optimizer']['param_groups'] == b['optimizer']['param_groups']  # lr, initial_lr, ...
    assert a['optimizer']['state'].keys() == b['optimizer']['state'].keys()
    for index, state in a['optimizer']['state'].items():
        for name, value in state.items():
            torch.testing.assert_close(b['optimizer']['state'][index][name], value, rtol=1e-5, atol=1e-9,
                                       msg=f'optimizer state {index}.{name}')
    assert a['scheduler'] == b['scheduler']
    torch.testing.assert_close(b['rng']['torch'], a['rng']['torch'], rtol=0, atol=0)  # same draws consumed
    assert a['rng']['numpy'] | {'key': None} == b['rng']['numpy'] | {'key': None}
    torch.testing.assert_close(b['rng']['numpy']['key'], a['rng']['numpy']['key'], rtol=0, atol=0)


@pytest.mark.parametrize('workers', [0, 1])
def test_resume_continues_exactly(tiny_config, tmp_path, monkeypatch, torch_globals, workers):
    """2 epochs, an interruption right after the epoch-2 checkpoint, ``--resume`` for 2 more
    == 4 uninterrupted epochs: weights, optimizer moments, lr, schedule, RNG streams, metrics."""
    config = tiny_config(max_epoch=4, ckpt_save_freq=3)
    exp = str(tmp_path / 'exps')
    full = run(config, exp, 'full', '--deterministic', workers=workers)

    interrupt_after_saving(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        run(config, exp, 'resumed', '--deterministic', workers=workers)
    monkeypatch.undo()
    resumed = os.path.join(exp, 'pretrain_tiny', 'cfgs', 'resumed')
    assert load_checkpoint(os.path.join(resumed, 'ckpt-last.pth'))['epoch'] == 2
    run(config, exp, 'resumed', '--deterministic', '--resume', workers=workers)

    with open(os.path.join(resumed, 'log.txt')) as f:
        assert 'at epoch 2' in f.read()
    assert_same_training_state(os.path.join(full, 'ckpt-last.pth'), os.path.join(resumed, 'ckpt-last.pth'))
    assert_same_training_state(os.path.join(full, 'ckpt-epoch-003.pth'), os.path.join(resumed, 'ckpt-epoch-003.pth'))

    def logged(folder):
        drop = {'time', 'samples_per_s', 'epoch_time_s'}
        return [{k: v for k, v in r.items() if k not in drop} for r in read_metrics(folder)]
    a, b = logged(full), logged(resumed)
    assert [(r['tag'], r['step']) for r in a] == [(r['tag'], r['step']) for r in b]
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for name in ra.keys() - {'tag'}:
            assert rb[name] == pytest.approx(ra[name], rel=1e-5, abs=1e-6), (ra['tag'], ra['step'], name)


# ------------------------------------------------------------- 3. start_ckpts and downstream load

def test_start_ckpts_initialises_the_model_and_logs_the_report(pretrained, tmp_path, monkeypatch, torch_globals):
    config, path = pretrained
    source = os.path.join(path, 'ckpt-last.pth')
    expected = load_checkpoint(source)['base_model']
    seen = {}
    fit = Trainer.fit

    def fit_recording_start(self):
        seen.update({k: v.clone() for k, v in self.model.state_dict().items()})
        fit(self)
    monkeypatch.setattr(Trainer, 'fit', fit_recording_start)

    out = run(config, str(tmp_path / 'exps'), 'continued', '--start_ckpts', source, '--opts', 'max_epoch=1')
    assert seen.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(seen[key], value, rtol=0, atol=0, msg=key)
    with open(os.path.join(out, 'log.txt')) as f:
        log = f.read()
    assert f'loaded {len(expected)}/{len(expected)} model tensors from {source}' in log
    ckpt = load_checkpoint(os.path.join(out, 'ckpt-last.pth'))
    assert ckpt['epoch'] == 1 and ckpt['scheduler']['step_count'] == STEPS_PER_EPOCH  # a new run, not a resume
    assert not torch.equal(ckpt['base_model']['MAE_encoder.norm.weight'], expected['MAE_encoder.norm.weight'])


def test_checkpoint_loads_into_the_classifier(pretrained, torch_globals):
    config, path = pretrained
    source = os.path.join(path, 'ckpt-last.pth')
    point_channels = load_config(config).model.point_channels
    torch.manual_seed(0)
    classifier = build_model({'NAME': 'PointTransformer', **TINY_BACKBONE, 'encoder_dims': TINY_BACKBONE['trans_dim'],
                              'point_channels': point_channels, 'cls_dim': 40})
    report = load_pretrained(classifier, source)
    assert report.mismatched == []
    assert report.missing and all(k.startswith('cls_head_finetune.') for k in report.missing)
    own = classifier.state_dict()
    assert set(report.loaded) == {k for k in own if not k.startswith('cls_head_finetune.')}
    weights = load_checkpoint(source)['base_model']
    for key in report.loaded:
        torch.testing.assert_close(own[key], weights[f'MAE_encoder.{key}'], rtol=0, atol=0, msg=key)
    classifier.eval()
    logits = classifier(torch.rand(2, 256, 3, generator=torch.Generator().manual_seed(0)))
    assert logits.shape == (2, 40) and torch.isfinite(logits).all()


# ------------------------------------------------------------------------- 4. non-finite guard

def poison_forward(monkeypatch, bad):
    """Make the training forward's loss NaN on the (1-based) calls where ``bad(call)``."""
    forward, calls = MaskClu.forward, itertools.count(1)

    def nan_forward(self, points, generator=None):
        out = forward(self, points, generator)
        if bad(next(calls)):
            out = {'loss': out['loss'] * float('nan'), 'terms': out['terms']}
        return out
    monkeypatch.setattr(MaskClu, 'forward', nan_forward)


def record_updates(monkeypatch):
    """List of (loss finite, weights changed) per optimizer step."""
    backward, steps = TrainStepper.backward, []

    def recording_backward(self, loss):
        before = [p.detach().clone() for p in self.params]
        updated = backward(self, loss)
        changed = any(not torch.equal(a, p) for a, p in zip(before, self.params))
        steps.append((bool(torch.isfinite(loss)), changed))
        return updated
    monkeypatch.setattr(TrainStepper, 'backward', recording_backward)
    return steps


def test_non_finite_steps_are_skipped_and_counted(tiny_config, tmp_path, monkeypatch, torch_globals):
    poison_forward(monkeypatch, lambda call: call == 2)
    steps = record_updates(monkeypatch)
    out = run(tiny_config(), str(tmp_path / 'exps'), 'nan')
    assert steps == [(True, True), (False, False)] + [(True, True)] * (2 * STEPS_PER_EPOCH - 2)
    epochs = [r for r in read_metrics(out) if r['tag'] == 'epoch']
    assert [r['skipped_steps'] for r in epochs] == [1, 0]
    assert epochs[0]['loss'] is None and math.isfinite(epochs[1]['loss'])  # the NaN is shown, as null
    ckpt = load_checkpoint(os.path.join(out, 'ckpt-last.pth'))
    assert ckpt['scheduler']['step_count'] == 2 * STEPS_PER_EPOCH  # the schedule still advances
    assert {int(s['step']) for s in ckpt['optimizer']['state'].values()} == {2 * STEPS_PER_EPOCH - 1}
    assert all(torch.isfinite(v).all() for v in ckpt['base_model'].values() if v.is_floating_point())


def test_a_non_finite_streak_stops_the_run_and_keeps_the_last_checkpoint(tiny_config, tmp_path, monkeypatch,
                                                                        torch_globals):
    poison_forward(monkeypatch, lambda call: call > STEPS_PER_EPOCH)  # every step from epoch 2 on
    config = tiny_config(max_epoch=3, nonfinite_patience=2)
    exp = str(tmp_path / 'exps')
    saved = {}
    save = Trainer.save

    def save_and_snapshot(self, done, metrics):
        save(self, done, metrics)
        saved.update(snapshot(self.ctx.experiment_path))
    monkeypatch.setattr(Trainer, 'save', save_and_snapshot)

    with pytest.raises(SystemExit, match=r'main.py: error: 2 optimizer steps in a row .* the last checkpoint is intact'):
        run(config, exp, 'streak')
    path = os.path.join(exp, 'pretrain_tiny', 'cfgs', 'streak')
    files = snapshot(path)
    assert {n: files[n] for n in saved if n.endswith('.pth')} == {n: v for n, v in saved.items() if n.endswith('.pth')}
    assert sorted(n for n in files if n.endswith('.pth') or n.endswith('.tmp')) == ['ckpt-epoch-001.pth',
                                                                                   'ckpt-last.pth']
    ckpt = load_checkpoint(os.path.join(path, 'ckpt-last.pth'))
    assert ckpt['epoch'] == 1
    assert all(torch.isfinite(v).all() for v in ckpt['base_model'].values() if v.is_floating_point())


# ------------------------------------------------------------------------------ 5. validation

def test_validation_loss_every_val_freq_epochs_is_seeded(tmp_path, demo_root, torch_globals):
    """With a ``val`` split the epoch records carry ``val_*`` terms every ``--val_freq`` epochs
    (and at the last one); masks come from ``--seed``, so two runs give the same numbers."""
    from conftest import shapenet_entry
    config = write_tiny_config(str(tmp_path), demo_root, max_epoch=3,
                               dataset={'val': shapenet_entry(demo_root, 'test', 256)})
    first = run(config, str(tmp_path / 'exps'), 'a', '--val_freq', '2')
    second = run(config, str(tmp_path / 'exps'), 'b', '--val_freq', '2')
    epochs = [r for r in read_metrics(first) if r['tag'] == 'epoch']
    assert ['val_loss' in r for r in epochs] == [False, True, True]
    val_terms = {k for k in epochs[1] if k.startswith('val_')}
    assert val_terms == {'val_loss'} | {f'val_{t}' for t in term_names(config)}
    assert all(math.isfinite(epochs[1][k]) for k in val_terms)
    again = [r for r in read_metrics(second) if r['tag'] == 'epoch']
    for k in val_terms:
        assert epochs[2][k] == pytest.approx(again[2][k], rel=1e-5, abs=1e-6)
