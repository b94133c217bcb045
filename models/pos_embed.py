"""Position embeddings of patch centers: Point-MAE's MLP and the released sinusoidal variant."""
import torch
from torch import nn


def mlp_pos_embed(dim):
    """Linear(3->128)-GELU-Linear(128->C): center (B, T, 3) -> (B, T, C). Keys ``0.*``, ``2.*``."""
    return nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, dim))


def sincos_pos_embed(dim, features=48):
    """SinCos(3->48)-Linear(48->C)-GELU-Linear(C->C): center (B, T, 3) -> (B, T, C).

    The released MaskClu decoder position embedding; keys ``1.*``, ``3.*`` (index 0 has no
    parameters) so its checkpoints load.
    """
    return nn.Sequential(SinCosFeatures(features), nn.Linear(features, dim), nn.GELU(), nn.Linear(dim, dim))


class SinCosFeatures(nn.Module):
    """Fixed sinusoidal features of 3-d coordinates: xyz (B, T, 3) -> (B, T, F), F = 6 * F'.

    For each coordinate x and frequency index j < F' = F/6: sin and cos of
    ``beta * x / alpha ** (j / F')`` (alpha 1000, beta 100), ordered coordinate, frequency,
    (sin, cos) like the released code.
    """

    def __init__(self, features=48, alpha=1000.0, beta=100.0):
        super().__init__()
        if features % 6:
            raise ValueError(f'sinusoidal features must be a multiple of 6, got {features}')
        per_axis = features // 6
        self.register_buffer('inv_freq', beta / alpha ** (torch.arange(per_axis) / per_axis), persistent=False)

    def forward(self, xyz):
        angles = xyz.unsqueeze(-1) * self.inv_freq
        return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-3)
