"""The evaluation suite, the sweep and the demo as orchestrators: statistics (mean ± std, max,
skipped and failed runs), grid parsing, and the commands driven through a fake runner that
plays main.py / trainpartseg.py by writing each run's results.json."""
import json
import math
import os
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from suite_fixtures import FakeRunner, demo_project, flag, project  # noqa: F401 (project: fixture)
from tools import demo, evaluate, suite_stats, sweep
from tools import suites
from utils.parser import experiment_dir


# ------------------------------------------------------------------ statistics

def ok(encoder, protocol, seed, values, **extra):
    return {'encoder': encoder, 'protocol': protocol, 'seed': seed, 'status': 'ok', 'values': values,
            'columns': list(values), **extra}


def test_describe_is_sample_std_and_max():
    stats = suite_stats.describe([90.0, 91.0, 95.0])
    assert stats['n'] == 3 and stats['max'] == 95.0 and stats['min'] == 90.0
    assert stats['mean'] == pytest.approx(92.0, abs=1e-12)
    assert stats['std'] == pytest.approx(float(np.std([90.0, 91.0, 95.0], ddof=1)), abs=1e-12)   # n - 1
    assert stats['std'] != pytest.approx(float(np.std([90.0, 91.0, 95.0])), abs=1e-6)
    assert suite_stats.describe([]) is None
    assert suite_stats.describe([7.0])['std'] == 0.0


def test_samples_of_numbers_lists_and_fold_dicts():
    assert suite_stats.samples(3) == [3.0]
    assert suite_stats.samples([1, None, 2]) == [1.0, 2.0]          # a failed fold is not a number
    assert suite_stats.samples({'0': 80, '1': 90}) == [80.0, 90.0]
    assert suite_stats.samples(None) == []


def test_aggregate_seeds_folds_max_failed_and_skipped():
    records = [
        ok('maskclu', 'modelnet_full', 0, {'ModelNet40': 90.0}),
        ok('maskclu', 'modelnet_full', 1, {'ModelNet40': 92.0}),
        {'encoder': 'maskclu', 'protocol': 'modelnet_full', 'seed': 2, 'status': 'failed',
         'reason': 'exit status 1: boom', 'columns': ['ModelNet40']},
        ok('maskclu', 'modelnet_vote', 0, {'ModelNet40 +vote': 91.0}, max_values={'ModelNet40 +vote': 93.5}),
        ok('maskclu', 'modelnet_vote', 1, {'ModelNet40 +vote': 92.0}, max_values={'ModelNet40 +vote': 92.5}),
        ok('maskclu', 'fewshot', 0, {'5w10s': {'0': 80.0, '1': 100.0}}),
        ok('maskclu', 'fewshot', 1, {'5w10s': [90.0, 90.0]}),
        {'encoder': 'maskclu', 'protocol': 'scan', 'seed': 0, 'status': 'skipped',
         'reason': 'dataset missing: ROOT = data/ScanObjectNN does not exist', 'columns': ['OBJ_BG']},
    ]
    cells = suite_stats.aggregate(records)['maskclu']
    m = cells['ModelNet40']
    assert m['stats']['n'] == 2 and m['stats']['mean'] == pytest.approx(91.0)
    assert m['stats']['std'] == pytest.approx(math.sqrt(2.0))
    assert m['runs'] == 2 and m['failed'] == ['seed 2: exit status 1: boom'] and m['max'] == 92.0
    assert cells['ModelNet40 +vote']['max'] == 93.5          # the best repeat, not the max of the means
    assert cells['ModelNet40 +vote']['stats']['max'] == 92.0
    few = cells['5w10s']['stats']
    assert few['n'] == 4 and few['mean'] == pytest.approx(90.0) and few['std'] == pytest.approx(math.sqrt(200.0 / 3))
    assert cells['OBJ_BG']['stats'] is None and cells['OBJ_BG']['skipped']

    assert suite_stats.format_cell(m) == '91.00 ± 1.41 (max 92.00) (1 of 3 runs failed)'
    assert suite_stats.format_cell(cells['OBJ_BG']) == 'skipped'
    header, rows = suite_stats.results_table(suite_stats.aggregate(records))
    assert header == ['encoder', 'ModelNet40', 'ModelNet40 +vote', 'OBJ_BG', '5w10s']   # the papers' order
    text = suite_stats.render_markdown('T', records, [{'name': 'modelnet_full', 'epochs': 4, 'points': 1024}])
    assert 'sample std (n - 1)' in text and '| maskclu | 91.00 ± 1.41' in text
    assert 'FAILED maskclu / modelnet_full / seed 2: exit status 1: boom' in text
    assert 'skipped scan: dataset missing: ROOT = data/ScanObjectNN does not exist' in text


