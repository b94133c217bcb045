"""The training step (forward, backward, guarded optimizer update, schedule) never reads a
device value on the host: no ``.item()``, ``bool(tensor)``, ``float(tensor)``, ``.tolist()``,
``.numpy()`` or ``.cpu()`` anywhere in the Python code it runs, for every shipped objective.
On CUDA the same step also runs under ``torch.cuda.set_sync_debug_mode('error')``.
"""
import contextlib

import pytest
import torch

from utils.transforms import build_transforms
from models import build_model
from tests.conftest import TINY_MODEL, deep_merge
from tools.config_check import validate_config
from tools.engine import TrainStepper
from tools.optim import build_optimizer, build_scheduler
from utils.config import load_config

CONFIGS = ['pretrain', 'pretrain_released', 'pretrain_pointmae', 'pretrain_conclu', 'ablations/legacy_default']
SYNC_METHODS = ('item', 'tolist', 'numpy', 'cpu', '__bool__', '__float__', '__int__', '__index__')


class HostSync(AssertionError):
    pass


@contextlib.contextmanager
def forbid_host_reads():
    """Make every Python-level host read of a tensor raise ``HostSync``."""
    saved = {name: getattr(torch.Tensor, name) for name in SYNC_METHODS}

    def forbidden(name):
        def method(self, *args, **kwargs):
            raise HostSync(f'Tensor.{name}() called inside the training step')
        return method
    try:
        for name in SYNC_METHODS:
            setattr(torch.Tensor, name, forbidden(name))
        yield
    finally:
        for name, method in saved.items():
            setattr(torch.Tensor, name, method)


def tiny_step(name, device):
    path = f'cfgs/{name}.yaml'
    config = load_config(path).to_dict()
    if config['model']['NAME'] == 'MaskClu':
        config['model'] = deep_merge(config['model'], TINY_MODEL)
    else:
        config['model'].update(num_group=16, group_size=8, transformer_config={
            **config['model']['transformer_config'], 'trans_dim': 32, 'encoder_dims': 32, 'depth': 2,
            'num_heads': 2, 'decoder_depth': 1, 'decoder_num_heads': 2})
    config = validate_config(config, path)
    torch.manual_seed(0)
    model = build_model(config.model).to(device)
    optimizer = build_optimizer(model, config.optimizer)
    scheduler = build_scheduler(optimizer, config.scheduler, steps_per_epoch=10)
    stepper = TrainStepper(model, optimizer, scheduler, grad_clip=10.0, device=device)
    transforms = build_transforms(config.train_transforms)
    points = torch.rand(4, 256, 3, device=device) * 2 - 1

    def step():
        with stepper.autocast():
            out = model(transforms(points))
        stepper.backward(out['loss'])
    return step


@pytest.mark.parametrize('name', CONFIGS)
def test_training_step_reads_nothing_on_the_host(name, torch_globals):
    step = tiny_step(name, torch.device('cpu'))
    step()  # first step: lazy state (optimizer moments) is created
    with forbid_host_reads():
        step()
        step()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('name', CONFIGS)
def test_training_step_has_no_cuda_sync(name):
    step = tiny_step(name, torch.device('cuda'))
    step()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        step()
    finally:
        torch.cuda.set_sync_debug_mode('default')


def test_trainer_loop_reads_nothing_on_the_host_between_logs(tiny_config, tmp_path, monkeypatch, torch_globals):
    """The trainer's per-step work for pre-training (``prepare``, ``train_step``, the guarded
    backward/update, the running means, the sample count) reads no device value on the host
    from the second step on; only the logging interval does (log_freq > steps here)."""
    from tools.context import RunContext
    from tools.runner_pretrain import PretrainTask
    from tools.trainer import Trainer
    from utils.logger import get_logger
    from utils.meters import AverageMeter
    path = tiny_config(max_epoch=1, log_freq=100)
    config = validate_config(load_config(path), path)
    ctx = RunContext(device=torch.device('cpu'), experiment_path=str(tmp_path), num_workers=0)
    task = PretrainTask(ctx, config, get_logger('maskclu-test'))
    trainer = Trainer(task, ctx, config, get_logger('maskclu-test'))
    calls = []

    def guarded(fn):
        def run(*args, **kwargs):
            calls.append(fn.__name__)
            if calls.count('train_step') < 2:   # the first step creates the optimizer state
                return fn(*args, **kwargs)
            with forbid_host_reads():
                return fn(*args, **kwargs)
        run.__name__ = fn.__name__
        return run
    for name in ('prepare', 'train_step', 'batch_size'):
        monkeypatch.setattr(task, name, guarded(getattr(task, name)))
    monkeypatch.setattr(trainer.stepper, 'backward', guarded(trainer.stepper.backward))
    monkeypatch.setattr(AverageMeter, 'update', guarded(AverageMeter.update))
    trainer.fit()
    assert calls.count('train_step') == len(task.train_loader) == 3
