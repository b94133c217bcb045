"""Checkpoints into the classifier (``--finetune_model``, ``--test``), through the one loader.

Every file is read by ``utils.checkpoint.load_checkpoint`` and loaded by ``load_pretrained`` (its
grouped report in the log). What a file holds is read from its weights:

* a pre-training checkpoint (ours, Point-MAE's, the released MaskClu ones): an encoder
  (``MAE_encoder.*`` or bare backbone names) and no ``cls_head_finetune.*``;
* a fine-tuned classifier (ours, Point-MAE's ``module.``-prefixed ones): ``cls_head_finetune.*``,
  whose last Linear gives the class count and whose number of Linears the head kind (1: MLP-Linear,
  3: the 3-layer head of ``full`` / ``mlp3``).

``--finetune_model`` takes either; a fine-tuned one has its head dropped (said in the log) and a new
head of ``model.cls_dim`` classes is trained. ``--test`` takes only a fine-tuned classifier whose
head fits the config, else one line says what was given and what is expected. Backbone keys the
config leaves ``auto`` are filled from the weights first (``model_config_for``, also used by part
segmentation and the SVM probe).
"""
import re

from models.encoder import default_open_keys
from utils.checkpoint import CheckpointError, WRAPPER_PREFIXES, extract_state_dict, load_pretrained, strip_prefixes
from utils.checkpoint_interop import fill_open_keys
from utils.logger import get_logger

HEAD = 'cls_head_finetune.'
HEAD_WEIGHT = re.compile(r'^cls_head_finetune\.(\d+)\.weight$')


def head_of(state):
    """``(classes, linears)`` of the classification head in a state dict (wrapper prefixes stripped),
    or None without one: the 2-d ``cls_head_finetune.<i>.weight`` tensors are its Linears."""
    linears = sorted((int(m.group(1)), tuple(v.shape)) for k, v in state.items()
                     for m in [HEAD_WEIGHT.match(k)] if m and v.dim() == 2)
    return (linears[-1][1][0], len(linears)) if linears else None


def model_state(ckpt, source):
    """The checkpoint's model state dict without wrapper prefixes (``module.`` ...)."""
    return strip_prefixes(extract_state_dict(ckpt, source), WRAPPER_PREFIXES)


def model_config_for(model_cfg, ckpt, source, logger=None):
    """``model_cfg`` (any downstream model) with the keys left ``auto`` read from the checkpoint's
    weights, or without a checkpoint (``ckpt`` None: from scratch) set to the model's defaults;
    what was filled is logged."""
    if ckpt is None:
        cfg, filled = default_open_keys(model_cfg)
        how, tag = 'no checkpoint to read them from: model keys', ' (default)'
    else:
        cfg, filled = fill_open_keys(model_cfg, model_state(ckpt, source), source)
        how, tag = f'model keys read from {source}:', ''
    if filled:
        (logger or get_logger()).info('%s %s', how, ', '.join(f'{k}={v}{tag}' for k, v in filled.items()))
    return cfg


def head_kind(linears):
    return 'linear' if linears == 1 else 'full or mlp3'


def check_test_checkpoint(ckpt, source, model_cfg):
    """Stop (``CheckpointError``, one line) unless ``ckpt`` is a fine-tuned classifier whose head fits
    ``model_cfg`` (``cls_dim`` classes; one Linear for ``type: linear``, three otherwise)."""
    head = head_of(model_state(ckpt, source))
    if head is None:
        raise CheckpointError(f"--test {source}: a pre-training checkpoint (no cls_head_finetune.* weights) was "
                              f"given; --test expects a fine-tuned classifier (ckpt-best.pth of a --finetune_model "
                              f"run); fine-tune it first: --finetune_model --ckpts {source}")
    classes, linears = head
    if classes != model_cfg['cls_dim']:
        raise CheckpointError(f"--test {source}: its head has {classes} classes, the config expects "
                              f"model.cls_dim={model_cfg['cls_dim']}; use the config it was fine-tuned with "
                              f"(or --opts model.cls_dim={classes})")
    expected = 1 if model_cfg['type'] == 'linear' else 3
    if linears != expected:
        raise CheckpointError(f"--test {source}: its head has {linears} Linear layer(s) ({head_kind(linears)}), "
                              f"the config's model.type={model_cfg['type']} expects {expected}; set model.type "
                              f"to the protocol it was fine-tuned with")


def load_for_test(model, ckpt, source, logger=None):
    """Load a fine-tuned classifier whole (after ``check_test_checkpoint``); a weight left unloaded
    is a ``CheckpointError`` naming it. Returns the ``LoadReport``."""
    check_test_checkpoint(ckpt, source, model.config)
    report = load_pretrained(model, ckpt, logger, source=source)
    if report.missing or report.mismatched:
        raise CheckpointError(f"--test {source}: the classifier does not load whole ("
                              + '; '.join(report.lines()[1:]) + ')')
    return report


def load_for_finetune(model, ckpt, source, logger=None):
    """Load the encoder of a pre-training or fine-tuned checkpoint; a fine-tuned checkpoint's head is
    dropped (logged), the model's new head stays as initialised. Returns the ``LoadReport``."""
    logger = logger or get_logger()
    state = model_state(ckpt, source)
    head = head_of(state)
    if head is not None:
        logger.warning('%s is a fine-tuned classifier: its head (cls_head_finetune.*, %d classes, %s) is dropped; '
                       'the encoder is loaded and a new %d-class head is trained', source, head[0],
                       head_kind(head[1]), model.config['cls_dim'])
        ckpt = {'base_model': {k: v for k, v in state.items() if not k.startswith(HEAD)}}
    return load_pretrained(model, ckpt, logger, source=source)
