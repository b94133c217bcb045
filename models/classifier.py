"""Classification fine-tuning model (Point-MAE's ``PointTransformer``): backbone + MLP head."""
from torch import nn

from models.build import MODELS, check_choice
from models.encoder import PointEncoder
from models.weight_init import init_vit_weights
from utils.config import ConfigError, check_keys


def classification_head(in_dim, num_classes):
    """Linear(2C->256)-BN-ReLU-Dropout(0.5)-Linear(256->256)-BN-ReLU-Dropout(0.5)-Linear(256->classes)."""
    return nn.Sequential(nn.Linear(in_dim, 256), nn.BatchNorm1d(256), nn.ReLU(inplace=True), nn.Dropout(0.5),
                         nn.Linear(256, 256), nn.BatchNorm1d(256), nn.ReLU(inplace=True), nn.Dropout(0.5),
                         nn.Linear(256, num_classes))


@MODELS.register('PointTransformer')
class PointTransformer(PointEncoder):
    """The backbone on all G patches (no masking) and ``cls_head_finetune`` on concat(cls, max).

    forward(points (B, N, 3)) -> logits (B, cls_dim). The backbone is ``PointEncoder``
    itself, so its state-dict names are the pre-training ``MAE_encoder.*`` names without the
    prefix (``encoder.*``, ``pos_embed.*``, ``blocks.blocks.{i}.*``, ``norm.*``, ``cls_token``,
    ``cls_pos``) plus ``cls_head_finetune.*``. ``global_features(points)`` -> (B, 2C) and
    ``block_features(points, after_blocks)`` expose the backbone for other tasks.

    Config (Point-MAE's finetune schema, plus ``point_channels`` 3 | 4 (must match the
    pre-trained checkpoint) and ``fps_random_start``); ``type`` accepts only ``full``.
    """

    CONFIG_KEYS = {
        'NAME': 'PointTransformer', 'trans_dim': 384, 'encoder_dims': 384, 'depth': 12, 'num_heads': 6,
        'drop_path_rate': 0.1, 'cls_dim': 40, 'group_size': 32, 'num_group': 64, 'point_channels': 4,
        'fps_random_start': False, 'type': 'full',
    }

    @classmethod
    def check_config(cls, config, where='model'):
        """Keys checked against ``CONFIG_KEYS`` (defaults filled) and choices validated."""
        cfg = check_keys(dict(config), cls.CONFIG_KEYS, where)
        check_choice(cfg['type'], ('full',), f'{where}.type')
        check_choice(cfg['point_channels'], (3, 4), f'{where}.point_channels')
        if cfg['encoder_dims'] != cfg['trans_dim']:
            raise ConfigError(f"{where}: encoder_dims ({cfg['encoder_dims']}) must equal "
                              f"trans_dim ({cfg['trans_dim']})")
        return cfg

    def __init__(self, config):
        cfg = self.check_config(config)
        super().__init__(trans_dim=cfg['trans_dim'], depth=cfg['depth'], num_heads=cfg['num_heads'],
                         drop_path_rate=cfg['drop_path_rate'], num_group=cfg['num_group'],
                         group_size=cfg['group_size'], point_channels=cfg['point_channels'],
                         fps_random_start=cfg['fps_random_start'])
        self.config = cfg
        self.cls_head_finetune = classification_head(2 * cfg['trans_dim'], cfg['cls_dim'])
        self.cls_head_finetune.apply(init_vit_weights)

    def global_features(self, points, generator=None):
        """points (B, N, 3) -> concat(cls, max over the G patch tokens) (B, 2C)."""
        return super().forward(points, generator)

    def forward(self, points, generator=None):
        return self.cls_head_finetune(self.global_features(points, generator))
