"""Config values: ``5e-4``/``1e6`` are floats (files and --opts), every value is type-checked
against its default before anything is built, scheduler epochs must exceed the warm-up."""
import os
import subprocess
import sys

import pytest

from tools.config_check import validate_config
from utils.config import ConfigError, load_config, parse_opts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, 'cfgs', 'demo', 'pretrain.yaml')


def checked(*opts):
    return validate_config(load_config(DEMO, list(opts)), DEMO)


def test_exponent_floats_in_files_and_opts(tmp_path):
    cfg = tmp_path / 'c.yaml'
    cfg.write_text('a: 5e-4\nb: 1e6\nc: -2.5E+3\nd: 10\ne: 1.5\nf: abc\ng: 1e\nh: "1e-3"\n')
    loaded = load_config(str(cfg), ['a=1e-4', 'd=3e2'])
    assert loaded.a == 1e-4 and isinstance(loaded.a, float)
    assert loaded.b == 1e6 and isinstance(loaded.b, float)
    assert loaded.c == -2500.0 and loaded.d == 300.0 and isinstance(loaded.d, float)
    assert loaded.e == 1.5 and loaded.f == 'abc' and loaded.g == '1e' and loaded.h == '1e-3'
    assert parse_opts(['optimizer.kwargs.lr=5e-4']) == [(['optimizer', 'kwargs', 'lr'], 5e-4)]


def test_opts_lr_in_exponent_form_passes_the_checks():
    cfg = checked('optimizer.kwargs.lr=1e-4', 'optimizer.kwargs.weight_decay=5e-2')
    assert cfg.optimizer.kwargs.lr == 1e-4


@pytest.mark.parametrize('opt, where, value, expected', [
    ('max_epoch=ten', 'max_epoch', "'ten'", 'an integer'),
    ('max_epoch=true', 'max_epoch', 'True', 'an integer'),
    ('total_bs=32.5', 'total_bs', '32.5', 'an integer'),
    ('compile=yes_please', 'compile', "'yes_please'", 'a boolean'),
    ('svm_probe.C=strong', 'svm_probe.C', "'strong'", 'a number'),
    ('svm_probe=5', 'svm_probe', '5', 'a mapping'),
    ('model.num_group=big', 'model.num_group', "'big'", 'an integer'),
    ('model.transformer_config.mask_ratio=[0.6]', 'model.transformer_config.mask_ratio', '[0.6]', 'a number'),
    ('optimizer.kwargs.lr=fast', 'optimizer.kwargs.lr', "'fast'", 'a number'),
    ('optimizer.kwargs.betas=[0.9,x]', 'optimizer.kwargs.betas[1]', "'x'", 'a number'),
    ('optimizer.kwargs.amsgrad=1', 'optimizer.kwargs.amsgrad', '1', 'a boolean'),
    ('scheduler.kwargs.epochs=many', 'scheduler.kwargs.epochs', "'many'", 'an integer'),
    ('scheduler.kwargs.min_lr=low', 'scheduler.kwargs.min_lr', "'low'", 'a number'),
])
def test_wrong_types_are_one_line_errors_naming_key_value_and_type(opt, where, value, expected):
    with pytest.raises(ConfigError) as err:
        checked(opt)
    message = str(err.value)
    assert f'{where}: expected {expected} ' in message and f'found {value} (' in message, message
    assert '\n' not in message


def test_ints_are_accepted_for_floats_and_amp_takes_a_bool():
    cfg = checked('svm_probe.C=1', 'optimizer.kwargs.lr=1', 'model.losses.center.weight=1', 'amp=false')
    assert cfg.svm_probe.C == 1 and cfg.amp is False


def test_sgd_momentum_float_against_int_default():
    cfg = checked('optimizer.type=SGD', 'optimizer.kwargs={lr: 0.1, momentum: 0.9, weight_decay: 1e-4}')
    assert cfg.optimizer.kwargs.momentum == 0.9


@pytest.mark.parametrize('epochs, warmup', [(10, 10), (5, 10)])
def test_scheduler_epochs_not_above_warmup_is_a_config_error(epochs, warmup):
    with pytest.raises(ConfigError, match=rf'epochs \({epochs}\) must exceed the warm-up epochs initial_epochs \({warmup}\)'):
        checked(f'scheduler.kwargs.epochs={epochs}', f'scheduler.kwargs.initial_epochs={warmup}')


def test_main_stops_before_building_with_one_line(tmp_path):
    proc = subprocess.run([sys.executable, 'main.py', '--config', DEMO, '--exp', str(tmp_path / 'exps'),
                           '--opts', 'max_epoch=ten'], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.strip().splitlines() if 'WARNING' not in line]
    assert lines == [f"main.py: error: {DEMO}: max_epoch: expected an integer (default 300), found 'ten' (a string)"]
    assert not (tmp_path / 'exps').exists()
