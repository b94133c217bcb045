"""Pure-PyTorch reference Chamfer distance (squared distances + argmin indices)."""
import torch


def chamfer_distance(x, y):
    """x (B,n,3), y (B,m,3) -> dist1 (B,n), dist2 (B,m) squared, idx1 (B,n), idx2 (B,m) long."""
    d = ((x.unsqueeze(2) - y.unsqueeze(1)) ** 2).sum(-1)
    dist1, idx1 = d.min(dim=2)
    dist2, idx2 = d.min(dim=1)
    return dist1, dist2, idx1, idx2
