"""Checkpoints: atomic saving, safe CPU loading, exact resume, and reported weight loading.

Our format (``make_checkpoint``) is a dict with the keys of ``CHECKPOINT_KEYS``;
``base_model`` is the state dict of the unwrapped model (no ``module.``/``_orig_mod.``).
Foreign checkpoints (Point-MAE, Point-BERT, released MaskClu) keep the state dict under
``base_model`` or ``model``, possibly prefixed ``module.``, with the encoder under
``MAE_encoder.`` (Point-MAE, MaskClu) or ``transformer_q.`` (Point-BERT); the modules that
differ only in name are renamed through one table, ``FOREIGN_NAMES``.

Our checkpoints hold only tensors and plain python data (the RNG streams included), so
a plain ``torch.load(path, weights_only=True)`` opens them, as Point-MAE's and MaskClu's
tools do. Loading here is safe by default too: ``torch.load(weights_only=True)`` with
numpy's array, scalar and dtype types allow-listed (other code bases store numpy metrics,
and our checkpoints did store numpy's RNG state before), always mapped to the CPU first. A
file holding other pickled objects is refused with an error naming them; full unpickling
(which can run code from the file) happens only when asked for, with ``trusted=True`` or the
environment variable ``MASKCLU_TRUST_CHECKPOINTS=1``.
"""
import os
import re
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from utils.dist import get_rank
from utils.io import atomic_write
from utils.load_report import HINTS, LoadReport, ShapeMismatch, hint_for
from utils.logger import get_logger
from utils.misc import rng_state, set_rng_state

CHECKPOINT_VERSION = 1
CHECKPOINT_KEYS = ('version', 'epoch', 'base_model', 'optimizer', 'scheduler', 'scaler', 'rng',
                   'metrics', 'best_metrics', 'config')
WRAPPER_PREFIXES = ('module.', '_orig_mod.', 'base_model.')
ENCODER_PREFIXES = ('MAE_encoder.', 'transformer_q.')
TRUST_ENV = 'MASKCLU_TRUST_CHECKPOINTS'


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or does not fit; the message names the file."""


# ----------------------------------------------------------------------------- saving

def save_checkpoint(state, path):
    """Write ``state`` to ``path`` atomically (call it on the main process only): see
    ``utils.io.atomic_write``; a failed or interrupted save leaves a previous ``path`` intact."""
    with atomic_write(path) as f:
        torch.save(state, f)


def unwrap_model(model):
    """The bare module inside DistributedDataParallel / DataParallel / torch.compile wrappers."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif isinstance(getattr(model, '_orig_mod', None), nn.Module):
            model = model._orig_mod
        else:
            return model


def make_checkpoint(model, optimizer=None, scheduler=None, scaler=None, *, epoch,
                    metrics=None, best_metrics=None, config=None, rng=None):
    """Everything ``resume_state`` needs, in our checkpoint format (see ``CHECKPOINT_KEYS``).

    ``epoch`` is the number of epochs completed (``ckpt-epoch-300.pth`` holds
    ``epoch=300``), which is also the 0-based index of the next epoch. ``metrics``,
    ``best_metrics`` and ``config`` are converted to plain python data (tensors and numpy
    values to numbers or lists), so the file loads without unpickling arbitrary objects.
    The model tensors are referenced, not copied: save the result right away. ``rng`` defaults
    to this process's ``rng_state()``; under DDP pass ``rng_state_all_ranks()`` (a list by rank).
    """
    return {
        'version': CHECKPOINT_VERSION,
        'epoch': int(epoch),
        'base_model': unwrap_model(model).state_dict(),
        'optimizer': _state_of(optimizer),
        'scheduler': _state_of(scheduler),
        'scaler': _state_of(scaler),
        'rng': rng_state() if rng is None else rng,
        'metrics': to_plain(metrics, 'metrics'),
        'best_metrics': to_plain(best_metrics, 'best_metrics'),
        'config': to_plain(config, 'config'),
    }


def _state_of(obj):
    return None if obj is None else obj.state_dict()


def to_plain(obj, where='value'):
    """Convert nested mappings/sequences of numbers, strings, tensors, numpy values and paths
    to plain python data; anything else is a TypeError naming where it sits."""
    if isinstance(obj, (torch.Tensor, np.ndarray, np.generic)):  # before float: np.float64 is a float
        return obj.tolist()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, Mapping):
        return {k: to_plain(v, f'{where}.{k}') for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v, f'{where}[{i}]') for i, v in enumerate(obj)]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"{where} is a {type(obj).__name__}; a checkpoint stores only plain data "
                    "(dicts, lists, numbers, strings, tensors)")


# ---------------------------------------------------------------------------- loading

