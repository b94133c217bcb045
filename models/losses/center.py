"""Dense cluster-center term ``center`` (method 2.4 Lcts, 2.6): soft centers must sit on the shape."""
import torch
from torch import nn

from models.losses.assign import pairwise_sq_dist


class CenterLoss(nn.Module):
    """Cluster-center reconstruction from the patch centers X (R, G, 3) and soft centers c (R, P, 3).

    forward(x, centers, num_views=1, sq_dist=None) -> scalar; R = num_views * B rows, ``sq_dist``
    (R, G, P) = ||X_i - c_p||^2 when the caller already has it (with gradient).

    ``type='chamfer'`` (the paper, Eq. 4): per row the Chamfer-L2 distance
    ``mean_i min_p ||X_i - c_p||^2 + mean_p min_i ||X_i - c_p||^2`` (both directions, squared,
    means: method 2.4's *(open)* choice), averaged over B and summed over the views
    (``chamfer(C, C^b) + chamfer(C, C^a)``). Zero exactly when every centroid sits on a patch
    center and every patch center has a centroid on it.

    ``type='welsch'``: robust Welsch penalty ``rho(r) = 1 - exp(-r / (2 sigma^2))`` of
    ``r_i = min_p ||X_i - c_p||^2``. ``mean`` (sigma 0.1): mean of rho(r_i) over patches and rows.
    ``released`` (sigma 1): per row rho(sum_i r_i) * P / G, summed over the batch (so it grows with
    B and saturates); with ``num_views`` views the sum is divided by ``num_views``.
    """

    def __init__(self, sigma=0.1, reduction='mean', kind='chamfer'):
        super().__init__()
        self.sigma, self.reduction, self.kind = sigma, reduction, kind

    def welsch(self, r):
        return 1 - torch.exp(-r / (2 * self.sigma ** 2))

    def forward(self, x, centers, num_views=1, sq_dist=None):
        d = pairwise_sq_dist(x, centers) if sq_dist is None else sq_dist
        if self.kind == 'chamfer':
            return (d.amin(dim=-1).mean(dim=-1) + d.amin(dim=-2).mean(dim=-1)).mean() * num_views
        r = d.amin(dim=-1)
        if self.reduction == 'mean':
            return self.welsch(r).mean()
        G, P = x.shape[1], centers.shape[1]
        return self.welsch(r.sum(dim=1)).sum() * P / G / num_views
