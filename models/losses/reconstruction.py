"""Optional masked-point reconstruction term ``reconstruction`` (method 2.5, Point-MAE)."""
from torch import nn

from extensions import chamfer_distance


def chamfer_l2(pred, target):
    """Chamfer-L2 ``mean d1 + mean d2`` of squared nearest distances: (K, S, 3) x2 -> scalar."""
    d1, d2, _, _ = chamfer_distance(pred, target)
    return d1.mean() + d2.mean()


def chamfer_l1(pred, target):
    """Chamfer-L1 ``(mean sqrt d1 + mean sqrt d2) / 2``: (K, S, 3) x2 -> scalar."""
    d1, d2, _, _ = chamfer_distance(pred, target)
    return (d1.clamp_min(1e-12).sqrt().mean() + d2.clamp_min(1e-12).sqrt().mean()) / 2


CHAMFER = {'cdl2': chamfer_l2, 'cdl1': chamfer_l1}


class ReconstructionLoss(nn.Module):
    """Predict the S local points of each masked patch from its decoder token.

    forward(masked_tokens (B, M, C), target (B, M, S, 3) relative to the centers) -> scalar
    Chamfer (``cdl2`` or ``cdl1``) between the prediction of the head Conv1d(C -> 3S) and the
    target, per patch, averaged. The head is Point-MAE's ``increase_dim.0``.
    """

    def __init__(self, dim, group_size, kind='cdl2'):
        super().__init__()
        self.chamfer = CHAMFER[kind]
        self.head = nn.Conv1d(dim, 3 * group_size, 1)

    def forward(self, masked_tokens, target):
        B, M, S, _ = target.shape
        pred = self.head(masked_tokens.transpose(1, 2)).transpose(1, 2).reshape(B * M, S, 3)
        return self.chamfer(pred.float(), target.reshape(B * M, S, 3).float())
