"""Every downstream protocol from pre-trained checkpoints, over seeds: one table, mean ± std.

    python tools/evaluate.py --ckpts exps/pretrain/cfgs/maskclu/ckpt-last.pth --suite full --seeds 3
    python tools/evaluate.py --ckpts maskclu=a.pth pointmae=b.pth random --suite quick --exp_name demo
    python tools/evaluate.py --ckpts a.pth --suite demo --dry_run          # print the commands only

An orchestrator over the project's commands: each (encoder, protocol, seed) is one
``main.py`` / ``trainpartseg.py`` process with its own experiment folder under
``<exp>/evaluate/<exp_name>/runs/``, and its numbers are read back from the ``results.json``
that run writes (``tools.suites.RESULT_KEYS`` says which keys). Suites are data
(``tools.suites.SUITES``: one row per run of a protocol: config, flags, the columns it feeds).
``--jobs N`` runs N independent runs at once (a run waits for the run it ``needs``), each with
CPUs / N threads (``tools/schedule.py``; default auto: 2 on a CPU with >= 2 cores, 1 on CUDA).
Before a protocol runs, its config's dataset folders are checked; a missing one skips the
protocol with a line saying which folder and why. A run that fails (non-zero exit, no
``results.json``, no value) is reported in the table and under "Skipped and failed runs",
never dropped. ``--ckpts random`` is the random-init
encoder baseline: ``tools/init_checkpoint.py`` writes the suite's pre-training model at
initialisation (one per seed) and it goes through the same commands as a pre-trained checkpoint.

Writes ``results.md`` (table in the papers' layout, protocol details, problems) and
``results.json`` (every run record, the aggregated cells, the protocols) into
``<exp>/evaluate/<exp_name>/``, atomically, after every run (an interrupted suite keeps what
it measured; ``--reuse`` then takes the finished runs' ``results.json`` instead of rerunning).
"""
import argparse
import bisect
import json
import os
import re
import sys
import threading
import time
from functools import partial
from types import SimpleNamespace
from typing import NamedTuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools import schedule, suite_stats  # noqa: E402
from tools.suites import RESULT_KEYS, SUITES  # noqa: E402
from utils.config import ConfigError, load_config  # noqa: E402
from utils.io import atomic_write  # noqa: E402
from utils.parser import experiment_dir  # noqa: E402

ROOT = schedule.ROOT
RANDOM = 'random'


# ------------------------------------------------------------------ encoders, configs, folders

class Unavailable(NamedTuple):
    """A checkpoint that could not be made (e.g. its pre-training failed): its runs fail with ``reason``."""
    reason: str


class Encoder(NamedTuple):
    """A row of the table: ``ckpt`` is a path, ``RANDOM``, or a dict seed -> path or Unavailable."""
    label: str
    ckpt: object

    def checkpoint(self, seed):
        return self.ckpt[seed] if isinstance(self.ckpt, dict) else self.ckpt


def slug(label):
    """A row label as a folder-name part: runs of characters other than letters, digits and ._+-
    become '_' ('assign.weight=0, center.weight=1' -> 'assign.weight_0_center.weight_1')."""
    return re.sub(r'[^A-Za-z0-9._+-]+', '_', label).strip('_') or 'encoder'


def parse_encoders(items):
    """``['name=path', 'path', 'random']`` -> [Encoder] (an existing file is a path even with a '=');
    a path's label is its experiment folder's name (``exps/pretrain/cfgs/maskclu/ckpt-last.pth`` ->
    maskclu); labels are made unique."""
    encoders, labels = [], set()
    for item in items:
        plain = item == RANDOM or os.path.isfile(item) or '=' not in item   # 'lr=0.1/ckpt.pth' is a path
        label, path = ('', item) if plain else item.split('=', 1)
        if not label:
            label = RANDOM if path == RANDOM else (os.path.basename(os.path.dirname(os.path.abspath(path)))
                                                   or os.path.splitext(os.path.basename(path))[0])
        if path != RANDOM and not os.path.isfile(path):
            raise SystemExit(f'evaluate.py: error: --ckpts {path}: no such file')
        unique, i = label, 2
        while unique in labels:
            unique, i = f'{label}-{i}', i + 1
        labels.add(unique)
        encoders.append(Encoder(unique, path))
    return encoders


