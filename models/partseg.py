"""Part segmentation (ShapeNetPart, method.md section 3): block features propagated to every point.

The layout and state-dict names follow Point-MAE's ``segmentation/models/pt.py`` (the released
MaskClu ``SegTransformer`` is the same model), so its part-segmentation checkpoints and ours
interchange: the backbone is ``PointEncoder`` itself (``encoder.*``, ``pos_embed.*``,
``blocks.blocks.{i}.*``, ``norm.*``; ``cls_token``/``cls_pos`` only with ``cls_token: true``),
then ``label_conv.{0,1}.*`` (category embedding), ``propagation_0.mlp_convs.{i}.*`` /
``propagation_0.mlp_bns.{i}.*`` (feature propagation), ``convs1``/``bns1``, ``convs2``/``bns2``,
``convs3`` (head). Pre-training checkpoints (ours and Point-MAE's under ``MAE_encoder.``,
Point-BERT's ``transformer_q.`` names, the released MaskClu ones) load their encoder through
``load_encoder``. Per-point features of a frozen encoder without learned layers (the dense
probe's input) come from ``models.features.FeatureEncoder`` with ``point_blocks=(4, 8, 12)``.
"""
import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import record_function

from extensions import interpolate_idw
from models.build import MODELS, check_choice
from models.encoder import PointEncoder, backbone_kwargs, check_backbone_config, readable_keys, require_filled
from models.tokenizer import pointwise
from utils.checkpoint import load_checkpoint, load_pretrained
from utils.checkpoint_interop import OPEN
from utils.config import ConfigError, check_keys
from utils.logger import get_logger

def batch_norm_last(bn, x):
    """A ``BatchNorm1d`` over the channels of channels-last x (..., C): the statistics are taken
    over every leading position, as ``bn`` would over (B, C, N)."""
    return bn(x.reshape(-1, x.shape[-1])).view(x.shape)


class FeaturePropagation(nn.Module):
    """PointNet++ feature propagation from the G centers to the N points (Point-MAE's
    ``PointNetFeaturePropagation``; names ``mlp_convs.{i}``, ``mlp_bns.{i}``).

    points (B, N, 3), center (B, G, 3), features (B, G, D) -> (B, N, dims[-1]): each point's
    features interpolated from its 3 nearest centers (weights 1/d² normalised, ``interpolate_idw``),
    its xyz concatenated first (3 + D channels), then Conv1d-BN-ReLU per entry of ``dims``.

    The first Conv1d is linear and the interpolation weights sum to 1, so it is applied to the
    G center features before interpolating: ``W [xyz; Σ w_j f_j] + b = W_x xyz + Σ w_j (W_f f_j) + b``,
    the same function with the (3 + D) -> dims[0] product computed G instead of N times.
    """

    def __init__(self, in_channels, dims):
        super().__init__()
        widths = [in_channels, *dims]
        self.mlp_convs = nn.ModuleList(nn.Conv1d(a, b, 1) for a, b in zip(widths[:-1], widths[1:]))
        self.mlp_bns = nn.ModuleList(nn.BatchNorm1d(b) for b in dims)

    def forward(self, points, center, features):
        first = self.mlp_convs[0].weight.squeeze(-1)
        projected = F.linear(features, first[:, 3:])
        x = interpolate_idw(points, center, projected) + F.linear(points, first[:, :3], self.mlp_convs[0].bias)
        x = F.relu(batch_norm_last(self.mlp_bns[0], x))
        for conv, bn in zip(self.mlp_convs[1:], self.mlp_bns[1:]):
            x = F.relu(batch_norm_last(bn, pointwise(conv, x)))
        return x


