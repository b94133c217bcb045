"""Point-MAE initialisation hooks for ``module.apply``: LayerNorm 1/0, zero biases."""
from torch import nn


def init_vit_weights(m):
    """Encoder and heads: Linear/Conv1d weight ~ N(0, 0.02) truncated at +-2, bias 0; LayerNorm 1/0."""
    if isinstance(m, (nn.Linear, nn.Conv1d)):
        nn.init.trunc_normal_(m.weight, std=0.02)
    _init_bias_and_norm(m)


def init_xavier_weights(m):
    """Point-MAE decoder: Linear weight xavier-uniform, bias 0; LayerNorm 1/0."""
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
    _init_bias_and_norm(m)


def _init_bias_and_norm(m):
    if isinstance(m, (nn.Linear, nn.Conv1d)) and m.bias is not None:
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
