"""Feature extraction with the encoder of any checkpoint: ``load_encoder(ckpt) -> FeatureEncoder``.

Works for every checkpoint kind the project reads (``utils.checkpoint`` is the one loader):
ours (pre-training: encoder under ``MAE_encoder.``, the run's config under ``config``;
fine-tuned classifiers: ``PointTransformer`` names, no prefix), Point-MAE's (``base_model``,
``module.`` prefixes, 3 input channels, no cls token in pre-training), Point-BERT's
(``transformer_q.``, a patch embedding of width ``encoder_dims`` followed by ``reduce_dim``)
and the released MaskClu ones. The backbone's sizes come from the state dict (width, depth,
input channels, cls token, ``reduce_dim``); what the weights do not fix (heads, G, S) comes
from the checkpoint's config when it has one, else from Point-MAE's defaults (6 heads, G=64,
S=32); the caller's arguments override both.

This module imports nothing from ``datasets`` (no dataset readers, no h5py).
"""
import dataclasses
import os
from collections.abc import Mapping
from typing import NamedTuple, Optional

import torch
from torch import nn

from extensions import interpolate_idw
from models.encoder import PointEncoder
from models.tokenizer import PatchEmbedding
from utils.checkpoint import (CheckpointError, encoder_state_dict, extract_state_dict, load_checkpoint,
                              load_pretrained)
from utils.checkpoint_interop import backbone_config
from utils.logger import get_logger

DEFAULT_HEADS, DEFAULT_GROUPS, DEFAULT_GROUP_SIZE = 6, 64, 32


class Features(NamedTuple):
    """What ``FeatureEncoder`` returns for points (B, N, 3).

    ``global_feature`` (B, 2C): concat(cls, max over the G patch tokens), or concat(mean, max)
    for an encoder without cls token; ``patch_tokens`` (B, G, C) after the final LayerNorm;
    ``centers`` (B, G, 3) their FPS centers; ``point_features`` (B, N, C') the patch features
    propagated to every input point by inverse-distance weighting of the 3 nearest centers
    (C' = C, or len(point_blocks) * C), None when not asked for.
    """
    global_feature: torch.Tensor
    patch_tokens: torch.Tensor
    centers: torch.Tensor
    point_features: Optional[torch.Tensor]


@dataclasses.dataclass
class EncoderSpec:
    """The sizes that rebuild a checkpoint's encoder; ``sources`` says where each came from."""
    trans_dim: int
    depth: int
    num_heads: int
    num_group: int
    group_size: int
    point_channels: int
    encoder_dims: int
    cls_token: bool
    sources: dict = dataclasses.field(default_factory=dict)

    def describe(self):
        keys = ('trans_dim', 'depth', 'num_heads', 'num_group', 'group_size', 'point_channels', 'encoder_dims')
        parts = [f"{k}={getattr(self, k)} ({self.sources.get(k, 'weights')})" for k in keys]
        return ', '.join(parts + [f"cls_token={self.cls_token}"])


class FeatureEncoder(PointEncoder):
    """A frozen ``PointEncoder`` that returns every feature level (``Features``).

    forward(points (B, N, 3), per_point=True, point_blocks=None) -> Features. FPS starts at
    point 0 (deterministic). ``point_blocks`` (1-based block counts, e.g. (4, 8, 12) as in part
    segmentation) makes the per-point features the concatenation of those blocks' patch
    features (each through the final LayerNorm) instead of the last block's. With
    ``encoder_dims != trans_dim`` (Point-BERT) the patch embedding has width ``encoder_dims`` and
    ``reduce_dim`` (Linear encoder_dims -> C) maps it to the transformer width.
    """

    def __init__(self, spec):
        super().__init__(trans_dim=spec.trans_dim, depth=spec.depth, num_heads=spec.num_heads, drop_path_rate=0.0,
                         num_group=spec.num_group, group_size=spec.group_size,
                         point_channels=spec.point_channels, cls_token=spec.cls_token)
        self.spec = spec
        self.reduce_dim = None
        if spec.encoder_dims != spec.trans_dim:
            self.encoder = PatchEmbedding(spec.encoder_dims, spec.point_channels)
            self.reduce_dim = nn.Linear(spec.encoder_dims, spec.trans_dim)

    def embed(self, neighborhood):
        """neighborhood (B, G, S, 3) -> patch tokens (B, G, C)."""
        tokens = self.encoder(neighborhood)
        return tokens if self.reduce_dim is None else self.reduce_dim(tokens)

    def forward(self, points, per_point=True, point_blocks=None):
        check_points(points)
        _, centers, tokens = self.tokenize(points)
        cls, patches, dense = self.encode_levels(tokens, centers, tuple(point_blocks or ()))
        point_features = propagate(points, centers, dense) if per_point else None
        return Features(self.global_feature(cls, patches), patches, centers, point_features)

    def encode_levels(self, tokens, centers, point_blocks=()):
        """One pass of the blocks: tokens (B, G, C), centers (B, G, 3) -> cls (B, C) or None, the
        final patch features (B, G, C), and the dense features (B, G, C'): the final ones, or the
        concatenation of the outputs after ``point_blocks`` (each through the final LayerNorm)."""
        depth = len(self.blocks.blocks)
        if any(not 1 <= b <= depth for b in point_blocks):
            raise ValueError(f"point_blocks {point_blocks}: block counts must lie in 1..{depth}")
        levels = sorted(set(point_blocks) | {depth})
        outputs = self.blocks(*self._prepend_cls(tokens, self.pos_embed(centers)), after_blocks=levels)
        normed = dict(zip(levels, map(self.norm, outputs)))
        skip = 0 if self.cls_token is None else 1
        cls = None if self.cls_token is None else normed[depth][:, 0]
        patches = normed[depth][:, skip:]
        dense = torch.cat([normed[b][:, skip:] for b in point_blocks], -1) if point_blocks else patches
        return cls, patches, dense