@MODELS.register('PartSegmentation')
class PartSegmentation(PointEncoder):
    """Part segmentation model (method.md section 3).

    ``forward(points (B, N, 3), category (B,) int64, generator=None)`` -> log-probabilities (at least float32)
    (B, N, num_parts) over all parts (train with ``nll_loss``; evaluation restricts the argmax
    to the category's parts, ``utils.seg_metrics``). Steps: backbone on all G patches (no
    masking); features after ``feature_blocks`` (4, 8, 12), each through the final LayerNorm,
    concatenated (B, G, 3C); global = max and mean over the G patches (B, 2·3C) plus the
    category embedding ``label_conv`` (one-hot -> Conv1d(16 -> 64, no bias)-BN-LeakyReLU(0.2));
    per-point features by ``FeaturePropagation`` (3C + 3 -> 1536 -> 1024 with BN-ReLU); head on
    concat(per-point, global): Conv1d(-> 512)-BN-ReLU-Dropout(0.5)-Conv1d(-> 256)-BN-ReLU-
    Conv1d(-> 50); log-softmax. The global part of ``convs1`` is computed once per shape and
    broadcast over the points (same function as Point-MAE's concatenation, without the (B, 3392, N)
    tensor). The head keeps PyTorch's default initialisation, as Point-MAE's does.

    Config (``CONFIG_KEYS``): backbone sizes as the classifier (``trans_dim`` C, ``depth``,
    ``num_heads``, ``drop_path_rate``, ``num_group`` G, ``group_size`` S, ``point_channels`` 3 | 4
    (must match the pre-trained checkpoint: 3 for Point-MAE's, 4 for MaskClu's; like ``trans_dim``,
    ``encoder_dims`` and ``depth`` it may be ``auto``, read from ``--ckpts`` by the runner), ``fps_random_start``);
    ``cls_token`` (prepend the cls token in the blocks; off in Point-MAE's and the released
    segmentation models); ``feature_blocks`` (1-based); ``num_categories``, ``num_parts``,
    ``label_dim``; ``propagation_dims``; ``head_dims`` (two widths); ``dropout``; ``type``
    ``full`` (everything trains) | ``frozen`` (the backbone's weights and BatchNorm statistics
    stay bit-identical: ``PointEncoder.freeze_backbone``; only the propagation,
    category embedding and head train).

    Profiler ranges: the backbone's, ``phase/propagation`` and ``phase/heads``.
    """

    CONFIG_KEYS = {
        'NAME': 'PartSegmentation', **readable_keys(trans_dim=384, encoder_dims=384, depth=12, point_channels=4),
        'num_heads': 6, 'drop_path_rate': 0.1, 'group_size': 32, 'num_group': 128,
        'fps_random_start': False, 'cls_token': False, 'feature_blocks': [4, 8, 12], 'num_categories': 16,
        'num_parts': 50, 'label_dim': 64, 'propagation_dims': [1536, 1024], 'head_dims': [512, 256],
        'dropout': 0.5, 'type': 'full',
    }

    @classmethod
    def check_config(cls, config, where='model'):
        """Keys checked against ``CONFIG_KEYS`` (defaults filled), choices and sizes validated."""
        cfg = check_keys(dict(config), cls.CONFIG_KEYS, where)
        check_choice(cfg['type'], ('full', 'frozen'), f'{where}.type')
        check_backbone_config(cfg, where)
        blocks, depth = list(cfg['feature_blocks']), cfg['depth']
        depth = blocks[-1] if depth == OPEN and blocks else depth   # checked against the depth once read
        if not blocks or blocks != sorted(set(blocks)) or not 1 <= blocks[0] <= blocks[-1] <= depth:
            raise ConfigError(f"{where}.feature_blocks: {blocks} must be increasing block numbers in "
                              f"[1, depth={cfg['depth']}]")
        if len(cfg['head_dims']) != 2 or not cfg['propagation_dims']:
            raise ConfigError(f"{where}: head_dims needs two widths (convs1, convs2) and propagation_dims "
                              f"at least one; got {cfg['head_dims']} and {cfg['propagation_dims']}")
        return cfg

    def __init__(self, config):
        cfg = self.check_config(config)
        require_filled(cfg, 'trainpartseg.py --ckpts X')
        super().__init__(**backbone_kwargs(cfg))
        self.config = cfg
        self.feature_blocks = tuple(cfg['feature_blocks'])
        self.num_categories, self.num_parts = cfg['num_categories'], cfg['num_parts']
        dense = len(self.feature_blocks) * cfg['trans_dim']
        self.label_conv = nn.Sequential(nn.Conv1d(self.num_categories, cfg['label_dim'], 1, bias=False),
                                        nn.BatchNorm1d(cfg['label_dim']), nn.LeakyReLU(0.2))
        self.propagation_0 = FeaturePropagation(dense + 3, cfg['propagation_dims'])
        hidden1, hidden2 = cfg['head_dims']
        self.convs1 = nn.Conv1d(cfg['propagation_dims'][-1] + 2 * dense + cfg['label_dim'], hidden1, 1)
        self.bns1 = nn.BatchNorm1d(hidden1)
        self.dp1 = nn.Dropout(cfg['dropout'])
        self.convs2 = nn.Conv1d(hidden1, hidden2, 1)
        self.bns2 = nn.BatchNorm1d(hidden2)
        self.convs3 = nn.Conv1d(hidden2, self.num_parts, 1)
        self.freeze_backbone(cfg['type'] == 'frozen')

    def load_encoder(self, path_or_ckpt, logger=None, partial=False, source=None):
        """Load a pre-trained encoder (or a whole segmentation checkpoint) with
        ``utils.checkpoint.load_pretrained``; returns its ``LoadReport``.

        Pre-training checkpoints give the backbone (prefix ``MAE_encoder.`` / ``transformer_q.``
        stripped, decoder and pre-training heads ignored); the segmentation layers stay as
        initialised. Point-MAE's part-segmentation checkpoints (``model_state_dict``) load whole.
        A backbone of another shape (e.g. ``point_channels``) is a ``CheckpointError`` naming the
        config key, unless ``partial`` (then those weights stay as initialised, reported).
        ``source``: the file a checkpoint dict was read from (for the log).
        """
        ckpt = path_or_ckpt
        if not isinstance(ckpt, dict) or source:
            (logger or get_logger()).info(f'part segmentation: weights from {source or path_or_ckpt}')
        if not isinstance(ckpt, dict):
            ckpt = load_checkpoint(path_or_ckpt)
        if isinstance(ckpt, dict) and isinstance(ckpt.get('model_state_dict'), dict) \
                and not any(k in ckpt for k in ('base_model', 'model')):
            ckpt = {'model': ckpt['model_state_dict']}
        return load_pretrained(self, ckpt, logger, partial=partial)

    # ------------------------------------------------------------------ forward
    def forward(self, points, category, generator=None):
        with self.frozen_context():
            blocks, center = self.block_features(points, self.feature_blocks, generator)
        features = torch.cat(blocks, dim=-1)                                  # (B, G, 3C)
        with record_function('phase/propagation'):
            per_point = self.propagation_0(points, center, features)
        with record_function('phase/heads'):
            one_hot = F.one_hot(category, self.num_categories).to(points.dtype)
            label = self.label_conv(one_hot.unsqueeze(-1)).squeeze(-1)
            shape = torch.cat([features.amax(dim=1), features.mean(dim=1), label], dim=-1)
            weight = self.convs1.weight.squeeze(-1)
            width = per_point.shape[-1]
            x = F.linear(per_point, weight[:, :width]) + F.linear(shape, weight[:, width:], self.convs1.bias)[:, None]
            x = self.dp1(F.relu(batch_norm_last(self.bns1, x)))
            x = F.relu(batch_norm_last(self.bns2, pointwise(self.convs2, x)))
            logits = pointwise(self.convs3, x)
            return F.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)


def nll_loss(log_probs, parts):
    """Mean negative log-likelihood over all points: log_probs (B, N, P), parts (B, N) int64 -> scalar."""
    return F.nll_loss(log_probs.reshape(-1, log_probs.shape[-1]), parts.reshape(-1))