def test_a_protocol_whose_every_run_failed_stays_in_the_table():
    records = [{'encoder': 'a', 'protocol': 'svm', 'seed': s, 'status': 'failed', 'reason': 'x',
                'columns': ['SVM ModelNet40']} for s in (0, 1)]
    header, rows = suite_stats.results_table(suite_stats.aggregate(records))
    assert header == ['encoder', 'SVM ModelNet40'] and rows == [['a', 'failed (2 of 2 runs)']]
    assert suite_stats.format_cell(suite_stats.aggregate([ok('a', 'svm', 0, {'SVM ModelNet40': 85.0})])['a']
                                   ['SVM ModelNet40']) == '85.00'
    with pytest.raises(ValueError, match='status'):
        suite_stats.aggregate([{'encoder': 'a', 'protocol': 'p', 'seed': 0, 'status': 'done'}])


# ------------------------------------------------------------------ grid parsing

def test_grid_values_are_yaml_typed_and_brackets_do_not_split():
    assert sweep.split_values('0, 1,[2,3],{a: 1, b: 2},"x,y"') == ['0', '1', '[2,3]', '{a: 1, b: 2}', '"x,y"']
    key, values = sweep.parse_axis('model.losses.assign.weight=0,0.5,true,[1,2],none')
    assert key == 'model.losses.assign.weight'
    assert [v for _, v in values] == [0, 0.5, True, [1, 2], 'none']
    assert isinstance(values[0][1], int) and isinstance(values[1][1], float)
    assert [t for t, _ in values] == ['0', '0.5', 'true', '[1,2]', 'none']   # the text goes to --opts as is


def test_grid_is_the_cartesian_product_in_order():
    points = sweep.parse_grid(['model.losses.assign.weight=0,1', 'model.losses.center.weight=0,1,2'])
    assert len(points) == 6
    assert [(p[0][2], p[1][2]) for p in points] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert sweep.point_label(points[1]) == 'assign.weight=0, center.weight=1'
    assert sweep.parse_grid([]) == [[]] and sweep.point_label([]) == 'config'
    assert sweep.point_label(sweep.parse_grid(['a.x.w=1', 'b.x.w=2'])[0]) == 'a.x.w=1, b.x.w=2'   # collision


@pytest.mark.parametrize('spec, message', [('model.w', 'expected key.sub=value'), ('=1,2', 'expected'),
                                           ('a..b=1', 'expected'), ('a=1,,2', 'empty value'),
                                           ('a=[1,2', 'unbalanced'), ('a=[1, 2]]', 'unbalanced')])
def test_bad_grid_axes_name_the_problem(spec, message):
    with pytest.raises(ValueError, match=message):
        sweep.parse_axis(spec)


def test_a_key_twice_in_the_grid_is_an_error():
    with pytest.raises(ValueError, match='more than once'):
        sweep.parse_grid(['a.w=0,1', 'a.w=2'])
    with pytest.raises(SystemExit):
        sweep.parse_args(['--config', 'c.yaml', '--grid', 'a.w=[1'])


def test_skip_reasons_name_the_config_and_folder(project):
    assert evaluate.skip_reason('cfgs/t/finetune_modelnet.yaml', project) is None
    assert evaluate.skip_reason('cfgs/t/finetune_scan_objbg.yaml', project) == \
        'dataset missing: finetune_scan_objbg.yaml.dataset.train.ROOT = data/ScanObjectNN does not exist'
    assert evaluate.skip_reason('cfgs/t/nope.yaml', project) == 'config cfgs/t/nope.yaml does not exist'


