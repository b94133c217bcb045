"""``--jobs``: independent chains of runs side by side (tools/schedule.py) in the evaluation suite
and the demo, driven through the fake runner of tests/suite_fixtures.py."""
import json
import os
import shlex
import sys
import threading
import time

import pytest

from suite_fixtures import FakeRunner, demo_project, flag, project  # noqa: F401 (project: fixture)
from tools import demo, evaluate, schedule


class Overlapping(FakeRunner):
    """A FakeRunner whose calls that ``held(argv)`` selects wait until two of them are in flight
    (at most ``wait`` s: a serial schedule fails the test instead of hanging); ``most``: the most
    held calls seen at once. ``delay(argv)`` s of sleep before a call does its work; ``ended``:
    the argvs in the order their calls returned."""

    def __init__(self, cwd, held=lambda argv: True, delay=lambda argv: 0.0, wait=10.0, **kw):
        super().__init__(cwd, **kw)
        self.held, self.delay, self.wait = held, delay, wait
        self.lock, self.paired, self.running, self.most, self.ended = threading.Lock(), threading.Event(), 0, 0, []

    def __call__(self, argv, log_path, env=None):
        held = self.held(argv)
        if held:
            with self.lock:
                self.running += 1
                self.most = max(self.most, self.running)
                if self.running >= 2:
                    self.paired.set()
            if not self.paired.wait(self.wait):
                self.paired.set()          # never paired: let the rest run, the test fails on ``most``
        try:
            time.sleep(self.delay(argv))
            return super().__call__(argv, log_path, env)
        finally:
            if held:
                with self.lock:
                    self.running -= 1
            self.ended.append(argv)


def without_times(records, folder):
    """The records as they would be written, less what differs between two identical suites
    (the wall time; the suite folder in paths)."""
    return json.loads(json.dumps([{k: v for k, v in r.items() if k != 'seconds'} for r in records])
                      .replace(folder, '<suite>'))


def test_chains_group_each_run_with_the_runs_that_need_it():
    keys = ['a', 'b', 'c', 'd', 'e', 'f']
    needs = [None, 'a', None, 'b', 'zzz', 'c']   # a <- b <- d (transitive); c <- f; e's need is absent
    assert schedule.chains(keys, needs) == [[0, 1, 3], [2, 5], [4]]
    assert schedule.chains([], []) == []
    runs = evaluate.SUITES['quick']['runs']
    groups = schedule.chains([r.name for r in runs], [r.needs for r in runs])
    assert groups[0] == [0, 1] and [runs[i].name for i in groups[0]] == ['modelnet_full', 'modelnet_vote']
    assert len(groups) == len(runs) - 1 and all(len(g) == 1 for g in groups[1:])


