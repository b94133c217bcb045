"""Optimizer and learning-rate schedule from the config's ``optimizer`` / ``scheduler`` sections."""
import inspect

import torch

from utils.config import ConfigError, check_type
from utils.lr_scheduler import CosineWarmupLR
from utils.registry import unknown_name_message

OPTIMIZERS = {'AdamW': torch.optim.AdamW, 'Adam': torch.optim.Adam, 'SGD': torch.optim.SGD}
# CosLR kwargs and the defaults that give their types (``epochs`` is required).
SCHEDULER_KEYS = {'epochs': 300, 'initial_epochs': 0, 'warmup_lr_init': 1e-6, 'min_lr': 1e-6}
NO_DECAY_NAMES = ('token', 'cls_pos')


def no_decay(name, param):
    """Biases, norm weights and other 1-D parameters, and learned tokens are not decayed."""
    return param.ndim <= 1 or name.endswith('.bias') or any(t in name for t in NO_DECAY_NAMES)


def param_groups(model, weight_decay):
    """Two groups: decayed weights and the rest (see ``no_decay``)."""
    decay, rest = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (rest if no_decay(name, param) else decay).append(param)
    return [{'params': decay, 'weight_decay': weight_decay}, {'params': rest, 'weight_decay': 0.0}]


def _check_kwargs(fn, kwargs, where):
    """Names against ``fn``'s signature; values against the types of its defaults (a numeric
    default takes any number, a tuple of numbers a list or tuple of numbers)."""
    params = inspect.signature(fn).parameters
    accepted = set(params) - {'self', 'params', 'optimizer'}
    for key, value in kwargs.items():
        if key not in accepted:
            raise ConfigError(f'{where}: ' + unknown_name_message('key', key, accepted))
        default = params[key].default
        if isinstance(default, int) and not isinstance(default, bool):
            default = float(default)  # e.g. SGD's momentum=0: a float in practice
        if default is not inspect.Parameter.empty:
            check_type(value, default, f'{where}.{key}')
        if isinstance(default, tuple):
            for i, item in enumerate(value):
                check_type(item, 0.0, f'{where}.{key}[{i}]')


def check_optimizer_config(cfg, where='optimizer'):
    if cfg.get('type') not in OPTIMIZERS:
        raise ConfigError(f'{where}.type: ' + unknown_name_message('optimizer', cfg.get('type'), OPTIMIZERS))
    kwargs = cfg.get('kwargs') or {}
    _check_kwargs(OPTIMIZERS[cfg['type']], kwargs, f'{where}.kwargs')
    if kwargs.get('fused', True) is not True or kwargs.get('foreach'):
        raise ConfigError(f'{where}.kwargs: the fused implementation is required (the training step skips '
                          f'non-finite updates on the device through it); remove fused/foreach')


def check_scheduler_config(cfg, where='scheduler'):
    """Type, kwargs names and types (``SCHEDULER_KEYS``), and epochs > warm-up epochs."""
    if cfg.get('type') != 'CosLR':
        raise ConfigError(f"{where}.type: " + unknown_name_message('scheduler', cfg.get('type'), ['CosLR']))
    kwargs = cfg.get('kwargs') or {}
    for key, value in kwargs.items():
        if key not in SCHEDULER_KEYS:
            raise ConfigError(f'{where}.kwargs: ' + unknown_name_message('key', key, SCHEDULER_KEYS))
        check_type(value, SCHEDULER_KEYS[key], f'{where}.kwargs.{key}')
    if 'epochs' not in kwargs:
        raise ConfigError(f'{where}.kwargs.epochs: missing (the length of the cosine schedule in epochs)')
    warmup = kwargs.get('initial_epochs', 0)
    if kwargs['epochs'] <= warmup:
        raise ConfigError(f"{where}.kwargs: epochs ({kwargs['epochs']}) must exceed the warm-up epochs "
                          f"initial_epochs ({warmup})")


def build_optimizer(model, cfg):
    """``cfg = {type: AdamW, kwargs: {lr, weight_decay, ...}}``; weight decay spares ``no_decay``.

    The fused implementation is the default: it is faster and lets ``TrainStepper`` skip a
    non-finite step on the device (see tools/engine.py).
    """
    check_optimizer_config(cfg)
    kwargs = dict(cfg.get('kwargs') or {})
    kwargs.setdefault('fused', True)
    groups = param_groups(model, kwargs.pop('weight_decay', 0.0))
    return OPTIMIZERS[cfg['type']](groups, **kwargs)


def build_scheduler(optimizer, cfg, steps_per_epoch):
    """``cfg = {type: CosLR, kwargs: {epochs, initial_epochs, warmup_lr_init?, min_lr?}}``, stepped per update."""
    check_scheduler_config(cfg)
    kw = cfg.get('kwargs') or {}
    return CosineWarmupLR(optimizer, epochs=kw['epochs'], steps_per_epoch=steps_per_epoch,
                          warmup_epochs=kw.get('initial_epochs', 0),
                          warmup_lr_init=kw.get('warmup_lr_init', 1e-6), min_lr=kw.get('min_lr', 1e-6))
