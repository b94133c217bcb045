r"""Grid of config overrides × seeds: pre-train each grid point, evaluate it, one comparison table.

    python tools/sweep.py --config cfgs/demo/pretrain.yaml --grid "model.losses.assign.weight=0,1" \
        --grid "model.losses.center.weight=0,1" --seeds 3 --suite demo --exp_name ablation

Each ``--grid key=v1,v2,...`` is one axis (values parsed as YAML, as ``--opts`` parses them;
commas inside brackets or quotes do not split: ``key=[1,2],[3,4]`` has two values); the grid is
the cartesian product of the axes. For every grid point and seed, ``main.py --config X --seed S
--opts key=value ...`` pre-trains into ``<exp>/sweep/<exp_name>/pretrain/``, and the point's
``ckpt-last.pth`` (the last epoch, never a checkpoint picked on test data) is evaluated with
``tools/evaluate.py``'s suite for that seed (``--pretrain_once``: one pre-training, seed 0,
evaluated with every seed). A pre-training that fails is reported in the table. The table
(``results.md`` / ``results.json`` in the sweep folder) has one row per grid point, every cell
mean ± std over the seeds.
"""
import argparse
import itertools
import os
import sys
import time
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import yaml  # noqa: E402

from tools.evaluate import ROOT, SUITES, Encoder, Suite, Unavailable, skip_reason  # noqa: E402
from tools.schedule import command_text, exit_reason, subprocess_runner  # noqa: E402
from utils.config import ConfigError, load_config  # noqa: E402
from utils.parser import experiment_dir  # noqa: E402


def split_values(text):
    """'0,1,[2,3]' -> ['0', '1', '[2,3]']: split on commas outside brackets, braces and quotes."""
    values, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in '"\'':
            quote = ch
        elif ch in '[{(':
            depth += 1
        elif ch in ']})':
            depth -= 1
        elif ch == ',' and depth == 0:
            values.append(text[start:i].strip())
            start = i + 1
    values.append(text[start:].strip())
    if quote or depth:
        raise ValueError(f"--grid '{text}': unbalanced brackets or quotes")
    return values


def parse_axis(spec):
    """``'a.b=0,1'`` -> ('a.b', [('0', 0), ('1', 1)]): each value as text (for --opts) and as YAML."""
    key, sep, rest = spec.partition('=')
    key = key.strip()
    if not sep or not key or any(not part for part in key.split('.')):
        raise ValueError(f"--grid '{spec}': expected key.sub=value1,value2,...")
    texts = split_values(rest)
    if any(t == '' for t in texts):
        raise ValueError(f"--grid '{spec}': empty value")
    try:
        return key, [(t, yaml.safe_load(t)) for t in texts]
    except yaml.YAMLError as e:
        raise ValueError(f"--grid '{spec}': a value is not valid YAML ({e.problem})") from None


def parse_grid(specs):
    """The cartesian product of the axes: a list of points, each a list of (key, text, value).
    A key given twice is an error."""
    axes = [parse_axis(s) for s in specs]
    keys = [k for k, _ in axes]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ValueError(f"--grid: key {', '.join(twice)} given more than once")
    return [[(key, text, value) for key, (text, value) in zip(keys, combo)]
            for combo in itertools.product(*[values for _, values in axes])]


def point_label(point):
    """A short row name: each key by its last two components ('assign.weight=0, center.weight=1'),
    the full key where two would collide; the baseline (no axes) is 'config'."""
    if not point:
        return 'config'
    short = ['.'.join(k.split('.')[-2:]) for k, _, _ in point]
    names = [s if short.count(s) == 1 else k for s, (k, _, _) in zip(short, point)]
    return ', '.join(f'{n}={t}' for n, (_, t, _) in zip(names, point))


def pretrain_command(config, exp, exp_name, seed, opts, python=sys.executable, device='auto', num_workers=2,
                     nproc=1, extra=()):
    """main.py pre-training argv (under torchrun when ``nproc`` > 1; ``extra``: more main.py flags)."""
    argv = [python] if nproc == 1 else [python, '-m', 'torch.distributed.run', f'--nproc_per_node={nproc}']
    argv += ['main.py', '--config', config, '--exp', exp, '--exp_name', exp_name, '--seed', str(seed),
             '--device', device, '--num_workers', str(num_workers)] + (['--launcher', 'pytorch'] if nproc > 1 else [])
    argv += list(extra)
    return argv + (['--opts'] + list(opts) if opts else [])


