"""The whole pipeline on the demo data, on a CPU, in one command (``make demo``).

    python tools/demo.py [--exp_name demo] [--jobs auto] [--num_workers N] [--dry_run]

Steps, each a project command run as its own process (``tools/evaluate.py``'s runner):

1. the demo data (``tools/make_demo_data.py --out data/demo``) when any demo dataset folder is missing;
2. pre-training of the default objective (``cfgs/demo/quick/pretrain.yaml``) and of the Point-MAE
   baseline (``cfgs/demo/quick/pretrain_pointmae.yaml``), small models, few epochs;
3. the ``quick`` suite of ``tools/evaluate.py`` on both and on a random-init encoder;
4. ``report.md`` in ``<exp>/demo/<exp_name>/``: the results table, the protocols, the loss curves
   of both pre-trainings, and the figures of ``tools/visualize.py`` (cluster assignment, PCA of
   the per-point features, the Point-MAE reconstruction, t-SNE of global features); the results
   table is also printed.

``--jobs`` (default auto: 2 on a CPU with >= 2 cores, 1 on CUDA) runs the two pre-trainings, the
suite's independent runs and the figures that many at a time, the CPUs split between them
(``tools/schedule.py``). A step already finished in the same folder (a pre-training's
``ckpt-last.pth``, a run's ``results.json``) is reused, so an interrupted demo continues where it
stopped; a new ``--exp_name`` starts afresh. Demo-data numbers are not benchmark results.
"""
import argparse
import os
import sys
import time
from functools import partial

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools import schedule  # noqa: E402
from tools.evaluate import ROOT, RANDOM, Encoder, Suite, skip_reason  # noqa: E402
from tools.sweep import pretrain  # noqa: E402

DATA_CONFIGS = 'cfgs/demo/dataset_configs'
PRETRAIN = (('maskclu', 'cfgs/demo/quick/pretrain.yaml'), ('pointmae', 'cfgs/demo/quick/pretrain_pointmae.yaml'))
PRETRAIN_VAL_FREQ = 100   # validation loss of the pre-trainings: at the last epoch only (saves CPU time)
DEMO_CLOUD_LIST = 'data/demo/ShapeNet55-34/ShapeNet-55/test.txt'
DEMO_CLOUDS = 'data/demo/ShapeNet55-34/shapenet_pc'
# (figure file, caption, encoder, tools/visualize.py arguments); {cloud} is a demo ShapeNet test cloud.
FIGURES = (
    ('clusters_maskclu.png', 'MaskClu: points coloured by the dense head\'s cluster assignment', 'maskclu',
     ('--kind', 'clusters', '--input', '{cloud}', '--html')),
    ('pca_maskclu.png', 'MaskClu: 3-component PCA of the per-point features (as the paper\'s Figure 5)', 'maskclu',
     ('--kind', 'pca', '--input', '{cloud}', '--html')),
    ('pca_pointmae.png', 'Point-MAE: 3-component PCA of the per-point features', 'pointmae',
     ('--kind', 'pca', '--input', '{cloud}')),
    ('reconstruction_pointmae.png', 'Point-MAE: masked patches and their reconstruction', 'pointmae',
     ('--kind', 'reconstruction', '--input', '{cloud}', '--html')),
    ('tsne_maskclu.png', 'MaskClu: t-SNE of global features of the demo ModelNet test split, by class', 'maskclu',
     ('--kind', 'tsne', '--input', f'{DATA_CONFIGS}/ModelNet40.yaml', '--subset', 'test', '--max_shapes', '250')),
)


def missing_demo_data(cwd=ROOT):
    """Reasons the demo data is incomplete (one per demo dataset config), empty when complete."""
    configs = sorted(f for f in os.listdir(os.path.join(cwd, DATA_CONFIGS)) if f.endswith('.yaml'))
    return [r for r in (skip_reason(f'{DATA_CONFIGS}/{c}', cwd) for c in configs) if r]


