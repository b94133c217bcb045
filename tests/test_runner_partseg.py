"""Part segmentation end to end through ``trainpartseg.main`` on the tiny demo part data: it beats a
constant predictor, resumes exactly, ``--test`` reports single pass and votes (per-category table
in the log and results.json), ``--svm`` runs the dense probe, bad checkpoints and flags are
one-line errors, and the test-split metrics of 2 gloo ranks (padded sampler) equal one process's."""
import json
import os

import pytest
import torch
import torch.multiprocessing as mp
import yaml

import trainpartseg
from conftest import torch_settings, tiny_model_config
from models import build_model
from test_dense_probe import constant_predictor_miou
from test_runner_pretrain import assert_same_training_state, interrupt_after_saving
from test_seg_metrics import _free_port
from tools.runner_partseg import evaluate_split, vote_scales

TINY_SEG = {'NAME': 'PartSegmentation', 'trans_dim': 32, 'encoder_dims': 32, 'depth': 2, 'num_heads': 2,
            'num_group': 16, 'group_size': 16, 'drop_path_rate': 0.0, 'feature_blocks': [1, 2], 'label_dim': 16,
            'propagation_dims': [64, 32], 'head_dims': [64, 32], 'dropout': 0.0}


@pytest.fixture(scope='module')
def part_root(tmp_path_factory):
    """The tiny demo ShapeNetPart (text layout): 2 train + 1 val + 1 test shape per category."""
    from datasets.demo.generate import SIZES, make_partseg
    out = str(tmp_path_factory.mktemp('demo_parts'))
    make_partseg(out, 0, SIZES['tiny'])
    return os.path.join(out, 'shapenetcore_partanno_segmentation_benchmark_v0_normal')


def write_config(folder, root, **top):
    """A tiny trainpartseg.py YAML (flags' keys, a model section, the dataset entry); its path."""
    cfg = {'dataset': {'NAME': 'ShapeNetPart', 'DATA_PATH': root, 'LAYOUT': 'auto'}, 'epoch': 24, 'warmup_epoch': 1,
           'batch_size': 8, 'npoint': 256, 'learning_rate': 0.01, 'num_workers': 0, 'device': 'cpu', 'val_freq': 6,
           'model': dict(TINY_SEG), **top}
    path = os.path.join(folder, 'partseg_tiny.yaml')
    with open(path, 'w') as f:
        yaml.safe_dump(cfg, f)
    return path


def run(config, exp, log_dir, *extra):
    """``python trainpartseg.py`` in-process; returns the experiment folder."""
    trainpartseg.main(['--config', config, '--exp', exp, '--log_dir', log_dir, *extra])
    return os.path.join(exp, 'partseg', log_dir)


def read_json(path):
    with open(path) as f:
        return json.load(f)


def pretraining_checkpoint(path):
    """An (untrained) tiny MaskClu pre-training checkpoint whose encoder fits TINY_SEG."""
    torch.manual_seed(1)
    cfg = tiny_model_config(group_size=16, transformer_config={'depth': 2})
    torch.save({'base_model': build_model(cfg).state_dict(), 'config': {'model': cfg}}, path)
    return str(path)


def split_batches(root, subset):
    """(points, category, parts) batches of a split as the evaluation loader reads them."""
    from datasets import build_dataset
    ds = build_dataset({'NAME': 'ShapeNetPart', 'DATA_PATH': root, 'subset': subset, 'npoints': 256})
    ds.item_seed = 0   # as build_dataloader sets it for an evaluation loader with seed 0
    items = [ds[i] for i in range(len(ds))]
    return [(torch.stack([i[0] for i in items]), torch.tensor([i[1] for i in items]),
             torch.stack([i[2] for i in items]))]


@pytest.fixture(scope='module')
def trained(tmp_path_factory, part_root):
    """One 24-epoch run from scratch (6 steps of 8 shapes per epoch): (config path, experiment root,
    experiment folder)."""
    folder = str(tmp_path_factory.mktemp('partseg'))
    config = write_config(folder, part_root)
    with torch_settings():
        path = run(config, os.path.join(folder, 'exps'), 'e2e')
    return config, os.path.join(folder, 'exps'), path


# ------------------------------------------------------------------------------ end to end

