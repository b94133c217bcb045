"""Logger: rank awareness, idempotence, file output. MetricsWriter: JSON lines, append, TensorBoard."""
import json
import logging
import math
import re
import sys

import pytest
import torch

from utils import logger as logger_mod
from utils.logger import METRICS_FILE, MetricsWriter, get_logger, to_floats


@pytest.fixture
def fresh_logger(request):
    """A unique logger name; its handlers are closed and removed afterwards."""
    name = f'maskclu.test.{request.node.name}'
    yield name
    log = logging.getLogger(name)
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()


def flush(name):
    for handler in logging.getLogger(name).handlers:
        handler.flush()


def test_get_logger_is_idempotent_and_writes_timestamped_file(fresh_logger, tmp_path):
    log_file = tmp_path / 'logs' / 'run.log'
    log = get_logger(fresh_logger, log_file=log_file)
    assert get_logger(fresh_logger, log_file=log_file) is log
    get_logger(fresh_logger)
    assert len(log.handlers) == 2
    log.info('hello %d', 42)
    flush(fresh_logger)
    lines = log_file.read_text().splitlines()
    assert len(lines) == 1
    assert re.match(r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - .* - INFO - hello 42$', lines[0])


def test_new_log_file_replaces_the_old_one(fresh_logger, tmp_path):
    log = get_logger(fresh_logger, log_file=tmp_path / 'a.log')
    get_logger(fresh_logger, log_file=tmp_path / 'b.log')
    assert len(log.handlers) == 2
    log.info('only in b')
    flush(fresh_logger)
    assert not (tmp_path / 'a.log').exists()
    assert 'only in b' in (tmp_path / 'b.log').read_text()


def test_other_ranks_log_only_warnings_to_console(fresh_logger, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(logger_mod, 'get_rank', lambda: 1)
    log = get_logger(fresh_logger, log_file=tmp_path / 'r.log')
    log.info('info from rank 1')
    log.warning('warning from rank 1')
    flush(fresh_logger)
    err = capsys.readouterr().err
    assert 'info from rank 1' not in err
    assert '[rank 1] warning from rank 1' in err
    assert not (tmp_path / 'r.log').exists()


def read_lines(folder):
    return [json.loads(line) for line in (folder / METRICS_FILE).read_text().splitlines()]


def test_metrics_writer_json_lines_append_and_tensorboard(tmp_path):
    with MetricsWriter(tmp_path, enabled=True) as writer:
        writer.write({'loss': torch.tensor(0.5), 'lr': 1e-3, 'acc': torch.tensor([90.0])}, step=10, epoch=1)
        writer.write({'loss': float('nan')}, step=20, prefix='val')
    with MetricsWriter(tmp_path, enabled=True) as writer:
        writer.write({'loss': torch.tensor(0.25, dtype=torch.float64)}, step=30, epoch=2)

    first, second, third = read_lines(tmp_path)
    assert {k: first[k] for k in ('tag', 'step', 'epoch', 'lr', 'acc')} == {
        'tag': 'train', 'step': 10, 'epoch': 1, 'lr': 1e-3, 'acc': 90.0}
    assert math.isclose(first['loss'], 0.5, rel_tol=0, abs_tol=1e-7)
    assert second['tag'] == 'val' and second['loss'] is None and 'epoch' not in second
    assert third['step'] == 30 and third['loss'] == 0.25
    assert list(tmp_path.glob('events.out.tfevents.*'))


def test_disabled_writer_writes_nothing(tmp_path):
    writer = MetricsWriter(tmp_path / 'rank1', enabled=False)
    writer.write({'loss': 1.0}, step=0)
    writer.close()
    assert not (tmp_path / 'rank1').exists()


def test_missing_tensorboard_warns_once_and_keeps_json(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'torch.utils.tensorboard', None)
    monkeypatch.setattr(logger_mod, '_TB_WARNED', [])
    with pytest.warns(UserWarning, match='tensorboard is not installed'):
        first = MetricsWriter(tmp_path / 'a', enabled=True)
    with logger_mod.warnings.catch_warnings():
        logger_mod.warnings.simplefilter('error')
        second = MetricsWriter(tmp_path / 'b', enabled=True)
    first.write({'x': 1.0}, step=1)
    first.close()
    second.close()
    assert read_lines(tmp_path / 'a')[0]['x'] == 1.0
    assert not list((tmp_path / 'a').glob('events.*'))


def test_writer_rejects_reserved_names_and_non_scalars(tmp_path):
    with MetricsWriter(tmp_path, enabled=True) as writer:
        with pytest.raises(ValueError, match='reserved'):
            writer.write({'step': 1.0}, step=0)
    with pytest.raises(ValueError, match="'v' must be a scalar"):
        to_floats({'v': torch.zeros(2)})
    assert to_floats({'b': torch.tensor(2), 'a': 1}) == {'b': 2.0, 'a': 1.0}
