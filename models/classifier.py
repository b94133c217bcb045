"""Classification fine-tuning model (Point-MAE's ``PointTransformer``): backbone + head.

Three protocols (``model.type``, the paper's Table 3): ``full`` (everything trains, the 3-layer
head), ``linear`` (MLP-Linear: frozen encoder, one Linear head on the global feature) and
``mlp3`` (MLP-3: frozen encoder, the 3-layer head).
"""
from torch import nn

from models.build import MODELS, check_choice
from models.encoder import PointEncoder, backbone_kwargs, check_backbone_config, readable_keys, require_filled
from models.weight_init import init_vit_weights
from utils.config import ConfigError, check_keys

TYPES = ('full', 'linear', 'mlp3')


def classification_head(in_dim, num_classes):
    """Linear(2C->256)-BN-ReLU-Dropout(0.5)-Linear(256->256)-BN-ReLU-Dropout(0.5)-Linear(256->classes)."""
    return nn.Sequential(nn.Linear(in_dim, 256), nn.BatchNorm1d(256), nn.ReLU(inplace=True), nn.Dropout(0.5),
                         nn.Linear(256, 256), nn.BatchNorm1d(256), nn.ReLU(inplace=True), nn.Dropout(0.5),
                         nn.Linear(256, num_classes))


def linear_head(in_dim, num_classes):
    """MLP-Linear: one Linear(2C->classes) (state-dict names ``cls_head_finetune.0.*``)."""
    return nn.Sequential(nn.Linear(in_dim, num_classes))


@MODELS.register('PointTransformer')
class PointTransformer(PointEncoder):
    """The backbone on all G patches (no masking) and ``cls_head_finetune`` on concat(cls, max).

    forward(points (B, N, 3)) -> logits (B, cls_dim). The backbone is ``PointEncoder``
    itself, so its state-dict names are the pre-training ``MAE_encoder.*`` names without the
    prefix (``encoder.*``, ``pos_embed.*``, ``blocks.blocks.{i}.*``, ``norm.*``, ``cls_token``,
    ``cls_pos``) plus ``cls_head_finetune.*``. ``global_features(points)`` -> (B, 2C) and
    ``block_features(points, after_blocks)`` expose the backbone for other tasks.

    Config (Point-MAE's finetune schema, plus ``point_channels`` 3 | 4 (must match the
    pre-trained checkpoint) and ``fps_random_start``); ``type`` ``full`` | ``linear`` | ``mlp3``
    (the frozen ones use ``PointEncoder.freeze_backbone``: backbone weights and BatchNorm
    statistics stay bit-identical, it runs without a graph). ``cls_token: false`` drops the cls
    token (global feature concat(mean, max)): what ``--svm`` uses for an encoder pre-trained
    without one (Point-MAE's), instead of probing a random token. ``point_channels``, ``trans_dim``,
    ``encoder_dims`` and ``depth`` may be ``auto``: the fine-tuning runner fills them from the
    checkpoint (``utils.checkpoint_interop.fill_open_keys``) before the model is built.
    """

    CONFIG_KEYS = {
        'NAME': 'PointTransformer', 'num_heads': 6, 'drop_path_rate': 0.1, 'cls_dim': 40, 'group_size': 32,
        'num_group': 64, 'fps_random_start': False, 'type': 'full', 'cls_token': True,
        **readable_keys(trans_dim=384, encoder_dims=384, depth=12, point_channels=4),
    }

    @classmethod
    def check_config(cls, config, where='model'):
        """Keys checked against ``CONFIG_KEYS`` (defaults filled) and choices validated; keys left
        ``auto`` are checked once filled."""
        cfg = check_keys(dict(config), cls.CONFIG_KEYS, where)
        check_choice(cfg['type'], TYPES, f'{where}.type')
        if not isinstance(cfg['cls_dim'], int) or cfg['cls_dim'] < 2:
            raise ConfigError(f"{where}.cls_dim: {cfg['cls_dim']!r}; expected the number of classes (>= 2)")
        return check_backbone_config(cfg, where)

    def __init__(self, config):
        cfg = self.check_config(config)
        require_filled(cfg, '--finetune_model --ckpts X')
        super().__init__(**backbone_kwargs(cfg))
        self.config = cfg
        make_head = linear_head if cfg['type'] == 'linear' else classification_head
        self.cls_head_finetune = make_head(2 * cfg['trans_dim'], cfg['cls_dim'])
        self.cls_head_finetune.apply(init_vit_weights)
        self.freeze_backbone(cfg['type'] != 'full')

    def global_features(self, points, generator=None):
        """points (B, N, 3) -> concat(cls, max over the G patch tokens) (B, 2C)."""
        with self.frozen_context():
            return super().forward(points, generator)

    def forward(self, points, generator=None):
        return self.cls_head_finetune(self.global_features(points, generator))