def test_training_beats_a_constant_predictor(trained, part_root):
    _, _, path = trained
    results = read_json(os.path.join(path, 'results.json'))
    assert results['consider_metric'] == {'name': 'instance_miou', 'mode': 'max'}
    best, last = results['best_epoch']['metrics'], results['last_epoch']['metrics']
    assert results['last_epoch']['epoch'] == 24 and best['instance_miou'] >= last['instance_miou']
    assert {'instance_miou', 'class_miou', 'point_acc', 'iou_Airplane', 'iou_Table', 'train_acc'} <= last.keys()
    baseline = 100 * constant_predictor_miou(split_batches(part_root, 'trainval'), split_batches(part_root, 'test'))
    assert last['instance_miou'] > baseline + 8, (baseline, last['instance_miou'])
    files = sorted(n for n in os.listdir(path) if not n.startswith(('events.', '.lock')))
    assert files == ['ckpt-best.pth', 'ckpt-epoch-024.pth', 'ckpt-last.pth', 'config.yaml', 'log.txt', 'metrics.jsonl',
                     'results.json', 'test'][:len(files)]
    config = yaml.safe_load(open(os.path.join(path, 'config.yaml')))
    assert config['optimizer'] == {'type': 'AdamW', 'kwargs': {'lr': 0.01, 'weight_decay': 0.05}}
    assert config['scheduler']['kwargs'] == {'epochs': 24, 'initial_epochs': 1}
    assert config['train_transforms'] == [{'NAME': 'ScaleShift'}] and config['step_per_update'] == 1
    with open(os.path.join(path, 'log.txt')) as f:
        log = f.read()
    assert 'from scratch' in log and 'instance mIoU' in log and 'Skateboard' in log


def test_test_mode_reports_single_pass_and_votes(trained):
    config, exp, path = trained
    with torch_settings():
        run(config, exp, 'e2e', '--test', '--ckpts', os.path.join(path, 'ckpt-last.pth'), '--num_votes', '3')
    out = read_json(os.path.join(path, 'test', 'results.json'))
    metrics, last = out['metrics'], read_json(os.path.join(path, 'results.json'))['last_epoch']['metrics']
    assert out['mode'] == 'partseg_test' and metrics['num_votes'] == 3 and metrics['shapes'] == 16
    for key in ('instance_miou', 'class_miou', 'point_acc'):   # the same points as the training's evaluation
        assert metrics[key] == pytest.approx(last[key], abs=1e-9)
    assert metrics['per_category']['Table'] == pytest.approx(last['iou_Table'], abs=1e-9)
    assert set(metrics['vote_per_category']) == set(metrics['per_category']) and len(metrics['per_category']) == 16
    assert metrics['vote_instance_miou'] != metrics['instance_miou']
    with open(os.path.join(path, 'test', 'log.txt')) as f:
        log = f.read()
    assert 'single pass' in log and '3 votes (random scalings)' in log and log.count('Motorbike') >= 2


def test_a_pretraining_checkpoint_is_refused_by_test(trained, tmp_path, capsys):
    config, exp, _ = trained
    ckpt = pretraining_checkpoint(tmp_path / 'pre.pth')
    with pytest.raises(SystemExit) as info, torch_settings():
        run(config, exp, 'refused', '--test', '--ckpts', ckpt)
    message = str(info.value)
    assert message.startswith('trainpartseg.py: error:') and 'not a part-segmentation checkpoint' in message
    assert '\n' not in message


def test_dense_probe_of_a_pretraining_checkpoint(trained, tmp_path):
    config, exp, _ = trained
    ckpt = pretraining_checkpoint(tmp_path / 'pre.pth')
    with torch_settings():
        path = run(config, exp, 'probe', '--svm', '--ckpts', ckpt)
    metrics = read_json(os.path.join(path, 'dense_probe', 'results.json'))['metrics']
    assert metrics['shapes'] == 16 and metrics['feature_dim'] == 64 and metrics['train_points'] == 48 * 32
    assert 0 < metrics['probe_instance_miou'] <= 100 and 'probe_iou_Chair' in metrics