def propagate(points, centers, features):
    """Inverse-distance interpolation of patch features to points (PointNet++ feature
    propagation, ``extensions.interpolate_idw``): points (B, N, 3), centers (B, G, 3),
    features (B, G, C') -> (B, N, C')."""
    return interpolate_idw(points, centers, features)


def check_points(points):
    if not (isinstance(points, torch.Tensor) and points.dim() == 3 and points.shape[-1] == 3
            and points.is_floating_point()):
        shape = tuple(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__
        raise ValueError(f"the encoder takes float points (B, N, 3), got {shape}")


# ----------------------------------------------------------------------------- loading

def load_encoder(ckpt, *, num_group=None, group_size=None, num_heads=None, device=None, logger=None, source=None):
    """The encoder of ``ckpt`` (a path, or a loaded checkpoint dict named ``source`` in messages)
    as a frozen ``FeatureEncoder`` in eval mode on ``device`` (default CPU).

    ``num_group`` G, ``group_size`` S and ``num_heads`` override the checkpoint's config (the
    weights do not fix them). The load is reported like every pre-trained load
    (``utils.checkpoint.load_pretrained``); a checkpoint that leaves any encoder weight
    unloaded is a ``CheckpointError`` naming the file and the weights.
    """
    source, ckpt = read_checkpoint(ckpt, source)
    state = encoder_state_dict(extract_state_dict(ckpt, source))
    overrides = {'num_group': num_group, 'group_size': group_size, 'num_heads': num_heads}
    spec = encoder_spec(state, checkpoint_model_config(ckpt), source=source, **overrides)
    model = FeatureEncoder(spec)
    (logger or get_logger()).info(f"encoder of {source}: {spec.describe()}")
    report = load_pretrained(model, ckpt, logger=logger)
    if report.missing or report.mismatched:
        raise CheckpointError(f"{source}: the encoder cannot be rebuilt from this checkpoint "
                              f"({spec.describe()}):\n  " + '\n  '.join(report.lines()[1:]))
    return model.requires_grad_(False).eval().to(device or 'cpu')


def read_checkpoint(ckpt, source=None):
    """(name for messages, checkpoint dict) of a path or an already loaded checkpoint."""
    if isinstance(ckpt, (str, os.PathLike)):
        return os.fspath(ckpt), load_checkpoint(ckpt)
    return source or 'the given checkpoint', ckpt


def checkpoint_model_config(ckpt):
    """The ``model`` section of the config stored in one of our checkpoints, else {}."""
    config = ckpt.get('config') if isinstance(ckpt, Mapping) else None
    model = config.get('model') if isinstance(config, Mapping) else None
    return dict(model) if isinstance(model, Mapping) else {}


def encoder_spec(state, model_config=None, source='checkpoint', **overrides):
    """Infer an ``EncoderSpec`` from an encoder state dict with downstream names
    (``utils.checkpoint.encoder_state_dict``), a model config (ours: MaskClu / Point_MAE with
    ``transformer_config``, or PointTransformer's flat keys) and non-None ``overrides``."""
    for key in ('norm.weight', 'encoder.first_conv.0.weight', 'encoder.second_conv.3.weight'):
        if key not in state:
            raise CheckpointError(f"{source} holds no point-cloud ViT encoder: '{key}' is missing "
                                  f"(found {', '.join(list(state)[:6])}...)")
    info = backbone_config(state)
    depth = info.get('depth', 0)
    if not depth:
        raise CheckpointError(f"{source} holds no transformer blocks ('blocks.blocks.<i>.*')")
    config = model_config or {}
    transformer = config.get('transformer_config', config)
    sizes, sources = {}, {}
    for key, from_config, default in (('num_heads', transformer.get('num_heads'), DEFAULT_HEADS),
                                      ('num_group', config.get('num_group'), DEFAULT_GROUPS),
                                      ('group_size', config.get('group_size'), DEFAULT_GROUP_SIZE)):
        value, origin = ((overrides[key], 'given') if overrides.get(key) is not None
                         else (from_config, 'config') if from_config is not None else (default, 'default'))
        sizes[key], sources[key] = int(value), origin
    spec = EncoderSpec(trans_dim=info['trans_dim'], depth=depth, point_channels=info['point_channels'],
                       encoder_dims=info['encoder_dims'], cls_token=info['cls_token'], sources=sources, **sizes)
    if spec.trans_dim % spec.num_heads:
        raise CheckpointError(f"{source}: num_heads={spec.num_heads} ({sources['num_heads']}) does not divide "
                              f"the encoder width {spec.trans_dim}; pass the right number of heads")
    return spec