@pytest.mark.parametrize('jobs', [1, 2])
def test_suite_runs_reads_results_and_reports_skips_and_failures(project, jobs):
    runner, lines = FakeRunner(project), []
    suite = evaluate.Suite('test', [evaluate.Encoder('maskclu', 'pre.pth'), evaluate.Encoder('random init', 'random')],
                           [0, 1], 'exps/evaluate/t', runner=runner, cwd=project, python='py', log=lines.append,
                           jobs=jobs)
    records = suite.run_all()
    by = {(r['encoder'], r['protocol'], r['seed']): r for r in records}
    assert len(records) == 2 * 2 * len(evaluate.SUITES['test']['runs'])
    assert by[('maskclu', 'modelnet_full', 1)]['values'] == {'ModelNet40': 61.0}
    assert by[('maskclu', 'modelnet_full', 1)]['last_values'] == {'ModelNet40': 60.0}
    vote = by[('maskclu', 'modelnet_vote', 0)]
    full_folder = by[('maskclu', 'modelnet_full', 0)]['folder']
    assert vote['command'][vote['command'].index('--ckpts') + 1] == f'{full_folder}/ckpt-best.pth'
    assert by[('maskclu', 'scan_objbg_full', 0)]['status'] == 'skipped'
    assert by[('maskclu', 'broken', 0)]['status'] == 'failed'
    assert 'main.py: error: dataset.train.DATA_PATH: boom' in by[('maskclu', 'broken', 0)]['reason']
    # the random-init encoder: one checkpoint per seed, written once, used by every run of the seed
    inits = [c for c in runner.calls if c[1] == 'tools/init_checkpoint.py']
    assert [flag(c, '--seed') for c in inits] == ['0', '1'] and flag(inits[0], '--config') == 'cfgs/t/pretrain.yaml'
    svm = by[('random init', 'svm', 1)]
    assert svm['command'][svm['command'].index('--ckpts') + 1] == flag(inits[1], '--out')
    assert svm['values'] == {'SVM ModelNet40': 61.0}
    assert by[('random init', 'partseg', 0)]['command'][1] == 'trainpartseg.py'

    cells = suite_stats.aggregate(records)
    assert cells['maskclu']['ModelNet40']['stats']['mean'] == pytest.approx(60.5)
    assert cells['maskclu']['ModelNet40']['stats']['std'] == pytest.approx(math.sqrt(0.5))
    assert cells['maskclu']['ModelNet40 +vote']['max'] == 63.0
    assert cells['maskclu']['5w10s']['stats']['n'] == 4           # two folds × two seeds, pooled
    assert cells['maskclu']['10w20s']['stats']['n'] == 19         # --fold -1: ten folds × two seeds, one failed
    assert cells['maskclu']['10w20s']['stats']['mean'] == pytest.approx((2 * 845 - 89) / 19)
    assert by[('maskclu', 'fewshot_10w20s', 1)]['status'] == 'ok'
    assert '1 of 10 folds failed' in by[('maskclu', 'fewshot_10w20s', 1)]['reason']
    assert cells['random init']['SVM ModelNet40']['stats']['mean'] == pytest.approx(60.5)

    saved = json.load(open(os.path.join(project, 'exps/evaluate/t/results.json')))
    assert saved['std'] == 'sample (n - 1)' and len(saved['runs']) == len(records)
    md = open(os.path.join(project, 'exps/evaluate/t/results.md')).read()
    assert '| maskclu | 60.50 ± 0.71 (max 61.00) |' in md
    assert 'skipped scan_objbg_full: dataset missing' in md
    assert 'FAILED random init / broken / seed 1' in md
    assert 'partly failed maskclu / fewshot_10w20s / seed 1: 10w20s: 1 of 10 folds failed' in md
    last = md.split('## Last epoch')[1]
    assert '| maskclu | 59.50 ± 0.71 (max 60.00) |' in last and last.count('70.50 ± 0.71 (max 71.00)') == 2
    assert '| modelnet_full | ModelNet40 | cfgs/t/finetune_modelnet.yaml | 1024 | none (single pass) | 4 |' in md
    assert '| modelnet_vote | ModelNet40 +vote | cfgs/t/finetune_modelnet.yaml | 1024 | 10 per cloud × 3 repeats: ' \
           'mean of the repeats (max labelled) | — |' in md
    assert not [f for f in os.listdir(os.path.join(project, 'exps/evaluate/t')) if f.endswith('.tmp')]


