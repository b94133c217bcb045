"""Classification runners end to end through main.py on tiny data: fine-tune from scratch beats chance,
fine-tune from a checkpoint, ``--test`` (single pass + voting repeats) and its refusals, few-shot over
ten folds with a failed fold reported, exact resume, --svm with a fine-tuning config, and (slow, ``-m slow``)
exact DDP metrics with a padded sampler (2 gloo ranks)."""
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from conftest import ROOT, TINY_BACKBONE, torch_settings
from datasets.modelnet_fewshot import write_fewshot_folds

CLASSES = 5
NPOINTS = 64


def shape(label, rng, n=NPOINTS):
    """Five easily told shapes: sphere, flat disk, rod, cube surface, two blobs; (n, 6) float32."""
    u = rng.normal(size=(n, 3))
    if label == 0:
        p = u / np.linalg.norm(u, axis=1, keepdims=True)
    elif label == 1:
        p = u * [1.0, 0.05, 1.0]
    elif label == 2:
        p = u * [0.08, 1.0, 0.08]
    elif label == 3:
        p = np.clip(u, -1, 1)
        axis = rng.integers(3, size=n)
        p[np.arange(n), axis] = np.sign(p[np.arange(n), axis] + 1e-9)
    else:
        p = 0.2 * u + [[0.8, 0, 0]] * np.where(rng.random(n) < 0.5, 1, -1)[:, None]
    p = p * rng.uniform(0.8, 1.2, size=3)
    return np.concatenate([p, np.zeros_like(p)], axis=1).astype(np.float32)


@pytest.fixture(scope='module')
def tiny_modelnet(tmp_path_factory):
    """A ModelNet cache folder of 5 classes (16 train, 7 test shapes each: 35 test shapes, odd on
    purpose) and few-shot folds (5-way 10-shot, 3 queries) drawn from it."""
    root = tmp_path_factory.mktemp('tiny_modelnet')
    caches = {}
    for split, per_class, seed in (('train', 16, 0), ('test', 7, 1)):
        rng = np.random.default_rng(seed)
        labels = [c for c in range(CLASSES) for _ in range(per_class)]
        points = [shape(c, rng) for c in labels]
        with open(root / f'modelnet40_{split}_{NPOINTS}pts_fps.dat', 'wb') as f:
            pickle.dump([points, [np.array([c], dtype=np.int32) for c in labels]], f)
        caches[split] = (points, labels)
    write_fewshot_folds(caches['train'], caches['test'], str(root / 'fewshot'), seed=0, ways=(5,), shots=(10,),
                        folds=10, n_query=3)
    return root


def write_config(folder, data, name='finetune_tiny', fewshot=False, **top):
    entry = ({'NAME': 'ModelNetFewShot', 'DATA_PATH': str(data / 'fewshot')} if fewshot else
             {'NAME': 'ModelNet', 'DATA_PATH': str(data)})
    entry.update(N_POINTS=NPOINTS, NUM_CATEGORY=40)
    cfg = {'optimizer': {'type': 'AdamW', 'kwargs': {'lr': 0.002, 'weight_decay': 0.05}},
           'scheduler': {'type': 'CosLR', 'kwargs': {'epochs': 12, 'initial_epochs': 1}},
           'dataset': {s: {**entry, 'subset': 'train' if s == 'train' else 'test'} for s in ('train', 'val', 'test')},
           'model': {'NAME': 'PointTransformer', **TINY_BACKBONE, 'num_group': 8, 'group_size': 16,
                     'encoder_dims': TINY_BACKBONE['trans_dim'], 'cls_dim': CLASSES, 'point_channels': 'auto',
                     'drop_path_rate': 0.0, 'type': 'full'},
           'classification': {'fps_points': 64, 'votes': 3, 'vote_repeats': 3},
           'consider_metric': 'acc', 'npoints': 48, 'total_bs': 8, 'max_epoch': 12, 'grad_norm_clip': 10,
           'log_freq': 5, 'ckpt_save_freq': 100}
    cfg.update(top)
    path = os.path.join(folder, 'cfgs', f'{name}.yaml')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        yaml.safe_dump(cfg, f)
    return path


def main(*argv):
    import main as entry
    with torch_settings():
        entry.main(['--device', 'cpu', '--num_workers', '0', *argv])


def exp_dir(tmp_path, name, config='finetune_tiny'):
    return tmp_path / 'exps' / config / 'cfgs' / name