def pretrain(config, exp, exp_name, seed, opts, runner, log_path, cwd=ROOT, dry_run=False, log=print, env=None,
             **kw):
    """Pre-train and return the run's ckpt-last.pth path, or Unavailable(reason). A finished run
    (its ``ckpt-epoch-<max_epoch>.pth`` exists) is reused; an interrupted one (only ckpt-last.pth)
    continues with ``--resume``. With ``dry_run`` the command is printed only. ``env``: variables
    added to the run's environment (``tools.schedule.thread_env``)."""
    folder = experiment_dir(SimpleNamespace(config=config, exp=exp, exp_name=exp_name))
    ckpt = os.path.join(folder, 'ckpt-last.pth')
    argv = pretrain_command(config, exp, exp_name, seed, opts, **kw)
    try:
        epochs = load_config(os.path.join(cwd, config), opts).max_epoch
    except (ConfigError, AttributeError, KeyError) as e:
        return Unavailable(f'pre-training config {config}: {e}')
    if os.path.isfile(os.path.join(cwd, folder, f'ckpt-epoch-{epochs:03d}.pth')):
        log(f'  reusing {ckpt} (pre-trained before: {epochs} epochs)')
        return ckpt
    if os.path.isfile(os.path.join(cwd, ckpt)):
        argv.insert(argv.index('--opts') if '--opts' in argv else len(argv), '--resume')
    log('  $ ' + command_text(argv, env))
    if dry_run:
        return ckpt
    start = time.time()
    rc = runner(argv, log_path, env=env)
    if rc != 0 or not os.path.isfile(os.path.join(cwd, ckpt)):
        reason = f'pre-training failed ({exit_reason(rc, log_path)})'
        log(f'    {reason}')
        return Unavailable(reason)
    log(f'    pre-trained in {time.time() - start:.0f} s: {ckpt}')
    return ckpt


def run_sweep(config, grid, seeds, suite, folder, runner=subprocess_runner, cwd=ROOT, pretrain_once=False,
              dry_run=False, log=print, **kw):
    """Pre-train every grid point (× seeds) and evaluate them all in one suite; returns the Suite."""
    points = parse_grid(grid)
    reason = skip_reason(config, cwd)
    if reason:
        raise SystemExit(f'sweep.py: error: cannot pre-train: {reason}')
    encoders = []
    for i, point in enumerate(points):
        opts = [f'{k}={t}' for k, t, _ in point]
        label = point_label(point)
        log(f'grid point {i + 1}/{len(points)}: {label}')
        ckpts = {}
        for seed in seeds:
            if pretrain_once and seed != seeds[0]:
                ckpts[seed] = ckpts[seeds[0]]
                continue
            name = f'p{i}-s{seed}'
            ckpts[seed] = pretrain(config, os.path.join(folder, 'pretrain'), name, seed, opts, runner,
                                   os.path.join(cwd, folder, 'logs', f'pretrain-{name}.log'), cwd, dry_run, log, **kw)
        encoders.append(Encoder(label, ckpts))
    notes = [f'sweep of `{config}` over {len(points)} grid points: ' + ' × '.join(f'`{g}`' for g in grid),
             'each row: pre-trained with its overrides ('
             + ('once, seed 0, evaluated with every seed' if pretrain_once else 'one pre-training per seed')
             + '), ckpt-last.pth (last epoch) evaluated']
    ev = Suite(suite, encoders, seeds, folder, runner=runner, cwd=cwd, dry_run=dry_run, log=log,
               title=f'Sweep `{os.path.basename(folder)}`', notes=notes, **kw)
    ev.run_all()
    return ev


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config', required=True, help='pre-training config')
    p.add_argument('--grid', action='append', default=[], metavar='KEY=V1,V2,...',
                   help='one axis of the grid (repeat for more axes; values parsed as YAML)')
    p.add_argument('--seeds', type=int, default=3, help='seeds 0..N-1')
    p.add_argument('--suite', choices=list(SUITES), default='demo')
    p.add_argument('--pretrain_once', action='store_true', help='pre-train once (seed 0) per grid point')
    p.add_argument('--exp_name', default='sweep', help='folder name under <exp>/sweep/')
    p.add_argument('--exp', default='exps')
    p.add_argument('--device', choices=['auto', 'cpu', 'cuda'], default='auto')
    p.add_argument('--num_workers', type=int, default=2)
    p.add_argument('--nproc', type=int, default=1, help='processes per run: > 1 starts each run under torchrun')
    p.add_argument('--dry_run', action='store_true', help='print the commands, run nothing')
    args = p.parse_args(argv)
    if args.seeds < 1 or args.nproc < 1:
        p.error('--seeds and --nproc must be >= 1')
    try:
        parse_grid(args.grid)
    except ValueError as e:
        p.error(str(e))
    return args


def main(argv=None, runner=subprocess_runner):
    args = parse_args(argv)
    folder = os.path.join(args.exp, 'sweep', args.exp_name)
    suite = run_sweep(args.config, args.grid, list(range(args.seeds)), args.suite, folder, runner=runner,
                      pretrain_once=args.pretrain_once, dry_run=args.dry_run, device=args.device,
                      num_workers=args.num_workers, nproc=args.nproc)
    if not args.dry_run:
        print('\n' + suite.markdown())
        print(f'wrote {os.path.join(folder, "results.md")} and results.json')
    return suite


if __name__ == '__main__':
    main()
