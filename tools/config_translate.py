"""Configs of the authors' released MaskClu code, translated to this project's schema.

The released pre-training configs say ``model: {NAME: Point_MAE, ...}`` (their runner builds
MaskClu whatever the NAME) with keys of their own: ``n_neighs``, ``tau``, ``radius``, and
``transformer_config.{decoder_num_clusters, proj_dim}``. Such a config is recognised by those
keys and becomes the ``pretrain_released`` objective: the model section of
``cfgs/pretrain_released.yaml`` with the released values put where ``RELEASED_MODEL_KEYS``
says, that file's augmentations when the config sets none (the released runner hard-codes
them), and ``whole: true`` on a ShapeNet train split that leaves it unset (the released
loader's default: 52,470 clouds, test then train). The released fine-tuning config ``finetune_scan_objonly.yaml`` misspells ``optimizer``
as ``ptimizer``; ``TOP_LEVEL_RENAMES`` fixes that. Every step of a translation is returned as a
line for the log; the resolved config that is saved with the run is the translated one.
"""
import copy
import os

from utils.config import PROJECT_ROOT, ConfigError, load_config

RELEASED_TARGET = os.path.join('cfgs', 'pretrain_released.yaml')
RELEASED_NAME = 'Point_MAE'

# Released model key (dotted, under ``model``) -> our key under ``model`` in the pretrain_released
# objective, or None: dropped, for the reason given in DROPPED. Keys not listed (group_size,
# num_group, transformer_config.{mask_ratio, trans_dim, ...}) are the same on both sides.
RELEASED_MODEL_KEYS = {
    'n_neighs': 'losses.assign.graph_k',  # neighbours of the kNN patch graph of the cluster head
    'tau': 'losses.assign.tau',  # temperature of the cluster logits (MinCutPoolingLayer temp)
    'transformer_config.decoder_num_clusters': 'losses.assign.P',
    'transformer_config.proj_dim': 'losses.assign.hidden',  # width of the cluster head
    'radius': None,
    'loss': None,
}
DROPPED = {'radius': 'read nowhere in the released code',
           'loss': 'the released objective has no reconstruction term'}
TOP_LEVEL_RENAMES = {'ptimizer': 'optimizer'}  # the typo of the released finetune_scan_objonly.yaml


def is_released_model(model):
    """Whether a ``model`` section is in the released MaskClu schema (NAME Point_MAE plus its keys)."""
    return (isinstance(model, dict) and model.get('NAME') == RELEASED_NAME
            and any(_get(model, key) is not _ABSENT for key in RELEASED_MODEL_KEYS if key != 'loss'))


def translate_released(cfg, path):
    """``(cfg, lines)``: ``cfg`` (a loaded config dict) in our schema, and one line per change made
    (empty when nothing was foreign). ``path`` names the config in errors and lines."""
    cfg, lines = copy.deepcopy(dict(cfg)), []
    for old, new in TOP_LEVEL_RENAMES.items():
        if old in cfg:
            if new in cfg:
                raise ConfigError(f"{path}: both '{old}' (the released configs' misspelling of '{new}') and '{new}' "
                                  f"are set; keep '{new}'")
            cfg[new] = cfg.pop(old)
            lines.append(f"{old} -> {new}")
    if is_released_model(cfg.get('model')):
        lines.append(f"model: the released MaskClu schema, translated to the pretrain_released objective "
                     f"({RELEASED_TARGET}):")
        cfg['model'], model_lines = released_model(cfg['model'], path)
        lines += model_lines
        if 'train_transforms' not in cfg:
            cfg['train_transforms'] = released_target()['train_transforms']
            lines.append(f"train_transforms (unset) -> the released augmentations of {RELEASED_TARGET}")
        train = (cfg.get('dataset') or {}).get('train')
        if isinstance(train, dict) and train.get('NAME') == 'ShapeNet' and 'whole' not in train:
            train['whole'] = True
            lines.append("dataset.train.whole (unset) -> true (the released ShapeNet loader's default: the test "
                         "clouds, then the train clouds)")
    return cfg, [f"{path}: {line}" for line in lines]


def released_model(model, path):
    """A released ``model`` section -> (our MaskClu model section, translation lines)."""
    out = copy.deepcopy(released_target()['model'])
    lines = [f"  model.NAME: {model['NAME']} -> {out['NAME']}"]
    rest = copy.deepcopy(model)
    rest.pop('NAME')
    for key, ours in RELEASED_MODEL_KEYS.items():
        value = _pop(rest, key)
        if value is _ABSENT:
            continue
        if ours is None:
            lines.append(f"  model.{key}: {value} -> dropped ({DROPPED[key]})")
        else:
            _set(out, ours, value)
            lines.append(f"  model.{key}: {value} -> model.{ours}: {value}")
    foreign = [key for key, _ in _flatten(rest) if _get(out, key) is _ABSENT]
    if foreign:
        raise ConfigError(f"{path}: {', '.join('model.' + k for k in foreign)} of the released MaskClu schema "
                          f"{'has' if len(foreign) == 1 else 'have'} no counterpart here; remove "
                          f"{'it' if len(foreign) == 1 else 'them'} or start from {RELEASED_TARGET}")
    for key, value in _flatten(rest):
        _set(out, key, value)
    return out, lines


def released_target():
    """The loaded ``cfgs/pretrain_released.yaml`` (a plain dict)."""
    return load_config(os.path.join(PROJECT_ROOT, RELEASED_TARGET)).to_dict()


_ABSENT = object()


def _get(node, dotted):
    for part in dotted.split('.'):
        if not isinstance(node, dict) or part not in node:
            return _ABSENT
        node = node[part]
    return node


def _pop(node, dotted):
    *parents, last = dotted.split('.')
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    return node.pop(last, _ABSENT) if isinstance(node, dict) else _ABSENT


def _set(node, dotted, value):
    *parents, last = dotted.split('.')
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def _flatten(node, prefix=''):
    """(dotted key, leaf value) pairs of a nested dict."""
    for key, value in node.items():
        if isinstance(value, dict) and value:
            yield from _flatten(value, f'{prefix}{key}.')
        else:
            yield f'{prefix}{key}', value