def read(path):
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope='module')
def scratch_run(tmp_path_factory, tiny_modelnet):
    tmp = tmp_path_factory.mktemp('scratch')
    config = write_config(str(tmp), tiny_modelnet)
    main('--config', config, '--scratch_model', '--exp', str(tmp / 'exps'), '--exp_name', 'scratch', '--vote')
    return tmp, config


def test_scratch_finetune_beats_chance_clearly(scratch_run):
    tmp, _ = scratch_run
    folder = exp_dir(tmp, 'scratch')
    results = read(folder / 'results.json')
    best, last = results['best_epoch'], results['last_epoch']
    assert best['metrics']['acc'] >= 80.0 > 100.0 / CLASSES   # chance: 20 %
    assert last['epoch'] == 12 and 'mean_class_acc' in last['metrics'] and 'vote_acc_mean' in last['metrics']
    assert {'ckpt-best.pth', 'ckpt-last.pth', 'ckpt-epoch-012.pth', 'log.txt'} <= set(os.listdir(folder))
    with open(folder / 'log.txt') as f:
        log = f.read()
    assert 'model keys point_channels=4 (default)' in log and 'chosen on the evaluation split' in log


def test_test_mode_repeats_voting_and_matches_the_best_epoch(scratch_run):
    tmp, config = scratch_run
    best = exp_dir(tmp, 'scratch') / 'ckpt-best.pth'
    main('--test', '--config', config, '--ckpts', str(best), '--exp', str(tmp / 'exps'), '--exp_name', 'test')
    metrics = read(exp_dir(tmp, 'test') / 'results.json')['metrics']
    trained = read(exp_dir(tmp, 'scratch') / 'results.json')['best_epoch']['metrics']
    assert metrics['acc'] == pytest.approx(trained['acc'])       # the same single pass, same 35 shapes
    per_repeat = metrics['vote_acc_per_repeat']
    assert len(per_repeat) == 3 and metrics['vote_seeds'] == [0, 1, 2]
    assert metrics['vote_acc_mean'] == pytest.approx(np.mean(per_repeat))
    assert metrics['vote_acc_max'] == max(per_repeat)
    assert metrics['vote_acc_std'] == pytest.approx(np.std(per_repeat, ddof=1))
    assert all(round(a * 35 / 100) == pytest.approx(a * 35 / 100) for a in per_repeat)  # counts of 35 shapes
    with open(exp_dir(tmp, 'test') / 'log.txt') as f:
        assert '(mean ± std)' in f.read()


def test_test_refuses_pretraining_and_other_class_counts(scratch_run, tmp_path):
    tmp, config = scratch_run
    from models import build_model
    pre = tmp_path / 'pre.pth'
    model = build_model({'NAME': 'PointTransformer', **TINY_BACKBONE, 'encoder_dims': 32, 'num_group': 8,
                         'group_size': 16})
    torch.save({'base_model': {f'MAE_encoder.{k}': v for k, v in model.state_dict().items()
                               if not k.startswith('cls_head_finetune')}}, pre)
    best = str(exp_dir(tmp, 'scratch') / 'ckpt-best.pth')
    for ckpt, opts, message in ((str(pre), [], 'a pre-training checkpoint .* was given; --test expects a fine-tuned'),
                                (best, ['--opts', 'model.cls_dim=7'], 'its head has 5 classes, the config expects '
                                                                       'model.cls_dim=7')):
        with pytest.raises(SystemExit, match=message) as err:
            main('--test', '--config', config, '--ckpts', ckpt, '--exp', str(tmp_path / 'e'), '--exp_name', 'x',
                 *opts)
        assert '\n' not in str(err.value)


def test_finetune_from_a_finetuned_checkpoint_drops_its_head(scratch_run, tmp_path):
    tmp, config = scratch_run
    best = str(exp_dir(tmp, 'scratch') / 'ckpt-best.pth')
    main('--config', config, '--finetune_model', '--ckpts', best, '--exp', str(tmp_path / 'exps'),
         '--exp_name', 'again', '--opts', 'max_epoch=2', 'scheduler.kwargs.epochs=2')
    folder = exp_dir(tmp_path, 'again')
    with open(folder / 'log.txt') as f:
        log = f.read()
    assert 'is a fine-tuned classifier: its head (cls_head_finetune.*, 5 classes, full or mlp3) is dropped' in log
    assert 'model keys read from' in log and 'point_channels=4' in log
    assert read(folder / 'results.json')['last_epoch']['epoch'] == 2