def test_thread_budget_workers_and_jobs_auto(monkeypatch):
    assert schedule.thread_env(2, cpus=2, environ={}) == {'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}
    assert schedule.thread_env(2, cpus=16, environ={}) == {'OMP_NUM_THREADS': '8', 'MKL_NUM_THREADS': '8'}
    assert schedule.thread_env(4, cpus=2, environ={}) == {'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}
    assert schedule.thread_env(2, cpus=2, environ={'MKL_NUM_THREADS': '3'}) == {'OMP_NUM_THREADS': '1'}
    assert schedule.thread_env(2, cpus=2, environ={'OMP_NUM_THREADS': '2'}) is None   # the user's choice
    assert schedule.thread_env(1, cpus=2, environ={}) is None                           # one job: as before
    assert [schedule.loader_workers(None, 1), schedule.loader_workers(None, 2), schedule.loader_workers(3, 2)] \
        == [2, 0, 3]
    assert schedule.resolve_jobs('auto', 'cpu', cpus=2) == 2 and schedule.resolve_jobs('auto', 'cpu', cpus=1) == 1
    assert schedule.resolve_jobs('auto', 'cuda', cpus=8) == 1 and schedule.resolve_jobs('auto', 'cpu', 4, 8) == 1
    monkeypatch.setattr('torch.cuda.is_available', lambda: True)
    assert schedule.resolve_jobs('auto', 'auto', cpus=8) == 1 and schedule.resolve_jobs(3, 'auto') == 3
    with pytest.raises(ValueError, match='jobs must be >= 1'):
        schedule.resolve_jobs(0)
    assert evaluate.parse_args(['--ckpts', 'a.pth']).jobs == 'auto'
    assert evaluate.parse_args(['--ckpts', 'a.pth', '--jobs', '3']).jobs == 3
    assert demo.parse_args(['--jobs', '2']).jobs == 2 and demo.parse_args([]).num_workers is None
    for bad in ('0', 'two', '-1'):
        with pytest.raises(SystemExit):
            evaluate.parse_args(['--ckpts', 'a.pth', '--jobs', bad])


def test_jobs_run_chains_at_once_in_the_suites_order(project, monkeypatch):
    """Two runs in flight at once, never more than --jobs; modelnet_vote after the modelnet_full
    it needs; the random-init checkpoint written before any run reads it; records, results.json
    and results.md the same as with one job, although the runs end in another order."""
    def trains(argv):
        return argv[1] in ('main.py', 'trainpartseg.py')

    def reads_random(argv):
        return 'random-init' in flag(argv, '--ckpts', '')
    monkeypatch.setenv('OMP_NUM_THREADS', '1')        # the same commands and records with 1 and 2 jobs
    outputs = {}
    for jobs in (1, 2):
        def slow(argv):   # modelnet_full, the head of the suite's first chain, ends late
            return 0.2 if jobs == 2 and '--finetune_model' in argv and 'modelnet' in flag(argv, '--config') else 0.0
        runner = Overlapping(project, held=trains if jobs == 2 else lambda argv: False, delay=slow)
        seen = []   # (vote's needed results.json there?, random-init checkpoint there?) at each call
        start = runner.__call__

        def watched(argv, log_path, env=None, start=start):
            if '--test' in argv:
                seen.append(('vote', os.path.isfile(os.path.join(project, os.path.dirname(flag(argv, '--ckpts')),
                                                                 'results.json'))))
            if reads_random(argv):
                seen.append(('random', os.path.isfile(os.path.join(project, flag(argv, '--ckpts')))))
            return start(argv, log_path, env)
        folder = f'exps/evaluate/jobs{jobs}'
        suite = evaluate.Suite('test', [evaluate.Encoder('m', 'pre.pth'), evaluate.Encoder('r', 'random')], [0, 1],
                               folder, runner=watched, cwd=project, python='py', log=lambda *_: None, jobs=jobs,
                               num_workers=2)
        records = suite.run_all()
        assert {kind for kind, _ in seen} == {'vote', 'random'} and all(there for _, there in seen)
        assert [c[1] for c in runner.calls].count('tools/init_checkpoint.py') == 2       # once per seed
        saved = json.load(open(os.path.join(project, folder, 'results.json')))
        md = open(os.path.join(project, folder, 'results.md')).read()
        outputs[jobs] = (without_times(records, folder), without_times(saved['runs'], folder),
                         json.loads(json.dumps(saved['cells']).replace(folder, '<suite>')),
                         md.replace(folder, '<suite>'))
        if jobs == 2:
            assert runner.most == 2
            ended = [c for c in runner.ended if trains(c)]
            assert sorted(ended) == sorted(r['command'] for r in records if 'command' in r)
            assert ended != [r['command'] for r in records if 'command' in r]   # they ended in another order
    assert outputs[2] == outputs[1]
    assert [(r['encoder'], r['seed'], r['protocol']) for r in outputs[2][0]] == [
        (e, s, run.name) for e in ('m', 'r') for s in (0, 1) for run in evaluate.SUITES['test']['runs']]


def test_jobs_pass_the_thread_budget_and_prefix_the_log(project, monkeypatch):
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    monkeypatch.delenv('MKL_NUM_THREADS', raising=False)
    monkeypatch.setattr(schedule, 'cpu_count', lambda: 4)
    runner, lines = FakeRunner(project), []
    records = evaluate.Suite('test', [evaluate.Encoder('m', 'pre.pth'), evaluate.Encoder('r', 'random')], [0],
                             'exps/evaluate/env', runner=runner, cwd=project, python='py', log=lines.append,
                             jobs=2).run_all()
    budget = {'OMP_NUM_THREADS': '2', 'MKL_NUM_THREADS': '2'}
    assert runner.envs and all(env == budget for env in runner.envs)       # init_checkpoint.py included
    assert all(flag(c, '--num_workers') == '0' for c in runner.calls if c[1] == 'main.py')
    svm = next(r for r in records if (r['encoder'], r['protocol']) == ('m', 'svm'))
    assert svm['env'] == budget
    assert f'[m-svm-s0] $ OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 {shlex.join(svm["command"])}' in lines
    assert any(line.startswith('[m-svm-s0] ok in ') for line in lines)
    assert '[random-init-s0] random-init encoder, seed 0' in lines
    ran = [line for line in lines if not line.startswith('skipping')]
    assert all(line.startswith('[') for line in ran) and len(ran) > 10

    monkeypatch.setenv('OMP_NUM_THREADS', '3')                       # the user's setting wins
    runner = FakeRunner(project)
    evaluate.Suite('test', [evaluate.Encoder('m', 'pre.pth')], [0], 'exps/evaluate/env2', runner=runner, cwd=project,
                   log=lambda *_: None, jobs=2, num_workers=1).run_all()
    assert set(map(str, runner.envs)) == {'None'}
    assert {flag(c, '--num_workers') for c in runner.calls} == {'1'}
    log_path = os.path.join(project, 'logs', 'env.log')            # the real runner adds env to the environment
    assert schedule.subprocess_runner([sys.executable, '-c', 'import os; print(os.environ["OMP_NUM_THREADS"], '
                                       'os.environ["MKL_NUM_THREADS"], "PATH" in os.environ)'], log_path,
                                      env={'MKL_NUM_THREADS': '7'}, cwd=project) == 0
    assert open(log_path).read().split() == ['3', '7', 'True']
    runner = FakeRunner(project)                                     # one job: no budget, 2 workers, as before
    evaluate.Suite('test', [evaluate.Encoder('m', 'pre.pth')], [0], 'exps/evaluate/env3', runner=runner, cwd=project,
                   log=lambda *_: None, jobs=1).run_all()
    assert set(map(str, runner.envs)) == {'None'} and {flag(c, '--num_workers') for c in runner.calls} == {'2'}


def test_a_failing_chain_does_not_stop_the_others(project):
    class Crash(FakeRunner):
        def __call__(self, argv, log_path, env=None):
            if '--svm' in argv:
                raise OSError('disk full')            # not a failed run: an error of the orchestrator
            return super().__call__(argv, log_path, env)
    runner = Crash(project)
    suite = evaluate.Suite('test', [evaluate.Encoder('m', 'pre.pth')], [0], 'exps/evaluate/crash', runner=runner,
                           cwd=project, log=lambda *_: None, jobs=2)
    with pytest.raises(OSError, match='disk full'):
        suite.run_all()
    status = {r['protocol']: r['status'] for r in suite.records}
    assert status['broken'] == 'failed' and status['partseg'] == 'ok' and status['modelnet_vote'] == 'ok'
    assert 'svm' not in status and len(status) == len(evaluate.SUITES['test']['runs']) - 1

    done = []

    def fail():
        raise ValueError('first')
    with pytest.raises(ValueError, match='first'):
        schedule.run_chains([[fail, lambda: done.append('after fail')], [lambda: done.append('b')],
                             [lambda: done.append('c')]], 2)
    assert sorted(done) == ['b', 'c']                # the failing chain stops, the others run


def test_dry_run_with_jobs_prints_in_order(project, monkeypatch):
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    monkeypatch.setattr(schedule, 'cpu_count', lambda: 2)
    runner, out = FakeRunner(project), []
    evaluate.Suite('test', [evaluate.Encoder('m', 'pre.pth'), evaluate.Encoder('r', 'random')], [0],
                   'exps/evaluate/dry', runner=runner, cwd=project, python='py', log=out.append, dry_run=True,
                   jobs=2).run_all()
    assert runner.calls == []
    numbered = [int(line[1:].split('/')[0]) for line in out if line.startswith('[')]
    assert len(numbered) > 10 and numbered == sorted(numbered)
    commands = [line for line in out if line.startswith('  $ ')]
    assert len(commands) == len(numbered) + 1 and all(line.startswith('  $ OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 py ')
                                                      for line in commands)
    assert all('--num_workers 0' in line for line in commands if 'main.py' in line)


def test_demo_pretrains_side_by_side(project, monkeypatch):
    demo_project(project, monkeypatch, 'data/modelnet')
    runner, lines = Overlapping(project, held=lambda argv: argv[1] == 'main.py' and '--ckpts' not in argv), []
    suite, report = demo.run_demo('exps', 'jobs', runner=runner, cwd=project, python='py', log=lines.append, jobs=2)
    assert runner.most == 2                                            # both pre-trainings at once
    assert {r['encoder'] for r in suite.records} == {'maskclu', 'pointmae', 'random init'}
    assert '| maskclu | 60.00 |' in open(report).read() and '--jobs 2' in open(report).read()
    assert '[pretrain-maskclu] == pre-training maskclu (cfgs/t/pretrain.yaml)' in lines
    assert any(line.startswith('[pretrain-pointmae] pre-trained in ') for line in lines)