def load_checkpoint(path, map_location='cpu', trusted=None):
    """Load a checkpoint file onto ``map_location`` (CPU by default, also for CUDA files).

    Safe by default (see the module docstring); ``trusted=True``, or ``trusted=None`` with
    ``MASKCLU_TRUST_CHECKPOINTS=1`` in the environment, unpickles everything. Raises
    ``CheckpointError`` naming the file when it is missing, truncated, corrupt or refused.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        reason = 'is a folder, not a file' if os.path.isdir(path) else 'does not exist'
        raise CheckpointError(f"checkpoint {path} {reason}")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): an interrupted copy or download?")
    if trusted is None:
        trusted = os.environ.get(TRUST_ENV, '') == '1'
    try:
        if trusted:
            return torch.load(path, map_location=map_location, weights_only=False)
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # any failure to read the file is reported with its name
        raise _read_error(path, e) from e


def _numpy_safe_globals():
    """numpy's array, scalar and dtype reconstructors, under their numpy 1 and 2 names."""
    core = getattr(np, '_core', None) or np.core
    module = getattr(np, 'dtypes', None)
    dtypes = [getattr(module, n) for n in getattr(module, '__all__', ())]
    named = [(fn, f'numpy.{mod}.multiarray.{fn.__name__}')
             for fn in (core.multiarray._reconstruct, core.multiarray.scalar) for mod in ('core', '_core')]
    return [np.ndarray, np.dtype, *{d for d in dtypes if isinstance(d, type)}, *named]


def _read_error(path, err):
    """A ``CheckpointError`` for a failed ``torch.load``: refused objects, or a bad file."""
    refused = _refused_globals(path) if 'weights only' in str(err).lower() else []
    refused = refused or re.findall(r'Unsupported global: GLOBAL (\S+)', str(err))
    if refused:
        return CheckpointError(
            f"checkpoint {path} holds objects that a safe load refuses: {', '.join(refused)}. "
            f"Only if you trust the file, set {TRUST_ENV}=1 (or pass trusted=True) to unpickle it fully")
    return CheckpointError(f"cannot load checkpoint {path}: the file is truncated, corrupt or not a "
                           f"PyTorch checkpoint ({type(err).__name__}: {_short_reason(err)})")


def _refused_globals(path):
    """Globals in a zip checkpoint outside the safe set (empty if the file cannot be scanned)."""
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:
        return []


def _short_reason(err):
    text = str(err)
    marker = 'WeightsUnpickler error:'
    if marker in text:
        text = text.split(marker, 1)[1]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else 'no details'


def extract_state_dict(ckpt, source='checkpoint'):
    """The model state dict inside ``ckpt``: its ``base_model``, ``model``, ``state_dict`` or
    ``model_state_dict`` (Point-MAE's part-segmentation checkpoints) entry, or ``ckpt`` itself
    when it is a bare state dict (all values tensors)."""
    if isinstance(ckpt, Mapping):
        for key in ('base_model', 'model', 'state_dict', 'model_state_dict'):
            if isinstance(ckpt.get(key), Mapping):
                return dict(ckpt[key])
        if ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
            return dict(ckpt)
        found = list(ckpt)[:10]
    else:
        found = type(ckpt).__name__
    raise CheckpointError(f"{source} holds no model state dict: expected a 'base_model', 'model', "
                          f"'state_dict' or 'model_state_dict' entry or a bare state dict, found {found}")


def strip_prefixes(state_dict, prefixes=WRAPPER_PREFIXES + ENCODER_PREFIXES):
    """Remove known leading prefixes from every key, repeatedly
    (``module.base_model.MAE_encoder.norm.weight`` -> ``norm.weight``).

    Raises ``CheckpointError`` if two keys become the same name.
    """
    prefixes = tuple(prefixes)
    return _map_keys(state_dict, lambda key: _strip(key, prefixes), 'stripping prefixes')


def _map_keys(state_dict, new_name, action):
    """``state_dict`` with every key replaced by ``new_name(key)``; a collision is an error."""
    out, origin = {}, {}
    for key, value in state_dict.items():
        new = new_name(key)
        if new in out:
            raise CheckpointError(f"keys '{origin[new]}' and '{key}' both become '{new}' after {action}")
        out[new], origin[new] = value, key
    return out


def _strip(key, prefixes):
    stripped = True
    while stripped:
        stripped = False
        for prefix in prefixes:
            if key.startswith(prefix):
                key, stripped = key[len(prefix):], True
    return key