def dataset_paths(node, where='config'):
    """Every (key path, folder or file) a config's dataset entries point at: the DATA_PATH, ROOT
    and PC_PATH of any mapping with a NAME, anywhere in ``node``."""
    found = []
    if isinstance(node, dict):
        if 'NAME' in node:
            found += [(f'{where}.{k}', node[k]) for k in ('DATA_PATH', 'ROOT', 'PC_PATH') if node.get(k)]
        for key, value in node.items():
            found += dataset_paths(value, f'{where}.{key}')
    return found


def skip_reason(config, cwd=ROOT):
    """Why a protocol cannot run here (config missing, a dataset folder missing), or None."""
    path = os.path.join(cwd, config)
    if not os.path.isfile(path):
        return f'config {config} does not exist'
    try:
        cfg = load_config(path)
    except ConfigError as e:
        return str(e).replace(os.path.join(cwd, ''), '')
    for key, folder in dataset_paths(cfg.to_dict(), os.path.basename(config)):
        if not os.path.exists(os.path.join(cwd, folder)):
            return f'dataset missing: {key} = {folder} does not exist'
    return None


def config_details(config, cwd=ROOT):
    """(points, epochs, votes) of a config (main.py or trainpartseg.py keys); '—' where unknown.
    votes: 'V per cloud × R repeats' from the classification section."""
    try:
        cfg = load_config(os.path.join(cwd, config)).to_dict()
    except (ConfigError, OSError):
        return '—', '—', '—'
    cls = cfg.get('classification') or {}
    votes = f"{cls['votes']} per cloud × {cls.get('vote_repeats', 1)} repeats" if 'votes' in cls else '—'
    return cfg.get('npoints', cfg.get('npoint', '—')), cfg.get('max_epoch', cfg.get('epoch', '—')), votes


def run_folder(run, runs_root, name):
    """The experiment folder a run writes (main.py's layout; trainpartseg.py's <exp>/partseg/<log_dir>)."""
    if run.tool == 'partseg':
        return os.path.join(runs_root, 'partseg', name)
    return experiment_dir(SimpleNamespace(config=run.config, exp=runs_root, exp_name=name))


def build_command(run, ckpt, seed, runs_root, name, needs_folder=None, python=sys.executable,
                  device='auto', num_workers=2, nproc=1):
    """The argv of one run; ``nproc`` > 1 starts it under torchrun (``--launcher pytorch``)."""
    fill = {'ckpt': ckpt, 'needs': needs_folder}
    args = [a.format(**fill) for a in run.args]
    start = [python] if nproc == 1 else [python, '-m', 'torch.distributed.run', f'--nproc_per_node={nproc}']
    common = ['--seed', str(seed), '--device', device, '--num_workers', str(num_workers)]
    if nproc > 1:
        common += ['--launcher', 'pytorch']
    if run.tool == 'partseg':
        return (start + ['trainpartseg.py', '--config', run.config, '--exp', runs_root, '--log_dir', name]
                + common + args)
    return start + ['main.py', '--config', run.config, '--exp', runs_root, '--exp_name', name] + common + args


def random_init_command(config, seed, out, python=sys.executable):
    return [python, 'tools/init_checkpoint.py', '--config', config, '--seed', str(seed), '--out', out]


# ------------------------------------------------------------------ running

def lookup(results, kind):
    """The first of ``RESULT_KEYS[kind]`` present in ``results`` (dotted = nested), or None."""
    for path in RESULT_KEYS[kind]:
        node = results
        for part in path.split('.'):
            if isinstance(node, list):
                node = [row.get(part) if isinstance(row, dict) else None for row in node]
            else:
                node = node.get(part.removesuffix('[]')) if isinstance(node, dict) else None
                if part.endswith('[]') and not isinstance(node, list):
                    node = None
        if node is not None:
            return node
    return None


