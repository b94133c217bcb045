"""How hard is the demo data? Linear-SVM probes of hand-made descriptors, a random encoder and a
briefly pre-trained one, on the demo ModelNet and the three ScanObjectNN-like splits.

    python tools/make_demo_data.py --out data/demo
    python tools/demo_difficulty.py [--config cfgs/demo/pretrain.yaml] [--seeds 0 1 2] [--epochs 10]

For each seed: the descriptors (``DESCRIPTORS``), the encoder of ``--config`` at random
initialisation (``torch.manual_seed(seed)``), and the same encoder after ``--epochs`` epochs of
pre-training run through the public command line (``main.py --config ... --seed S``, its
checkpoint ``ckpt-last.pth`` then loaded; a finished run found under ``--exp`` is reused).
Every probe sees the same clouds: the dataset entries of the config (``svm_train`` /
``svm_test``) and of ``--scan_configs``, brought to ``npoints`` by farthest point sampling.

Two protocols. The *probe* is the one pre-training logs (``tools/svm.py``: LinearSVC with
``svm_probe.C`` on the raw features). The *tuned* one standardises the features and picks C
from {0.01, 0.1, 1, 10} by 5-fold cross-validation on the train split; the descriptors use it
and the encoders are scored with it too ("(tuned)" rows), so that a low score cannot come from
a C that suits one encoder's feature scale and not another's. The table gives mean ± std over
the seeds and checks the targets: every descriptor and the random encoder (both protocols) at
most ``--max_modelnet`` / ``--max_scan`` percent, and pre-training gaining at least
``--min_gain`` points over the random encoder on each split (both protocols).
"""
import argparse
import glob
import json
import os
import subprocess
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from datasets import build_dataloader  # noqa: E402
from models import build_model  # noqa: E402
from tools.suite_stats import describe  # noqa: E402
from tools.svm import C_GRID, extract_features, linear_svm_accuracy, tuned_svm_accuracy  # noqa: E402
from utils.checkpoint import load_checkpoint, load_pretrained  # noqa: E402
from utils.config import load_config, load_yaml  # noqa: E402
from utils.io import atomic_write  # noqa: E402

SCAN_CONFIGS = ['cfgs/demo/dataset_configs/ScanObjectNN_objectbg.yaml',
                'cfgs/demo/dataset_configs/ScanObjectNN_objectonly.yaml',
                'cfgs/demo/dataset_configs/ScanObjectNN_hardest.yaml']
TUNED_C = C_GRID
BATCH = 32


# ---------------------------------------------------------------- descriptors: (B, N, 3) -> (B, D)
def distance_histogram(points, bins=32, pairs_of=1024):
    """D2 shape distribution: the histogram of the pairwise distances (in [0, 2] for clouds in the
    unit sphere) among the first ``pairs_of`` points (an FPS subset: clouds arrive FPS-ordered),
    as fractions of the pairs."""
    x = points[:, :pairs_of]
    B, N, _ = x.shape
    idx = (torch.cdist(x, x) / 2 * bins).long().clamp_(0, bins - 1) + bins * torch.arange(B).view(B, 1, 1)
    return torch.bincount(idx.flatten(), minlength=B * bins).view(B, bins).to(points.dtype) / N ** 2


def box_extents(points):
    """Extents of the axis-aligned bounding box (3) and of the principal axes (3 spreads, sorted)."""
    centered = points - points.mean(dim=1, keepdim=True)
    spread = torch.linalg.eigvalsh(centered.transpose(1, 2) @ centered / points.shape[1]).clamp_min(0).sqrt()
    return torch.cat([points.amax(1) - points.amin(1), spread.flip(1)], dim=1)


def coordinate_histograms(points, bins=16):
    """Occupancy along each axis: a 16-bin histogram of x, of y (the height profile) and of z."""
    B, N, _ = points.shape
    idx = ((points.clamp(-1, 1) + 1) / 2 * bins).long().clamp_(0, bins - 1) + torch.arange(3) * bins
    idx = idx + 3 * bins * torch.arange(B).view(B, 1, 1)
    return torch.bincount(idx.flatten(), minlength=B * 3 * bins).view(B, 3 * bins).to(points.dtype) / N


DESCRIPTORS = {'distance histogram': distance_histogram, 'box extents': box_extents,
               'coordinate histograms': coordinate_histograms}