def test_fewshot_all_folds_table_and_a_failed_fold(tiny_modelnet, tmp_path):
    os.remove(tiny_modelnet / 'fewshot' / '5way_10shot' / '7.pkl')
    config = write_config(str(tmp_path), tiny_modelnet, name='fewshot_tiny', fewshot=True, max_epoch=3,
                          scheduler={'type': 'CosLR', 'kwargs': {'epochs': 3, 'initial_epochs': 1}})
    main('--config', config, '--way', '5', '--shot', '10', '--fold', '-1', '--exp', str(tmp_path / 'exps'),
         '--exp_name', 'fs')
    folder = exp_dir(tmp_path, 'fs', 'fewshot_tiny')
    results = read(folder / 'results.json')
    assert [r['fold'] for r in results['folds']] == list(range(10))
    failed = results['folds'][7]
    assert 'error' in failed and '7.pkl' in failed['error'] and results['folds_failed'] == [7]
    ok = [r['acc'] for r in results['folds'] if 'error' not in r]
    assert results['folds_ok'] == 9 == len(ok)
    assert results['acc_mean'] == pytest.approx(np.mean(ok)) and results['acc_std'] == pytest.approx(np.std(ok, ddof=1))
    assert all(os.path.isfile(folder / f'fold-{f}' / 'results.json') for f in range(10) if f != 7)
    with open(folder / 'log.txt') as f:
        log = f.read()
    assert '   7         -      -         -  FAILED: DatasetError' in log
    assert 'over 9 of 10 folds); FAILED folds: [7]' in log


# ------------------------------------------------------------------------- DDP: exact metrics

@pytest.mark.slow
def test_ddp_test_counts_every_shape_once(scratch_run, tmp_path):
    """2 gloo ranks on 35 test shapes: the DistributedSampler pads one duplicate; the gathered
    single-pass accuracy equals the one-process number exactly."""
    tmp, config = scratch_run
    best = str(exp_dir(tmp, 'scratch') / 'ckpt-best.pth')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nnodes=1', '--nproc_per_node=2',
           os.path.join(ROOT, 'main.py'), '--launcher', 'pytorch', '--test', '--config', config, '--ckpts', best,
           '--exp', str(tmp_path / 'exps'), '--exp_name', 'ddp', '--device', 'cpu', '--num_workers', '0']
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': ROOT}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    ddp = read(exp_dir(tmp_path, 'ddp') / 'results.json')['metrics']
    single = read(exp_dir(tmp, 'scratch') / 'results.json')['best_epoch']['metrics']
    assert ddp['acc'] == pytest.approx(single['acc']) and ddp['mean_class_acc'] == pytest.approx(single['mean_class_acc'])


def test_resume_continues_exactly(tiny_modelnet, tmp_path):
    """3 epochs straight == 1 epoch, then --resume to 3 (the training data path draws from the saved RNG)."""
    top = dict(max_epoch=3, scheduler={'type': 'CosLR', 'kwargs': {'epochs': 3, 'initial_epochs': 1}})
    config = write_config(str(tmp_path), tiny_modelnet, **top)
    exps = str(tmp_path / 'exps')
    main('--config', config, '--scratch_model', '--exp', exps, '--exp_name', 'straight')
    main('--config', config, '--scratch_model', '--exp', exps, '--exp_name', 'split', '--opts', 'max_epoch=1')
    main('--config', config, '--scratch_model', '--exp', exps, '--exp_name', 'split', '--resume')
    with open(exp_dir(tmp_path, 'split') / 'log.txt') as f:
        assert 'model keys read from' in f.read()   # the auto keys came from ckpt-last.pth on resume

    def epochs(name):
        with open(exp_dir(tmp_path, name) / 'metrics.jsonl') as f:
            rows = [json.loads(line) for line in f]
        return [{k: v for k, v in r.items() if k not in ('time', 'samples_per_s', 'epoch_time_s')}
                for r in rows if r['tag'] == 'epoch']
    assert epochs('split') == epochs('straight') and len(epochs('straight')) == 3


def test_svm_probe_of_a_finetuned_checkpoint_with_a_finetune_config(scratch_run, tmp_path):
    """--svm with a fine-tuning config (backbone keys auto): the keys are read from the checkpoint."""
    tmp, config = scratch_run
    best = str(exp_dir(tmp, 'scratch') / 'ckpt-best.pth')
    main('--svm', '--config', config, '--ckpts', best, '--exp', str(tmp_path / 'exps'), '--exp_name', 'svm')
    metrics = read(exp_dir(tmp_path, 'svm') / 'results.json')['metrics']
    assert metrics['svm_acc'] > 100.0 / CLASSES
