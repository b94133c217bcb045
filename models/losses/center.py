"""Dense cluster-center term ``center`` (method 2.3): soft centers must sit on the shape."""
import torch
from torch import nn

from models.losses.assign import pairwise_sq_dist


class CenterLoss(nn.Module):
    """Robust Welsch penalty on each patch's squared distance to its nearest soft center.

    forward(x X (B, G, 3), centers c (B, P, 3), num_views=1) -> scalar, with
    ``r_i = min_p ||X_i - c_p||^2`` and ``rho(r) = 1 - exp(-r / (2 sigma^2))``.
    ``mean`` (default, sigma 0.1): mean of rho(r_i) over patches and batch.
    ``released`` (sigma 1): per sample rho(sum_i r_i) * P / G, summed over the batch (so it
    grows with B and saturates); with ``num_views`` views stacked on the batch axis the sum is
    divided by ``num_views`` (the average over views).
    """

    def __init__(self, sigma=0.1, reduction='mean'):
        super().__init__()
        self.sigma, self.reduction = sigma, reduction

    def welsch(self, r):
        return 1 - torch.exp(-r / (2 * self.sigma ** 2))

    def forward(self, x, centers, num_views=1, sq_dist=None):
        """``sq_dist`` (B, G, P): ||X_i - c_p||^2 when the caller already has it (with gradient)."""
        r = (pairwise_sq_dist(x, centers) if sq_dist is None else sq_dist).amin(dim=-1)
        if self.reduction == 'mean':
            return self.welsch(r).mean()
        G, P = x.shape[1], centers.shape[1]
        return self.welsch(r.sum(dim=1)).sum() * P / G / num_views