def demo_cloud(cwd=ROOT):
    """The first cloud of the demo ShapeNet-55 test list (a fixed input for the figures)."""
    with open(os.path.join(cwd, DEMO_CLOUD_LIST)) as f:
        return os.path.join(DEMO_CLOUDS, f.readline().strip())


def step(argv, log_path, runner, log, dry_run, env=None):
    """Run one command (``env``: variables added to its environment); returns (ok, reason)."""
    log('  $ ' + schedule.command_text(argv, env))
    if dry_run:
        return True, ''
    rc = runner(argv, log_path, env=env)
    return rc == 0, '' if rc == 0 else schedule.exit_reason(rc, log_path)


def figures(folder, ckpts, runner, log, python, cwd=ROOT, dry_run=False, jobs=1, env=None):
    """Loss curves and the tools/visualize.py figures (``jobs`` at once); returns [(caption, path)],
    a failed figure logged (report.md then shows it as missing)."""
    from tools.plots import plot_loss_curves
    out = []
    for name, ckpt in ckpts.items():
        metrics = os.path.join(cwd, os.path.dirname(ckpt), 'metrics.jsonl') if isinstance(ckpt, str) else ''
        path = os.path.join(cwd, folder, 'figures', f'loss_{name}.png')
        out.append((f'{name}: pre-training loss curves per term', path))
        if dry_run or not os.path.isfile(metrics):
            continue
        try:
            plot_loss_curves(metrics, path, title=f'{name} pre-training')
        except (OSError, ValueError) as e:
            log(f'  loss curves of {name}: {e}')
    have_list = os.path.isfile(os.path.join(cwd, DEMO_CLOUD_LIST))
    cloud = demo_cloud(cwd) if have_list else f'{DEMO_CLOUDS}/<first test cloud>'

    def draw(filename, argv):
        flog = schedule.tagged(log, f'figure-{filename}', jobs)
        ok, reason = step(argv, os.path.join(cwd, folder, 'logs', f'figure-{filename}.log'), runner, flog, dry_run,
                          env)
        if not ok:
            flog(f'    figure {filename} failed: {reason}')
    draws = []
    for filename, caption, encoder, args in FIGURES:
        path = os.path.join(folder, 'figures', filename)
        out.append((caption, os.path.join(cwd, path)))
        ckpt = ckpts.get(encoder)
        if not isinstance(ckpt, str):
            log(f'  no figure {filename}: the {encoder} checkpoint is missing')
            continue
        argv = [python, 'tools/visualize.py', '--ckpts', ckpt, '--out', path] + [
            a.format(cloud=cloud) for a in args]
        draws.append([partial(draw, filename, argv)])
    schedule.run_chains(draws, jobs)
    return out


def pretrain_all(folder, runner, log, times, cwd=ROOT, dry_run=False, jobs=1, **kw):
    """The PRETRAIN pre-trainings, ``jobs`` at once; returns {name: ckpt-last.pth path or
    Unavailable} and puts each one's wall time into ``times``, both in PRETRAIN's order.
    ``kw``: tools/sweep.py's ``pretrain`` (python, device, num_workers, env)."""
    ckpts, seconds = {}, {}

    def one(name, config):
        began, plog = time.time(), schedule.tagged(log, f'pretrain-{name}', jobs)
        plog(f'== pre-training {name} ({config})')
        ckpts[name] = pretrain(config, os.path.join(folder, 'pretrain'), name, 0, [], runner,
                               os.path.join(cwd, folder, 'logs', f'pretrain-{name}.log'), cwd, dry_run, plog,
                               extra=('--val_freq', str(PRETRAIN_VAL_FREQ)), **kw)
        seconds[name] = time.time() - began
    schedule.run_chains([[partial(one, name, config)] for name, config in PRETRAIN], jobs)
    times.update({f'pre-training {name}': seconds[name] for name, _ in PRETRAIN if name in seconds})
    return {name: ckpts[name] for name, _ in PRETRAIN}