def read_results(path):
    """The parsed results.json at ``path``, or None when it is missing or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


def finished(results, epochs):
    """Whether a run's results.json is final: the trainer rewrites it every epoch, so a training
    run counts once its ``last_epoch.epoch`` reached ``epochs`` (the config's); others always."""
    last = results.get('last_epoch') if isinstance(results, dict) else None
    if isinstance(last, dict) and isinstance(last.get('epoch'), int) and isinstance(epochs, int):
        return last['epoch'] >= epochs
    return True


def has_checkpoint(folder):
    """Whether a run folder (or a fold folder in it) holds a ckpt-last.pth to --resume from."""
    return any('ckpt-last.pth' in files for _, _, files in os.walk(folder))


def read_values(run, results):
    """(values, max_values, last_values, missing kinds) of a run's results.json."""
    out, missing = [], []
    for mapping in (run.columns, run.max_columns, run.last_columns):
        values = {}
        for column, kind in mapping.items():
            value = lookup(results, kind)
            if value is None:
                if mapping is run.columns:
                    missing.append(f"{column} (keys {', '.join(RESULT_KEYS[kind])})")
                continue
            values[column] = value
        out.append(values)
    return (*out, missing)


class Suite:
    """Runs a suite for a list of encoders over seeds; ``runner(argv, log_path, env=None) -> exit
    status`` is injectable (tests pass a fake that writes results.json; ``env``: variables to add
    to the environment), ``cwd`` is where the commands run. ``jobs`` (an int or 'auto', see
    ``tools.schedule``): chains of runs at once; ``num_workers`` None: 2 with one job, else 0."""

    def __init__(self, name, encoders, seeds, folder, runner=schedule.subprocess_runner, cwd=ROOT, python=sys.executable,
                 device='auto', num_workers=None, reuse=False, dry_run=False, log=print, title=None, notes=(),
                 nproc=1, jobs=1):
        if name not in SUITES:
            raise SystemExit(f"evaluate.py: error: --suite {name}: choose one of {', '.join(SUITES)}")
        self.name, self.spec = name, SUITES[name]
        self.encoders, self.seeds, self.folder = encoders, list(seeds), folder
        self.runner, self.cwd, self.python = runner, cwd, python
        self.jobs = schedule.resolve_jobs(jobs, device, nproc)
        self.num_workers, self.env = schedule.loader_workers(num_workers, self.jobs), schedule.thread_env(self.jobs)
        self.parallel = 1 if dry_run else self.jobs   # runs really at once (--dry_run prints in order)
        self.device, self.reuse, self.dry_run, self.log = device, reuse, dry_run, log
        self.nproc = nproc
        self.title = title or f'Evaluation suite `{name}`'
        self.notes = list(notes)
        self.records, self._order, self._random, self._protocols = [], [], {}, None
        self._lock, self._random_lock = threading.Lock(), threading.Lock()
        self.runs_root = os.path.join(folder, 'runs')

    def run_log(self, tag):
        """The log of one run: ``log`` itself, or with concurrent runs its lines prefixed '[tag] '."""
        return schedule.tagged(self.log, tag, self.parallel)

    # -- one run
    def execute(self, argv, log_path, folder, epochs=None, resumable=True, log=None):
        """Run (or, with --dry_run, print) ``argv``; returns (status, reason, results dict, argv run).
        With ``reuse``, a finished run's results.json is taken as it is and an unfinished one
        (checkpoints left, results.json short of ``epochs``) continues with ``--resume``."""
        log = log or self.log
        results_path = os.path.join(self.cwd, folder, 'results.json')
        if self.reuse and not self.dry_run:
            done = read_results(results_path)
            if done is not None and finished(done, epochs):
                log(f'    reusing {folder}/results.json')
                return 'ok', '', done, argv
            if resumable and has_checkpoint(os.path.join(self.cwd, folder)):
                argv = argv + ['--resume']
        log('  $ ' + schedule.command_text(argv, self.env))
        if self.dry_run:
            return 'dry_run', '', {}, argv
        rc = self.runner(argv, log_path, env=self.env)
        if rc != 0:
            return 'failed', self.exit_reason(rc, log_path), {}, argv
        try:
            with open(results_path) as f:
                return 'ok', '', json.load(f), argv
        except FileNotFoundError:
            return 'failed', f'the run wrote no {folder}/results.json (log: {self.rel(log_path)})', {}, argv
        except (OSError, json.JSONDecodeError) as e:
            return 'failed', f'{folder}/results.json unreadable: {e}', {}, argv

    def rel(self, path):
        return os.path.relpath(path, self.cwd)

    def exit_reason(self, rc, log_path):
        return schedule.exit_reason(rc, log_path, self.rel(log_path))

    def random_checkpoint(self, seed):
        """(path, error or None) of the random-init checkpoint of ``seed``, written once per suite
        folder by tools/init_checkpoint.py (concurrent runs wait for it)."""
        with self._random_lock:
            if seed not in self._random:
                self._random[seed] = self._write_random(seed)
        return self._random[seed]

    def _write_random(self, seed):
        out = os.path.join(self.folder, 'random_init', f'random-init-seed{seed}.pth')
        if os.path.isfile(os.path.join(self.cwd, out)):
            return out, None
        argv = random_init_command(self.spec['random_config'], seed, out, self.python)
        log = self.run_log(f'random-init-s{seed}')
        log(f'random-init encoder, seed {seed}')
        log('  $ ' + schedule.command_text(argv, self.env))
        if not self.dry_run:
            log_path = os.path.join(self.cwd, self.folder, 'logs', f'random-init-s{seed}.log')
            rc = self.runner(argv, log_path, env=self.env)
            if rc != 0 or not os.path.isfile(os.path.join(self.cwd, out)):
                return out, f'random-init checkpoint: {self.exit_reason(rc, log_path)}'
        return out, None

    def record(self, order, encoder, run, seed, status, reason='', **extra):
        """Add a run's record at its place ``order`` in the suite (whatever order the runs end in)."""
        rec = {'encoder': encoder.label, 'protocol': run.name, 'seed': seed, 'status': status, 'reason': reason,
               'columns': list(run.columns), **extra}
        with self._lock:
            at = bisect.bisect(self._order, order)
            self._order.insert(at, order)
            self.records.insert(at, rec)
        return rec

    def run_all(self):
        """Every (encoder, seed, run), ``jobs`` chains at once (``tools.schedule.chains``: a run with
        the runs that need it, in order; --dry_run: one at a time); the records in that order,
        the results written after each run."""
        skips = {}
        for run in self.spec['runs']:
            if run.config not in skips:
                skips[run.config] = skip_reason(run.config, self.cwd)
        for config, reason in skips.items():
            if reason:
                self.log(f'skipping the protocols of {config}: {reason}')
        self.protocols()   # read once, before any thread
        items = [(e, s, r) for e in self.encoders for s in self.seeds for r in self.spec['runs']]
        groups = schedule.chains([(e.label, s, r.name) for e, s, r in items],
                                 [(e.label, s, r.needs) if r.needs else None for e, s, r in items])
        states = {}   # (encoder label, seed, run name) -> status, for ``needs``
        schedule.run_chains([[partial(self.step, i, *items[i], skips, states, len(items)) for i in group]
                             for group in groups], self.parallel)
        if not self.dry_run:
            self.write()
        return self.records

    def run_name(self, encoder, run, seed):
        return f'{slug(encoder.label)}-{run.name}-s{seed}'

    def step(self, order, encoder, seed, run, skips, states, total):
        """Record run number ``order`` as skipped or failed (a dataset missing, its checkpoint or
        the run it needs failed), or execute it; its status goes into ``states``."""
        key, name = (encoder.label, seed, run.name), self.run_name(encoder, run, seed)
        if skips[run.config]:
            states[key] = self.record(order, encoder, run, seed, 'skipped', skips[run.config])['status']
            return
        ckpt, ckpt_error = encoder.checkpoint(seed), None
        if isinstance(ckpt, Unavailable):
            ckpt_error = ckpt.reason
        elif ckpt == RANDOM:
            ckpt, ckpt_error = self.random_checkpoint(seed)
        needs = states.get((encoder.label, seed, run.needs), 'did not run') if run.needs else 'ok'
        if ckpt_error:
            states[key] = self.record(order, encoder, run, seed, 'failed', ckpt_error)['status']
        elif needs not in ('ok', 'dry_run'):
            states[key] = self.record(order, encoder, run, seed, 'failed' if needs == 'failed' else 'skipped',
                                      f'needs {run.needs}, which {needs}')['status']
        else:
            needed = next((r for r in self.spec['runs'] if r.name == run.needs), None)
            needs_folder = needed and run_folder(needed, self.runs_root, self.run_name(encoder, needed, seed))
            log = self.run_log(name)
            log(f'[{order + 1}/{total}] {encoder.label} / {run.name} / seed {seed}')
            argv = build_command(run, ckpt, seed, self.runs_root, name, needs_folder, self.python, self.device,
                                 self.num_workers, self.nproc)
            states[key] = self.run_one(order, encoder, run, seed, argv, run_folder(run, self.runs_root, name),
                                       name, log)

    def run_one(self, order, encoder, run, seed, argv, folder, name, log):
        """Execute one run, record it, write the outputs; returns its status."""
        start = time.time()
        epochs = next(p['epochs'] for p in self.protocols() if p['name'] == run.name)
        status, reason, results, argv = self.execute(
            argv, os.path.join(self.cwd, self.folder, 'logs', f'{name}.log'), folder, epochs,
            resumable=run.tool == 'main' and '--test' not in run.args and '--svm' not in run.args, log=log)
        if status == 'dry_run':
            return status
        seconds = round(time.time() - start, 1)
        values, max_values, last_values, missing = read_values(run, results)
        if status == 'ok' and missing:
            status, reason = 'failed', f"{folder}/results.json has no {'; '.join(missing)}"
        partial_folds = [f'{c}: {v.count(None)} of {len(v)} folds failed (log: {folder})'
                         for c, v in values.items() if isinstance(v, list) and None in v]
        if status == 'ok' and partial_folds:
            reason = '; '.join(partial_folds)
        self.record(order, encoder, run, seed, status, reason, values=values, max_values=max_values,
                    last_values=last_values, folder=folder, command=argv, seconds=seconds,
                    **({'env': self.env} if self.env else {}))
        shown = ', '.join(f'{k} {suite_stats.describe(suite_stats.samples(v))["mean"]:.2f}'
                          + (f' (mean of {len(suite_stats.samples(v))} folds)' if isinstance(v, list) else '')
                          for k, v in values.items() if suite_stats.samples(v))
        log(f'    {status} in {seconds:.0f} s' + (f': {shown}' if shown else '') + (f': {reason}' if reason else ''))
        self.write()
        return status

    # -- outputs
    def protocols(self):
        """The protocol details (read from the configs once per suite)."""
        if self._protocols is None:
            self._protocols = self._protocol_rows()
        return self._protocols

    def _protocol_rows(self):
        rows = []
        for run in self.spec['runs']:
            points, epochs, votes = config_details(run.config, self.cwd)
            trains = run.tool == 'partseg' or not {'--svm', '--test'} & set(run.args)
            rows.append({'name': run.name, 'columns': list(run.columns), 'config': run.config, 'points': points,
                         'votes': run.votes.format(config=votes), 'epochs': epochs if trains else '—',
                         'selection': run.selection, 'seeds': self.seeds, 'statistic': run.statistic})
        return rows

    def markdown(self):
        notes = self.notes + [f"suite `{self.name}`: {self.spec['about']}",
                              f"encoders: {', '.join(f'{e.label} ({describe_ckpt(e.ckpt)})' for e in self.encoders)}"]
        text = suite_stats.render_markdown(self.title, self.records, self.protocols(), notes)
        last = [r for r in self.records if r.get('last_values')]
        if last:
            header, rows = suite_stats.results_table(suite_stats.aggregate(
                [{**r, 'values': r['last_values'], 'max_values': {}, 'columns': list(r['last_values'])} for r in last]))
            text += ('\n## Last epoch (same runs; the table above reports the best epoch)\n\n'
                     + suite_stats.markdown_table(header, rows) + '\n')
        return text

    def write(self):
        """``results.md`` and ``results.json`` into the suite folder, atomically."""
        folder = os.path.join(self.cwd, self.folder)
        with self._lock:   # one writer at a time, the records as they stand
            cells = suite_stats.aggregate(self.records)
            payload = {'suite': self.name, 'seeds': self.seeds, 'std': 'sample (n - 1)',
                       'encoders': {e.label: e.ckpt for e in self.encoders}, 'command': sys.argv,
                       'protocols': self.protocols(), 'cells': cells, 'runs': self.records}
            with atomic_write(os.path.join(folder, 'results.json'), 'w') as f:
                json.dump(payload, f, indent=1, default=str)
            with atomic_write(os.path.join(folder, 'results.md'), 'w') as f:
                f.write(self.markdown())
        return os.path.join(folder, 'results.md')


def describe_ckpt(ckpt):
    if ckpt == RANDOM:
        return 'random init, one per seed'
    if isinstance(ckpt, dict):
        return ', '.join(f'seed {s}: {getattr(p, "reason", p)}' for s, p in ckpt.items())
    return ckpt


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--ckpts', nargs='+', required=True,
                   help="pre-trained checkpoints ('name=path' to label a row), or 'random' (random-init encoder)")
    p.add_argument('--suite', choices=list(SUITES), default='demo')
    p.add_argument('--seeds', type=int, default=None, help='seeds 0..N-1 (default: 1 for quick, 3 otherwise)')
    p.add_argument('--exp_name', default=None, help='suite folder name under <exp>/evaluate/ (default: the suite)')
    p.add_argument('--exp', default='exps', help='root of the experiment folders')
    p.add_argument('--device', choices=['auto', 'cpu', 'cuda'], default='auto')
    p.add_argument('--num_workers', type=int, default=None,
                   help="data-loader workers of each run (default: 2 with --jobs 1, else 0)")
    p.add_argument('--nproc', type=int, default=1, help='processes per run: > 1 starts each run under torchrun')
    schedule.add_jobs_argument(p)
    p.add_argument('--reuse', action='store_true', help="take a run's existing results.json instead of rerunning it")
    p.add_argument('--dry_run', action='store_true', help='print the commands, run nothing')
    args = p.parse_args(argv)
    if args.seeds is None:
        args.seeds = 1 if args.suite == 'quick' else 3
    if args.seeds < 1 or args.nproc < 1:
        p.error('--seeds and --nproc must be >= 1')
    return args


def main(argv=None, runner=schedule.subprocess_runner):
    args = parse_args(argv)
    folder = os.path.join(args.exp, 'evaluate', args.exp_name or args.suite)
    suite = Suite(args.suite, parse_encoders(args.ckpts), range(args.seeds), folder, runner=runner,
                  device=args.device, num_workers=args.num_workers, reuse=args.reuse, dry_run=args.dry_run,
                  nproc=args.nproc, jobs=args.jobs)
    suite.run_all()
    if args.dry_run:
        return suite
    print('\n' + suite.markdown())
    print(f'wrote {os.path.join(folder, "results.md")} and results.json')
    return suite


if __name__ == '__main__':
    main()
