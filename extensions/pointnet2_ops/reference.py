"""Pure-PyTorch reference ops (semantics the CUDA kernels must match). Channel-last tensors."""
import torch


def furthest_point_sample(xyz, npoint, start_idx=0):
    """Farthest point sampling. xyz (B,N,3), start index int or (B,) long -> idx (B,npoint) long."""
    B, N, _ = xyz.shape
    idx = torch.empty(B, npoint, dtype=torch.long, device=xyz.device)
    dist = torch.full((B, N), float('inf'), dtype=xyz.dtype, device=xyz.device)
    cur = torch.as_tensor(start_idx, device=xyz.device).long().expand(B).clone()
    batch = torch.arange(B, device=xyz.device)
    for i in range(npoint):
        idx[:, i] = cur
        d = ((xyz - xyz[batch, cur].unsqueeze(1)) ** 2).sum(-1)
        dist = torch.minimum(dist, d)
        cur = dist.argmax(-1)
    return idx


def gather_points(points, idx):
    """points (B,N,C), idx (B,*K) long -> (B,*K,C)."""
    B = points.shape[0]
    flat = idx.reshape(B, -1)
    out = torch.gather(points, 1, flat.unsqueeze(-1).expand(-1, -1, points.shape[-1]))
    return out.reshape(*idx.shape, points.shape[-1])


def knn_points(query, ref, k):
    """query (B,G,3), ref (B,N,3) -> dist2 (B,G,k) ascending, idx (B,G,k) long."""
    d = torch.cdist(query, ref).pow(2)
    dist2, idx = d.topk(k, dim=-1, largest=False, sorted=True)
    return dist2, idx
