"""Meters: windowed statistics, weighted averages, exact cross-rank reduction."""
import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from utils.meters import AverageMeter, SmoothedValue, reduce_meter


def test_smoothed_value_window_and_global():
    meter = SmoothedValue(window=3)
    assert math.isnan(meter.median) and math.isnan(meter.global_avg)
    for v in [1.0, 2.0, 3.0, 5.0, 10.0]:
        meter.update(v)
    assert (meter.median, meter.avg, meter.last) == (5.0, 6.0, 10.0)
    assert meter.global_avg == pytest.approx(4.2, abs=1e-12)
    meter.update(0.0, n=5)
    assert meter.global_avg == pytest.approx(2.1, abs=1e-12)
    assert str(meter) == '5.0000 (2.1000)'


def test_average_meter_weighted_mean():
    meter = AverageMeter()
    meter.update(2.0, n=2)
    meter.update(5.0)
    assert (meter.sum, meter.count, meter.avg) == (9.0, 3, 3.0)
    meter.reset()
    assert meter.count == 0 and math.isnan(meter.avg)


def test_average_meter_keeps_tensors_on_device_until_read():
    meter = AverageMeter()
    meter.update(torch.tensor(1.5, requires_grad=True), n=4)
    meter.update(torch.tensor(3.0), n=2)
    assert isinstance(meter.sum, torch.Tensor) and not meter.sum.requires_grad
    torch.testing.assert_close(meter.sum, torch.tensor(12.0), rtol=0, atol=0)
    assert meter.avg == pytest.approx(2.0, abs=1e-7)


def test_average_meter_named_values():
    meter = AverageMeter(['loss', 'acc'])
    meter.update({'loss': 1.0, 'acc': torch.tensor(50.0)}, n=1)
    meter.update({'acc': 80.0, 'loss': 4.0}, n=3)
    avg = meter.avg
    assert avg == {'loss': pytest.approx(3.25, abs=1e-7), 'acc': pytest.approx(72.5, abs=1e-5)}
    with pytest.raises(KeyError, match=r"missing \['acc'\]"):
        meter.update({'loss': 1.0})


def test_reduce_meter_without_ddp_is_a_copy():
    meter = AverageMeter(['a'])
    meter.update({'a': 3.0}, n=2)
    reduced = reduce_meter(meter)
    assert reduced is not meter and reduced.avg == {'a': 3.0} and reduced.count == 2
    meter.update({'a': 0.0}, n=2)
    assert reduced.count == 2


def _reduce_worker(rank, world_size, init_file, results):
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=world_size)
    try:
        meter = AverageMeter()
        values = [[1.0, 2.0, 3.0], [10.0]][rank]  # unequal counts: a mean of means would give 6.0
        for v in values:
            meter.update(torch.tensor(v))
        reduced = reduce_meter(meter)
        results[rank] = (reduced.avg, reduced.count)
    finally:
        dist.destroy_process_group()


def test_reduce_meter_across_two_gloo_ranks_is_exact(tmp_path):
    results = mp.Manager().dict()
    mp.spawn(_reduce_worker, args=(2, str(tmp_path / 'init'), results), nprocs=2, join=True)
    for rank in range(2):
        avg, count = results[rank]
        assert count == 4
        assert avg == pytest.approx(4.0, abs=1e-12)