def run_demo(exp='exps', exp_name='demo', runner=schedule.subprocess_runner, cwd=ROOT, python=sys.executable,
             device='auto', num_workers=None, dry_run=False, log=print, jobs=1):
    """The four steps, ``jobs`` (an int or 'auto': tools/schedule.py) commands at once;
    ``num_workers`` None: 2 with one job, else 0. Returns (suite, report path or None)."""
    from tools.report import write_report
    start = time.time()
    folder = os.path.join(exp, 'demo', exp_name)
    jobs = schedule.resolve_jobs(jobs, device)
    num_workers, env, parallel = schedule.loader_workers(num_workers, jobs), schedule.thread_env(jobs), jobs
    if dry_run:
        parallel = 1   # print the commands in order
    log(f'== MaskClu demo in {folder} (finished steps there are reused; --jobs {jobs})')
    missing = missing_demo_data(cwd)
    if missing:
        log(f'== demo data: {missing[0]}{" (and more)" if len(missing) > 1 else ""}; generating it')
        ok, reason = step([python, 'tools/make_demo_data.py', '--out', 'data/demo'],
                          os.path.join(cwd, folder, 'logs', 'make_demo_data.log'), runner, log, dry_run)
        if not ok:
            raise SystemExit(f'demo.py: error: the demo data could not be written: {reason}')
    times, began = {'demo data': time.time() - start}, time.time()
    ckpts = pretrain_all(folder, runner, log, times, cwd, dry_run, parallel, python=python, device=device,
                         num_workers=num_workers, env=env)
    if parallel > 1:
        times['pre-trainings side by side'] = time.time() - began
    log('== quick evaluation suite: pre-trained encoders and a random-init encoder')
    encoders = [Encoder(name, {0: ckpt}) for name, ckpt in ckpts.items()] + [Encoder('random init', RANDOM)]
    suite = Suite('quick', encoders, [0], folder, runner=runner, cwd=cwd, python=python, device=device,
                  num_workers=num_workers, reuse=True, dry_run=dry_run, log=log, title='MaskClu demo (quick suite)',
                  notes=['synthetic demo data (tools/make_demo_data.py): these are not benchmark results'], jobs=jobs)
    began = time.time()
    suite.run_all()
    times['quick suite'] = time.time() - began
    log('== figures')
    began = time.time()
    figs = figures(folder, ckpts, runner, log, python, cwd, dry_run, parallel, env)
    times['figures'] = time.time() - began
    if dry_run:
        return suite, None
    minutes = (time.time() - start) / 60
    text = suite.markdown()
    report = write_report(os.path.join(cwd, folder), 'MaskClu demo report', figures=figs,
                          sections=[text.split('\n', 1)[1]],   # the suite's results.md without its title
                          notes=[f'wall time of this demo: {minutes:.1f} min ('
                                 + ', '.join(f'{k} {v / 60:.1f} min' for k, v in times.items())
                                 + f'; --jobs {jobs}; steps reused from an earlier run take no time)',
                                 'the same results: results.md / results.json beside this file'])
    log('\n' + text)
    log(f'== demo finished in {minutes:.1f} min: {os.path.join(folder, "report.md")}')
    return suite, report


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--exp_name', default='demo', help='folder under <exp>/demo/ (a new name starts afresh)')
    p.add_argument('--exp', default='exps')
    p.add_argument('--device', choices=['auto', 'cpu', 'cuda'], default='auto')
    p.add_argument('--num_workers', type=int, default=None,
                   help='data-loader workers of each run (default: 2 with --jobs 1, else 0)')
    schedule.add_jobs_argument(p)
    p.add_argument('--dry_run', action='store_true', help='print the commands, run nothing')
    return p.parse_args(argv)


def main(argv=None, runner=schedule.subprocess_runner):
    args = parse_args(argv)
    return run_demo(args.exp, args.exp_name, runner, device=args.device, num_workers=args.num_workers,
                    dry_run=args.dry_run, jobs=args.jobs)


if __name__ == '__main__':
    main()