# ---------------------------------------------------------------- data
def scan_entries(paths):
    """{name: dataset entry without subset} of the ScanObjectNN-like configs."""
    return {os.path.splitext(os.path.basename(p))[0].replace('ScanObjectNN_', 'scan '): load_yaml(p) for p in paths}


def probe_sets(config, scan_paths):
    """{split name: (train entry, test entry)}: the config's SVM probe split and the scan splits."""
    sets = {'modelnet': (config.dataset.svm_train, config.dataset.svm_test)}
    for name, entry in scan_entries(scan_paths).items():
        sets[name] = tuple({**entry, 'subset': subset} for subset in ('train', 'test'))
    return sets


def load_clouds(entry, npoints, device):
    """The clouds of a dataset entry as the probe sees them: (n, npoints, 3) tensor, labels (n,).

    An evaluation loader keeps each cloud's stored point order (also for a ``subset: train``
    entry), and the farthest point sampling starts from point 0, as in pre-training's probe: the
    clouds, and every score, are reproducible.
    """
    loader = build_dataloader(entry, train=False, total_bs=BATCH, seed=0, num_workers=0)
    flat, labels = extract_features(lambda p: p.reshape(len(p), -1), loader, device, npoints)
    return torch.from_numpy(flat).reshape(len(flat), npoints, 3), labels


def features(fn, clouds, device):
    """``fn`` over the clouds in batches -> numpy (n, D)."""
    with torch.no_grad():
        return torch.cat([fn(c.to(device)).float().cpu() for c in clouds.split(BATCH)]).numpy()


# ---------------------------------------------------------------- probes
def tuned_accuracy(train, test, seed):
    """The tuned protocol (``tools.svm.tuned_svm_accuracy``: standardised features, C from
    ``TUNED_C`` by 5-fold cross-validation on train) -> test accuracy %."""
    return tuned_svm_accuracy(train, test, grid=TUNED_C, seed=seed)['acc']


def encoder_accuracies(model, data, C, seed, device):
    """{split: (probe accuracy %, tuned accuracy %)} of the frozen encoder's global features: the
    probe pre-training logs (raw features, fixed C) and the tuned protocol of the descriptors."""
    model.eval()
    out = {}
    for name, (train, test) in data.items():
        fx = [features(model.global_features, clouds, device) for clouds, _ in (train, test)]
        out[name] = (linear_svm_accuracy(fx[0], train[1], fx[1], test[1], C=C, seed=seed),
                     tuned_accuracy((fx[0], train[1]), (fx[1], test[1]), seed))
    return out


def pretrained_checkpoint(args, seed):
    """``ckpt-last.pth`` of a ``--epochs``-epoch pre-training run with ``seed`` (run here unless one
    finished under ``--exp``), and the run's own last logged probe accuracy (or None)."""
    name = f'difficulty_seed{seed}'
    found = glob.glob(os.path.join(args.exp, '**', name, 'ckpt-last.pth'), recursive=True)
    if found and load_checkpoint(found[0])['epoch'] != args.epochs:
        raise SystemExit(f'demo_difficulty.py: error: {found[0]} is not a finished {args.epochs}-epoch run; '
                         f'remove its folder or use another --exp')
    if not found:
        e = args.epochs
        command = [sys.executable, os.path.join(ROOT, 'main.py'), '--config', args.config, '--exp', args.exp,
                   '--exp_name', name, '--seed', str(seed), '--num_workers', str(args.num_workers),
                   '--val_freq', str(e), '--device', args.device,
                   '--opts', f'max_epoch={e}', f'scheduler.kwargs.epochs={e}', f'svm_probe.freq={e}']
        print('+', ' '.join(command), flush=True)
        subprocess.run(command, check=True)
        found = glob.glob(os.path.join(args.exp, '**', name, 'ckpt-last.pth'), recursive=True)
    logged = None
    with open(os.path.join(os.path.dirname(found[0]), 'metrics.jsonl')) as f:
        for record in map(json.loads, f):
            logged = record.get('svm_acc', logged) if record.get('tag') == 'epoch' else logged
    return found[0], logged