@pytest.mark.parametrize('flags, message', [
    (['--test'], '--test needs --ckpts'),
    (['--svm'], '--svm needs --ckpts'),
    (['--num_votes', '3'], '--num_votes goes with --test'),
    (['--test', '--svm', '--ckpts', __file__], 'two different evaluations'),
    (['--svm', '--resume', '--ckpts', __file__], '--resume continues a training run'),
])
def test_contradictory_flags_are_one_line_errors(trained, capsys, flags, message):
    config, exp, _ = trained
    with pytest.raises(SystemExit):
        trainpartseg.parse_args(['--config', config, '--exp', exp, *flags])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_a_finished_run_is_not_overwritten(trained):
    config, exp, _ = trained
    with pytest.raises(SystemExit, match='already holds ckpt-last.pth'):
        run(config, exp, 'e2e')


# ------------------------------------------------------------------------------ exact resume

def test_resume_continues_exactly(part_root, tmp_path, monkeypatch, torch_globals):
    """A fine-tuning run (encoder from a pre-training checkpoint), interrupted after epoch 2 and
    resumed == 3 uninterrupted epochs: weights, optimizer, schedule, RNG streams, metrics."""
    config = write_config(str(tmp_path), part_root, epoch=3, warmup_epoch=1, batch_size=8, val_freq=1)
    ckpt = pretraining_checkpoint(tmp_path / 'pre.pth')
    exp = str(tmp_path / 'exps')
    full = run(config, exp, 'full', '--ckpts', ckpt)
    interrupt_after_saving(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        run(config, exp, 'resumed', '--ckpts', ckpt)
    monkeypatch.undo()
    resumed = run(config, exp, 'resumed', '--ckpts', ckpt, '--resume')
    with open(os.path.join(resumed, 'log.txt')) as f:
        log = f.read()
    assert log.count(f'weights from {ckpt}') == 1 and 'at epoch 2' in log
    assert_same_training_state(os.path.join(full, 'ckpt-last.pth'), os.path.join(resumed, 'ckpt-last.pth'))
    a, b = (read_json(os.path.join(p, 'results.json')) for p in (full, resumed))
    assert a['best_epoch']['epoch'] == b['best_epoch']['epoch']
    for key, value in a['last_epoch']['metrics'].items():
        if key not in ('epoch_time_s', 'samples_per_s'):
            assert b['last_epoch']['metrics'][key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


# --------------------------------------------------------------- DDP: every test shape once

def evaluate_tiny(root, scales):
    """Metrics (single pass and votes) of a seeded tiny model on the 48 trainval shapes, batch 2
    over all ranks (a rank of 2 pads its share of 47 with a repeated shape)."""
    from datasets import EpochLoader, build_dataset
    from utils.dist import get_world_size
    torch.manual_seed(0)
    model = build_model(TINY_SEG).eval()
    dataset = build_dataset({'NAME': 'ShapeNetPart', 'DATA_PATH': root, 'subset': 'trainval', 'npoints': 256})
    dataset.source.items = dataset.source.items[:47]
    dataset.item_seed = 0   # as build_dataloader sets it for an evaluation loader with seed 0
    loader = EpochLoader(dataset, train=False, batch_size=2 // get_world_size(), seed=0, num_workers=0)
    with torch.no_grad():
        meters = evaluate_split(model, loader, torch.device('cpu'), scales)
    return {name: meter.compute() for name, meter in meters.items()}, len(loader.sample_indices())


def _worker(rank, port, root, out):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.distributed.init_process_group('gloo', rank=rank, world_size=2)
    torch.set_num_threads(1)
    try:
        result, rows = evaluate_tiny(root, vote_scales(47, 2, seed=0))
        with open(os.path.join(out, f'rank{rank}.json'), 'w') as f:
            json.dump({'result': result, 'rows': rows}, f)
    finally:
        torch.distributed.destroy_process_group()


def test_two_ranks_count_every_test_shape_once(part_root, tmp_path, torch_globals):
    mp.spawn(_worker, args=(_free_port(), part_root, str(tmp_path)), nprocs=2)
    expected, rows = evaluate_tiny(part_root, vote_scales(47, 2, seed=0))
    assert rows == 47
    for rank in range(2):
        got = read_json(tmp_path / f'rank{rank}.json')
        assert got['rows'] == 24    # 47 shapes padded to 2 x 24
        for name in ('single', 'vote'):
            g, e = got['result'][name], expected[name]
            assert g['shapes'] == 47 and g['shapes_per_category'] == e['shapes_per_category']
            for key in ('instance_miou', 'class_miou', 'accuracy'):
                assert g[key] == pytest.approx(e[key], abs=1e-6), (name, key)