def encoder_state_dict(state_dict, encoder_prefixes=ENCODER_PREFIXES):
    """The encoder part of a (pre-training) state dict, with downstream-model names.

    Wrapper prefixes (``module.``, ``_orig_mod.``, ``base_model.``) are stripped first. If
    any key then starts with an encoder prefix, only those keys are kept (decoder, mask
    token and pre-training heads are dropped) and the prefix is stripped; otherwise every
    key is kept (the checkpoint already has downstream names, e.g. a fine-tuned model).
    """
    encoder_prefixes = tuple(encoder_prefixes)
    state_dict = strip_prefixes(state_dict, WRAPPER_PREFIXES)
    if any(k.startswith(encoder_prefixes) for k in state_dict):
        state_dict = {k: v for k, v in state_dict.items() if k.startswith(encoder_prefixes)}
    return strip_prefixes(state_dict, WRAPPER_PREFIXES + encoder_prefixes)


# ------------------------------------------------------------------- foreign names

# The one rename table between other code bases' state-dict names and ours (keys without
# wrapper prefixes), as prefix pairs: read left to right when loading (``to_our_names``), right
# to left when exporting (``to_foreign_names``). Released MaskClu: its cluster head
# ``cut_pool`` (MinCutPoolingLayer: Wm, Ws bias-free C->hidden; W1 = Linear-LayerNorm-ReLU-
# Linear; W2 = Linear(hidden->P) after a ReLU) is our graph ``cluster_head``. Point-MAE: its
# reconstruction head ``increase_dim`` (Conv1d(C->3S)) is ours in ``reconstruction_loss``.
FOREIGN_NAMES = {
    'cut_pool.Wm.': 'cluster_head.graph.w_m.',
    'cut_pool.Ws.': 'cluster_head.graph.w_s.',
    'cut_pool.W1.0.': 'cluster_head.mlp.0.',
    'cut_pool.W1.1.': 'cluster_head.mlp.1.',
    'cut_pool.W1.3.': 'cluster_head.mlp.3.',
    'cut_pool.W2.': 'cluster_head.mlp.5.',
    'increase_dim.0.': 'reconstruction_loss.head.',
}


def to_our_names(state_dict, table=None):
    """Keys renamed from the foreign names of ``FOREIGN_NAMES`` (or ``table``) to ours."""
    return _rename(state_dict, FOREIGN_NAMES if table is None else table)


def to_foreign_names(state_dict, table=None):
    """Keys renamed from our names to the foreign ones: the table read right to left."""
    return _rename(state_dict, {ours: theirs for theirs, ours in (FOREIGN_NAMES if table is None else table).items()})


def _rename(state_dict, pairs):
    return _map_keys(state_dict, lambda key: next((to + key[len(old):] for old, to in pairs.items()
                                                   if key.startswith(old)), key), 'renaming')


# ------------------------------------------------------------------- pre-trained weights

# Backbone weights (the ``PointEncoder``, bare or under ``MAE_encoder.``): a shape mismatch there
# stops a load unless a partial load is asked for; a mismatch in a head is only reported.
BACKBONE_KEY = re.compile(r'^(MAE_encoder\.)?(encoder|pos_embed|blocks|norm|cls_token|cls_pos)(\.|$)')


def load_pretrained(model, path_or_ckpt, logger=None, hints=None, partial=False, strict_shapes=False,
                    opt_in='partial=True', source=None):
    """Load pre-trained (or fine-tuned) weights non-strictly and log a grouped report.

    ``path_or_ckpt`` is a file or an already loaded checkpoint dict. Prefixes are stripped and
    foreign names renamed (``FOREIGN_NAMES``); for a model that does not itself use an encoder
    prefix, only the checkpoint's encoder is taken (``encoder_state_dict``). Tensors load where
    names and shapes match. A shape mismatch on a backbone weight (``BACKBONE_KEY``) raises a
    one-line ``CheckpointError`` with the config key that fixes it, before anything is loaded,
    unless ``partial=True`` (then, like mismatches in heads, it is reported and the weight stays
    as initialised). ``strict_shapes=True`` treats a mismatch anywhere (heads too) like one in the
    backbone (``--start_ckpts``: the whole model is meant to continue). ``opt_in`` names the
    partial load in the error (``--partial_load`` for the command line). Hints: ``hints``
    (regex -> message) tried before ``utils.load_report.HINTS``. ``source`` names an already
    loaded checkpoint in messages. Returns a ``LoadReport``.
    """
    source = os.fspath(path_or_ckpt) if isinstance(path_or_ckpt, (str, os.PathLike)) else source or 'the given checkpoint'
    ckpt = load_checkpoint(path_or_ckpt) if isinstance(path_or_ckpt, (str, os.PathLike)) else path_or_ckpt
    target = unwrap_model(model)
    own = target.state_dict()
    state, renamed = _state_for_model(extract_state_dict(ckpt, source), own)
    report = _compare(state, own, source, [*(hints or {}).items(), *HINTS.items()])
    report.unexpected = [renamed.get(k, k) for k in report.unexpected]  # as the file names them
    blocking = [m for m in report.mismatched if strict_shapes or BACKBONE_KEY.match(m.key)]
    if blocking and not partial:
        part = 'model' if strict_shapes else "model's backbone"
        more = f' (and {len(blocking) - 1} more tensors)' if len(blocking) > 1 else ''
        raise CheckpointError(f"{source} does not fit the {part}: {blocking[0]}{more}; nothing was loaded "
                              f"(a partial load, {opt_in}, would load the {len(report.loaded)}/{report.total} "
                              f"tensors that fit and leave the rest as initialised)")
    target.load_state_dict({k: state[k] for k in report.loaded}, strict=False)
    _log_report(report, logger or get_logger())
    return report