def run_seed(seed, args, config, data, descriptor_features, device, results):
    """Add this seed's accuracies to ``results`` {row: {split: [acc per seed]}}."""
    def add(row, name, acc):
        results.setdefault(row, {}).setdefault(name, []).append(acc)

    for key, feats in descriptor_features.items():
        for name, (train, test) in feats.items():
            add(key, name, tuned_accuracy(train, test, seed))
    torch.manual_seed(seed)
    model = build_model(config.model).to(device)
    encoders = [('random init', model)]
    if args.epochs:
        path, logged = pretrained_checkpoint(args, seed)
        trained = build_model(config.model).to(device)
        load_pretrained(trained, path)
        encoders.append(('pre-trained', trained))
    for row, encoder in encoders:
        for name, (probe, tuned) in encoder_accuracies(encoder, data, config.svm_probe.C, seed, device).items():
            add(row, name, probe)
            add(f'{row} (tuned)', name, tuned)
    if args.epochs:
        print(f"seed {seed}: pre-trained probe on modelnet {results['pre-trained']['modelnet'][-1]:.1f} % "
              f"(the run itself logged {logged})", flush=True)


# ---------------------------------------------------------------- report
def mean_std(values):
    """(mean, sample std) of the seeds' values, as every table of the project reports them."""
    d = describe(values)
    return d['mean'], d['std']


def summarise(results, args):
    """Markdown table of mean ± std per (features, split), and the target checks [(text, holds)]."""
    splits = list(next(iter(results.values())))
    limit = {s: args.max_modelnet if s == 'modelnet' else args.max_scan for s in splits}
    stats = {k: {s: mean_std(v[s]) for s in splits} for k, v in results.items()}
    lines = [f"| features ({len(args.seeds)} seeds, mean ± sample std, %) | " + ' | '.join(splits) + ' |',
             '|---' * (len(splits) + 1) + '|']
    for key, row in stats.items():
        lines.append(f'| {key} | ' + ' | '.join(f'{m:.1f} ± {s:.1f}' for m, s in row.values()) + ' |')
    checks = [(f'{k} <= {limit[s]:g} % on {s}', stats[k][s][0] <= limit[s])
              for k in results if not k.startswith('pre-trained') for s in splits]
    for tag in ('', ' (tuned)'):
        if f'pre-trained{tag}' not in results:
            continue
        gain = {s: np.array(results[f'pre-trained{tag}'][s]) - np.array(results[f'random init{tag}'][s])
                for s in splits}
        lines.append(f'| gain of pre-training{tag} (points) | ' +
                     ' | '.join('{:+.1f} ± {:.1f}'.format(*mean_std(gain[s])) for s in splits) + ' |')
        checks += [(f'gain{tag} >= {args.min_gain:g} points on {s}', gain[s].mean() >= args.min_gain)
                   for s in splits]
    return '\n'.join(lines), checks


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config', default='cfgs/demo/pretrain.yaml', help='pre-training config (its model and '
                   'svm_train/svm_test entries are used)')
    p.add_argument('--scan_configs', nargs='*', default=SCAN_CONFIGS, help='ScanObjectNN-like dataset yamls')
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--epochs', type=int, default=10, help='pre-training epochs (0: skip pre-training)')
    p.add_argument('--exp', default='exps/difficulty', help='root of the pre-training runs')
    p.add_argument('--num_workers', type=int, default=2)
    p.add_argument('--device', default='cpu', choices=['cpu', 'cuda', 'auto'])
    p.add_argument('--max_modelnet', type=float, default=70.0)
    p.add_argument('--max_scan', type=float, default=60.0)
    p.add_argument('--min_gain', type=float, default=10.0)
    p.add_argument('--out', default=None, help='write the per-seed accuracies as JSON here (after each seed)')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    device = torch.device('cuda' if args.device == 'cuda' or (args.device == 'auto' and torch.cuda.is_available())
                          else 'cpu')
    config = load_config(args.config)
    npoints = config.dataset.svm_train.get('npoints') or config.npoints
    data = {name: tuple(load_clouds(e, npoints, device) for e in pair)
            for name, pair in probe_sets(config, args.scan_configs).items()}
    descriptor_features = {key: {name: tuple((features(fn, clouds, device), labels) for clouds, labels in pair)
                                 for name, pair in data.items()}
                           for key, fn in DESCRIPTORS.items()}   # deterministic: computed once
    results = {}
    for seed in args.seeds:
        run_seed(seed, args, config, data, descriptor_features, device, results)
        if args.out:
            with atomic_write(args.out, 'w') as f:
                json.dump({'seeds': args.seeds, 'epochs': args.epochs, 'config': args.config, 'results': results},
                          f, indent=1)
    table, checks = summarise(results, args)
    print(table)
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")


if __name__ == '__main__':
    main()
