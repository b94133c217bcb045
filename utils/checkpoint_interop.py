"""Checkpoints across code bases: read a backbone's shape from its weights, and export ours in
the naming of Point-MAE / the released MaskClu code so their tools load it.

* ``backbone_config(state_dict)``: the backbone config keys the weights determine
  (``point_channels``, ``trans_dim``, ``encoder_dims``, ``depth``) and whether it has a cls
  token, from a state dict in any naming (ours, Point-MAE, released MaskClu, fine-tuned).
* ``fill_open_keys(model_cfg, state_dict)``: a model config whose keys are left ``auto``
  gets them from the checkpoint, so a fine-tuning config fits the checkpoint it starts from.
* ``export_state_dict`` / ``export_checkpoint``: our names turned into theirs through the one
  rename table (``utils.checkpoint.FOREIGN_NAMES``), in a file holding only tensors and
  plain data (``{'base_model', 'epoch', 'metrics', 'best_metrics'}``, what their loaders read).
"""
import os
import re

import torch

from utils.checkpoint import (WRAPPER_PREFIXES, encoder_state_dict, extract_state_dict, load_checkpoint,
                              save_checkpoint, strip_prefixes, to_foreign_names)
from utils.config import ConfigError

OPEN = 'auto'
READABLE_KEYS = ('point_channels', 'trans_dim', 'encoder_dims', 'depth')

# Released MaskClu LayerNorms, exported as neutral LayerNorms (weight 1, bias 0) when our model
# lacks them so that its strict loader accepts the file: ``norm`` (a second LayerNorm on the
# decoder output; ours, under the same name, with ``decoder_extra_norm: true`` as in
# cfgs/pretrain_released.yaml, else there it renormalises our decoder output) and
# ``cut_pool.norm`` (on the pooled cluster features, which its losses do not use).
RELEASED_ONLY_NORMS = ('norm', 'cut_pool.norm')


def backbone_config(state_dict):
    """What the weights say about the backbone: ``{'point_channels', 'trans_dim',
    'encoder_dims', 'depth', 'cls_token'}``, each entry present only when the weights show it
    (``num_heads``, for one, cannot be read from them; ``cls_token`` is a bool)."""
    sd = encoder_state_dict(state_dict)
    shapes = {'point_channels': ('encoder.first_conv.0.weight', 1),  # (128, channels, 1)
              'encoder_dims': ('encoder.second_conv.3.weight', 0),  # (encoder_dims, 512, 1)
              'trans_dim': ('norm.weight', 0)}  # (C,)
    info = {key: int(sd[name].shape[dim]) for key, (name, dim) in shapes.items() if name in sd}
    if count_blocks(sd, 'blocks.blocks.'):
        info['depth'] = count_blocks(sd, 'blocks.blocks.')
    if info:
        info['cls_token'] = 'cls_token' in sd
    return info


def count_blocks(state, prefix):
    """Number of ``<prefix><i>.`` blocks in a state dict (``max i + 1``; 0 without any)."""
    pattern = re.compile(re.escape(prefix) + r'(\d+)\.')
    indices = {int(m.group(1)) for k in state for m in [pattern.match(k)] if m}
    return max(indices) + 1 if indices else 0


def fill_open_keys(model_cfg, state_dict, source='the checkpoint', where='model'):
    """``(cfg, filled)``: a copy of ``model_cfg`` whose ``READABLE_KEYS`` set to ``auto`` take the
    checkpoint's values (``backbone_config``), and the ``{key: value}`` filled. An ``auto`` key the
    weights do not show is a ``ConfigError`` naming ``where.key`` and ``source``."""
    cfg, filled = dict(model_cfg), {}
    info = backbone_config(state_dict)
    for key in READABLE_KEYS:
        if cfg.get(key) != OPEN:
            continue
        if key not in info:
            raise ConfigError(f"{where}.{key}: {OPEN} needs a checkpoint whose weights show it; {source} does not "
                              f"(no backbone weights found); set it explicitly")
        cfg[key] = filled[key] = info[key]
    return cfg, filled


def export_state_dict(state_dict):
    """Our state dict in the foreign names (``to_foreign_names``); for a model of the released
    objective (its graph cluster head becomes ``cut_pool.Wm``, ...) the released-only LayerNorms
    are added as identities."""
    sd = to_foreign_names(strip_prefixes(state_dict, WRAPPER_PREFIXES))
    if 'cut_pool.Wm.weight' in sd and 'MAE_encoder.norm.weight' in sd:
        width = sd['MAE_encoder.norm.weight'].shape[0]
        for name in RELEASED_ONLY_NORMS:
            sd.setdefault(f'{name}.weight', torch.ones(width))
            sd.setdefault(f'{name}.bias', torch.zeros(width))
    return sd


def export_checkpoint(src, dst):
    """Write our checkpoint ``src`` as ``dst`` in the foreign naming, with the keys Point-MAE's and
    the released MaskClu's loaders read: ``base_model``, ``epoch`` (their index of the last epoch
    run, ours minus one), ``metrics`` and ``best_metrics`` as ``{'acc': <SVM accuracy>}`` (their
    metric) when ours has one. Optimizer, schedule and RNG streams are left out (their layouts
    differ). Returns ``dst``."""
    ckpt = load_checkpoint(src)
    state = export_state_dict(extract_state_dict(ckpt, os.fspath(src)))
    ours = ckpt if isinstance(ckpt, dict) and 'version' in ckpt else {}
    metrics = {k: _their_metric(ours.get(k)) for k in ('metrics', 'best_metrics')}
    save_checkpoint({'base_model': state, 'epoch': ours.get('epoch', 0) - 1, **metrics}, dst)
    return dst


def _their_metric(metrics):
    return {'acc': metrics['svm_acc']} if isinstance(metrics, dict) and 'svm_acc' in metrics else {}