def test_missing_values_and_missing_results_json_are_failures(project, monkeypatch):
    class NoVote(FakeRunner):
        def __call__(self, argv, log_path, env=None):
            if '--test' in argv:
                return 0                       # exits 0 but writes nothing
            return super().__call__(argv, log_path, env)
    monkeypatch.setitem(evaluate.RESULT_KEYS, 'svm_acc', ('accuracy_renamed',))
    suite = evaluate.Suite('test', [evaluate.Encoder('m', 'pre.pth')], [0], 'exps/evaluate/t2',
                           runner=NoVote(project), cwd=project, log=lambda *_: None)
    by = {r['protocol']: r for r in suite.run_all()}
    assert by['modelnet_vote']['status'] == 'failed' and 'wrote no' in by['modelnet_vote']['reason']
    assert by['svm']['status'] == 'failed' and 'accuracy_renamed' in by['svm']['reason']


def test_a_failed_dependency_fails_the_dependent_run(project):
    class FailFinetune(FakeRunner):
        def __call__(self, argv, log_path, env=None):
            return 3 if '--finetune_model' in argv and '--way' not in argv else super().__call__(argv, log_path, env)
    runner = FailFinetune(project)
    suite = evaluate.Suite('test', [evaluate.Encoder('m', 'pre.pth')], [0], 'exps/evaluate/t3',
                           runner=runner, cwd=project, log=lambda *_: None)
    by = {r['protocol']: r for r in suite.run_all()}
    assert by['modelnet_full']['status'] == 'failed' and by['modelnet_vote']['status'] == 'failed'
    assert by['modelnet_vote']['reason'] == 'needs modelnet_full, which failed'
    assert not [c for c in runner.calls if '--test' in c]


def test_dry_run_prints_commands_and_runs_nothing(project, capsys):
    runner = FakeRunner(project)
    suite = evaluate.Suite('test', [evaluate.Encoder('m', 'pre.pth'), evaluate.Encoder('r', 'random')], [0],
                           'exps/evaluate/t4', runner=runner, cwd=project, dry_run=True, python='py')
    suite.run_all()
    out = capsys.readouterr().out
    assert runner.calls == [] and not os.path.exists(os.path.join(project, 'exps/evaluate/t4/results.json'))
    assert 'py main.py --config cfgs/t/finetune_modelnet.yaml' in out and '--finetune_model --ckpts pre.pth' in out
    assert 'py tools/init_checkpoint.py --config cfgs/t/pretrain.yaml --seed 0' in out
    assert 'skipping the protocols of cfgs/t/finetune_scan_objbg.yaml: dataset missing' in out


def test_commands_under_torchrun():
    run = suites.svm_run('cfgs/x.yaml')
    argv = evaluate.build_command(run, 'a.pth', 2, 'r', 'n', python='py', nproc=4)
    assert argv[:5] == ['py', '-m', 'torch.distributed.run', '--nproc_per_node=4', 'main.py']
    assert argv[argv.index('--launcher') + 1] == 'pytorch' and argv[-3:] == ['--svm', '--ckpts', 'a.pth']
    assert '--launcher' not in evaluate.build_command(run, 'a.pth', 2, 'r', 'n', python='py')


def test_reuse_takes_finished_runs(project):
    kwargs = dict(cwd=project, log=lambda *_: None)
    evaluate.Suite('test', [evaluate.Encoder('m', 'pre.pth')], [0], 'exps/evaluate/t5', runner=FakeRunner(project),
                   **kwargs).run_all()
    again = FakeRunner(project)
    records = evaluate.Suite('test', [evaluate.Encoder('m', 'pre.pth')], [0], 'exps/evaluate/t5', runner=again,
                             reuse=True, **kwargs).run_all()
    assert [c for c in again.calls if 'broken' not in flag(c, '--config', '')] == []
    assert {r['protocol']: r['status'] for r in records}['svm'] == 'ok'


def test_encoder_labels(tmp_path):
    run = tmp_path / 'exps' / 'pretrain' / 'cfgs' / 'maskclu'
    run.mkdir(parents=True)
    (run / 'ckpt-last.pth').touch()
    encoders = evaluate.parse_encoders([str(run / 'ckpt-last.pth'), f'mine={run / "ckpt-last.pth"}', 'random',
                                        str(run / 'ckpt-last.pth')])
    assert [e.label for e in encoders] == ['maskclu', 'mine', 'random', 'maskclu-2']
    odd = tmp_path / 'lr=0.1'
    odd.mkdir()
    (odd / 'ckpt.pth').touch()
    assert evaluate.parse_encoders([str(odd / 'ckpt.pth')]) == [evaluate.Encoder('lr=0.1', str(odd / 'ckpt.pth'))]
    assert evaluate.slug('assign.weight=0, center.weight=1') == 'assign.weight_0_center.weight_1'
    with pytest.raises(SystemExit, match='no such file'):
        evaluate.parse_encoders([str(tmp_path / 'missing.pth')])


