"""main.py flags: contradictions stop at once with a one-line reason; experiment folder layout."""
import os
import subprocess
import sys

import pytest

from utils.parser import contradiction, experiment_dir, mode_of, parse_args

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def files(tmp_path):
    cfg = tmp_path / 'cfgs' / 'pretrain.yaml'
    cfg.parent.mkdir()
    cfg.write_text('max_epoch: 1\n')
    ckpt = tmp_path / 'model.pth'
    ckpt.write_bytes(b'x')
    return str(cfg), str(ckpt)


def args_for(argv):
    from utils.parser import build_parser
    return build_parser().parse_args(argv)


@pytest.mark.parametrize('extra, reason', [
    (['--test', '--resume', '--ckpts', '{ckpt}'], '--test evaluates a checkpoint'),
    (['--test'], '--test needs --ckpts'),
    (['--svm'], '--svm needs --ckpts'),
    (['--finetune_model'], '--finetune_model needs --ckpts'),
    (['--finetune_model', '--scratch_model', '--ckpts', '{ckpt}'], 'exclude each other'),
    (['--resume', '--start_ckpts', '{ckpt}'], '--start_ckpts would be ignored'),
    (['--way', '5', '--shot', '10'], 'needs all of --way, --shot and --fold'),
    (['--way', '7', '--shot', '10', '--fold', '0'], '--way must be one of'),
    (['--way', '5', '--shot', '10', '--fold', '10'], '--fold must be 0..9'),
    (['--sync_bn'], '--sync_bn needs --launcher pytorch'),
    (['--val_freq', '0'], '--val_freq must be >= 1'),
    (['--ckpts', '/nonexistent.pth', '--test'], 'no such file'),
])
def test_contradictions(files, extra, reason):
    cfg, ckpt = files
    args = args_for(['--config', cfg] + [e.format(ckpt=ckpt) for e in extra])
    assert reason in contradiction(args)


def test_consistent_flags_pass_and_pick_modes(files):
    cfg, ckpt = files
    cases = [([], 'pretrain'), (['--finetune_model', '--ckpts', ckpt], 'finetune'),
             (['--test', '--ckpts', ckpt], 'test'), (['--svm', '--ckpts', ckpt], 'svm'),
             (['--way', '5', '--shot', '20', '--fold', '-1', '--finetune_model', '--ckpts', ckpt], 'fewshot'),
             (['--scratch_model'], 'finetune')]
    for extra, mode in cases:
        args = args_for(['--config', cfg] + extra)
        assert contradiction(args) is None, extra
        assert mode_of(args) == mode


def test_experiment_dir_follows_point_mae_layout(files):
    cfg, _ = files
    args = parse_args(['--config', cfg, '--exp_name', 'run1'])
    assert args.experiment_path == os.path.join('exps', 'pretrain', 'cfgs', 'run1')
    assert experiment_dir(args_for(['--config', cfg, '--exp', '/x'])) == '/x/pretrain/cfgs/default'


def test_main_exits_with_one_line_reason(files):
    cfg, _ = files
    proc = subprocess.run([sys.executable, 'main.py', '--config', cfg, '--test'],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ['main.py: error: --test needs --ckpts <checkpoint to evaluate>']


# ------------------------------------------------------------------------------ trainpartseg.py

def test_trainpartseg_flags_config_and_contradictions(tmp_path):
    import trainpartseg
    root = tmp_path / 'parts'
    root.mkdir()
    cfg = tmp_path / 'seg.yaml'
    cfg.write_text('learning_rate: 0.001\nepoch: 20\nwarmup_epoch: 2\n')
    args = trainpartseg.parse_args(['--root', str(root), '--config', str(cfg), '--epoch', '30'])
    assert (args.learning_rate, args.epoch, args.warmup_epoch, args.npoint) == (0.001, 30, 2, 2048)
    assert trainpartseg.contradiction(args) is None
    args.test = True
    assert '--test needs --ckpts' in trainpartseg.contradiction(args)
    cfg.write_text('learning_rat: 0.001\n')
    with pytest.raises(SystemExit):
        trainpartseg.parse_args(['--root', str(root), '--config', str(cfg)])
    proc = subprocess.run([sys.executable, 'trainpartseg.py', '--root', str(tmp_path / 'absent')],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and 'no such folder' in proc.stderr


def test_missing_dataset_folder_is_a_one_line_error(tmp_path):
    cfg = tmp_path / 'cfgs' / 'pre.yaml'
    cfg.parent.mkdir()
    cfg.write_text(f'_base_: {ROOT}/cfgs/pretrain.yaml\n'
                   f'dataset:\n  train: {{DATA_PATH: {tmp_path}/absent, PC_PATH: {tmp_path}/absent}}\n')
    proc = subprocess.run([sys.executable, 'main.py', '--config', str(cfg), '--exp', str(tmp_path / 'exps'),
                           '--device', 'cpu'], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("main.py: error: DATA_PATH=") and 'make_demo_data.py' in last
    assert 'Traceback' not in proc.stderr