def _state_for_model(state_dict, own):
    """``(state, renamed)``: ``state_dict`` in our names, prefixes stripped the way that fits
    ``own`` (encoder prefixes kept when the model has them, else only the encoder taken), and
    ``{our name: name in the file}`` for the keys ``FOREIGN_NAMES`` renamed."""
    stripped = strip_prefixes(state_dict, WRAPPER_PREFIXES)
    state = to_our_names(stripped)
    renamed = {new: old for new, old in zip(state, stripped) if new != old}
    if any(k.startswith(ENCODER_PREFIXES) for k in own):
        return state, renamed
    return encoder_state_dict(state), renamed


def _compare(state, own, source, hints):
    loaded, mismatched = [], []
    for key in own:
        if key not in state:
            continue
        ckpt_shape, model_shape = tuple(state[key].shape), tuple(own[key].shape)
        if ckpt_shape == model_shape:
            loaded.append(key)
        else:
            mismatched.append(ShapeMismatch(key, ckpt_shape, model_shape,
                                            hint_for(key, ckpt_shape, model_shape, hints)))
    return LoadReport(source=source, loaded=loaded, missing=[k for k in own if k not in state],
                      unexpected=[k for k in state if k not in own], mismatched=mismatched, total=len(own))


def _log_report(report, logger):
    lines = report.lines()
    logger.info(lines[0])
    for line in lines[1:]:
        (logger.warning if line.startswith(('shape mismatch', 'different module')) else logger.info)(line)
    if not report.loaded:
        logger.warning(f"nothing was loaded from {report.source}: is it a checkpoint of this model family?")


# ----------------------------------------------------------------------------- resume

def resume_state(path, model, optimizer, scheduler=None, scaler=None):
    """Restore a run from our checkpoint at ``path``; returns (start_epoch, metrics, best_metrics).

    The model is loaded strictly; optimizer, scheduler and (when both sides have one) the
    AMP scaler states and every RNG stream are restored. ``start_epoch`` is the saved
    ``epoch`` (epochs completed = 0-based index of the next epoch). Raises ``CheckpointError``
    naming the file when something needed is absent (e.g. a foreign or weights-only
    checkpoint) or the model does not match.
    """
    path = os.fspath(path)
    ckpt = load_checkpoint(path)
    _check_resumable(ckpt, path, optimizer, scheduler)
    try:
        unwrap_model(model).load_state_dict(ckpt['base_model'], strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {path} does not match the model (was the config changed?): {e}") from e
    if optimizer is not None:
        optimizer.load_state_dict(ckpt['optimizer'])
    if scheduler is not None:
        scheduler.load_state_dict(ckpt['scheduler'])
    if scaler is not None and ckpt.get('scaler'):
        scaler.load_state_dict(ckpt['scaler'])
    rng = rng_of_this_rank(ckpt['rng'])
    if rng is not None:
        set_rng_state(rng)
    return ckpt['epoch'], ckpt.get('metrics'), ckpt.get('best_metrics')


def rng_of_this_rank(rng):
    """This rank's RNG streams in a checkpoint's ``rng``: one state (``rng_state()``), or a list
    with one per rank (``rng_state_all_ranks()`` under DDP). None for a rank the list lacks (the
    world has grown): that rank keeps its fresh seeding, so ranks still draw differently."""
    if isinstance(rng, Mapping):
        return rng
    rank = get_rank()
    return rng[rank] if rank < len(rng) else None


def _check_resumable(ckpt, path, optimizer, scheduler):
    if not isinstance(ckpt, Mapping):
        raise CheckpointError(f"checkpoint {path} is a {type(ckpt).__name__}, not a training checkpoint")
    needed = ['version', 'epoch', 'base_model', 'rng']
    needed += ['optimizer'] * (optimizer is not None) + ['scheduler'] * (scheduler is not None)
    absent = [k for k in needed if ckpt.get(k) is None]
    if absent:
        raise CheckpointError(f"checkpoint {path} cannot be resumed from: it lacks {absent} "
                              "(a foreign or weights-only file? load weights with --ckpts/--start_ckpts instead)")
    if ckpt['version'] > CHECKPOINT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {ckpt['version']}, newer than this code "
                              f"understands ({CHECKPOINT_VERSION})")