def test_shipped_suites_name_every_column_in_the_papers_layout():
    for name, spec in evaluate.SUITES.items():
        for run in spec['runs']:
            assert set(run.columns) <= set(suite_stats.COLUMNS), (name, run.name)
            assert all(kind in evaluate.RESULT_KEYS for kind in {**run.columns, **run.max_columns}.values())
    full = {c for r in evaluate.SUITES['full']['runs'] for c in r.columns}
    assert full == set(suite_stats.COLUMNS)      # the full suite fills every column of the papers' tables
    assert len(evaluate.SUITES['full']['runs']) == 2 + 9 + 4 + 1 + 1


# ------------------------------------------------------------------ sweep and demo

def test_sweep_pretrains_each_point_and_tabulates_them(project):
    runner, lines = FakeRunner(project, fail_pretrain={'p1-s1'}), []
    suite = sweep.run_sweep('cfgs/t/pretrain.yaml', ['model.losses.assign.weight=0,1'], [0, 1], 'test',
                            'exps/sweep/s', runner=runner, cwd=project, log=lines.append, python='py')
    pre = [c for c in runner.calls if flag(c, '--config') == 'cfgs/t/pretrain.yaml' and c[1] == 'main.py']
    assert [(flag(c, '--exp_name'), c[c.index('--opts') + 1]) for c in pre] == [
        ('p0-s0', 'model.losses.assign.weight=0'), ('p0-s1', 'model.losses.assign.weight=0'),
        ('p1-s0', 'model.losses.assign.weight=1'), ('p1-s1', 'model.losses.assign.weight=1')]
    by = {(r['encoder'], r['protocol'], r['seed']): r for r in suite.records}
    svm = by[('assign.weight=0', 'svm', 1)]
    assert svm['command'][svm['command'].index('--ckpts') + 1].endswith('pretrain/t/p0-s1/ckpt-last.pth')
    failed = by[('assign.weight=1', 'svm', 1)]
    assert failed['status'] == 'failed' and 'NonFiniteLossError' in failed['reason']
    assert by[('assign.weight=1', 'svm', 0)]['status'] == 'ok'
    md = open(os.path.join(project, 'exps/sweep/s/results.md')).read()
    assert '| assign.weight=0 | 60.50 ± 0.71 (max 61.00) |' in md
    assert '| assign.weight=1 | 60.00 (1 of 2 runs failed) |' in md
    assert 'sweep of `cfgs/t/pretrain.yaml` over 2 grid points' in md


def test_sweep_pretrain_once_reuses_seed_0(project):
    runner = FakeRunner(project)
    sweep.run_sweep('cfgs/t/pretrain.yaml', ['model.w=1,2'], [0, 1, 2], 'test', 'exps/sweep/once', runner=runner,
                    cwd=project, pretrain_once=True, log=lambda *_: None)
    assert [flag(c, '--exp_name') for c in runner.calls if flag(c, '--config') == 'cfgs/t/pretrain.yaml'
            and c[1] == 'main.py'] == ['p0-s0', 'p1-s0']


def test_demo_writes_report_with_results_and_plots(project, monkeypatch):
    from matplotlib.image import imread
    demo_project(project, monkeypatch, 'data/nope')
    os.makedirs(os.path.join(project, 'data/demo/ShapeNet55-34/ShapeNet-55'))
    with open(os.path.join(project, demo.DEMO_CLOUD_LIST), 'w') as f:
        f.write('02691156-1.npy\n')
    runner, lines = FakeRunner(project), []
    suite, report = demo.run_demo('exps', 'd', runner=runner, cwd=project, python='py', log=lines.append)
    assert any(c[1] == 'tools/make_demo_data.py' for c in runner.calls)      # data/nope is missing
    assert {r['encoder'] for r in suite.records} == {'maskclu', 'pointmae', 'random init'}
    text = open(report).read()
    assert '| maskclu | 60.00 |' in text and 'not benchmark results' in text and 'wall time of this demo' in text
    for name in ('loss_maskclu.png', 'loss_pointmae.png', 'clusters_maskclu.png', 'tsne_maskclu.png'):
        assert f'](figures/{name})' in text
        assert imread(os.path.join(project, 'exps/demo/d/figures', name)).size > 0
    vis = [c for c in runner.calls if c[1] == 'tools/visualize.py']
    assert flag(vis[0], '--input') == 'data/demo/ShapeNet55-34/shapenet_pc/02691156-1.npy'
    assert any('| maskclu |' in line for line in lines)                        # the table in the terminal
    # a second demo in the same folder reuses the finished pre-training and runs
    again = FakeRunner(project)
    demo.run_demo('exps', 'd', runner=again, cwd=project, python='py', log=lambda *_: None)
    assert not [c for c in again.calls if c[1] in ('main.py', 'trainpartseg.py') and 'broken' not in c[3]]


def test_interrupted_runs_continue_with_resume(project):
    """--reuse: a training run whose results.json stops short of max_epoch, or that left a
    ckpt-last.pth, reruns with --resume; a pre-training without its last epoch's checkpoint too."""
    folder = experiment_dir(SimpleNamespace(config='cfgs/t/finetune_modelnet.yaml', exp='exps/evaluate/t6/runs',
                                            exp_name='m-modelnet_full-s0'))
    os.makedirs(os.path.join(project, folder))
    open(os.path.join(project, folder, 'ckpt-last.pth'), 'w').close()
    with open(os.path.join(project, folder, 'results.json'), 'w') as f:
        json.dump({'best_epoch': {'epoch': 2, 'metrics': {'acc': 1.0}}, 'last_epoch': {'epoch': 2, 'metrics': {}}}, f)
    runner = FakeRunner(project)
    by = {r['protocol']: r for r in evaluate.Suite('test', [evaluate.Encoder('m', 'pre.pth')], [0], 'exps/evaluate/t6',
                                                   runner=runner, cwd=project, reuse=True,
                                                   log=lambda *_: None).run_all()}
    assert by['modelnet_full']['command'][-1] == '--resume' and by['modelnet_full']['values'] == {'ModelNet40': 60.0}
    assert '--resume' not in by['svm']['command']

    pre = experiment_dir(SimpleNamespace(config='cfgs/t/pretrain.yaml', exp='exps/p', exp_name='x'))
    os.makedirs(os.path.join(project, pre))
    open(os.path.join(project, pre, 'ckpt-last.pth'), 'w').close()        # stopped after epoch 1 of 3
    runner = FakeRunner(project)
    sweep.pretrain('cfgs/t/pretrain.yaml', 'exps/p', 'x', 0, ['model.w=2'], runner, os.path.join(project, 'l.log'),
                   project, log=lambda *_: None, python='py')
    assert runner.calls[0][-3:] == ['--resume', '--opts', 'model.w=2']
    runner = FakeRunner(project)                                             # now finished: reused
    assert sweep.pretrain('cfgs/t/pretrain.yaml', 'exps/p', 'x', 0, ['model.w=2'], runner, 'l.log', project,
                          log=lambda *_: None) == os.path.join(pre, 'ckpt-last.pth') and runner.calls == []


def test_random_init_checkpoint_is_seeded_and_loads_as_an_encoder(tiny_config, tmp_path, torch_globals):
    import torch
    from models.features import load_encoder
    from tools.init_checkpoint import main as init_main
    from utils.checkpoint import load_checkpoint
    config = tiny_config()
    paths = [str(tmp_path / f'r{i}.pth') for i in range(3)]
    for path, seed in zip(paths, (0, 0, 1)):
        init_main(['--config', config, '--seed', str(seed), '--out', path])
    states = [load_checkpoint(p)['base_model'] for p in paths]
    assert any(k.startswith('MAE_encoder.') for k in states[0]) and load_checkpoint(paths[0])['epoch'] == 0
    for key in states[0]:
        torch.testing.assert_close(states[0][key], states[1][key], rtol=0, atol=0)
    assert any(not torch.equal(states[0][k], states[2][k]) for k in states[0] if states[0][k].is_floating_point())
    out = load_encoder(paths[0])(torch.randn(2, 256, 3))
    assert out.global_feature.shape == (2, 64)
