"""Dense cluster-assignment term ``assign`` (method 2.2): the clustering head, soft centers, CE."""
import torch
import torch.nn.functional as F
from torch import nn

from extensions import gather_points, knn_points
from models.sinkhorn import sinkhorn


def pairwise_sq_dist(x, c):
    """x (B, G, 3), c (B, P, 3) -> squared Euclidean distances (B, G, P) (safe gradient at 0)."""
    return (x.unsqueeze(2) - c.unsqueeze(1)).square().sum(-1)


def soft_centers(assign, x):
    """Cluster centers in coordinate space: ``c_p = sum_i A_ip X_i / (sum_i A_ip + 1e-4)``.

    assign A (B, G, P) (rows sum to 1), x X (B, G, 3) -> centers (B, P, 3); gradients flow
    through A. Element-wise products (no matmul), so it stays in float32 under autocast.
    """
    weighted = (assign.unsqueeze(-1) * x.unsqueeze(2)).sum(dim=1)
    return weighted / (assign.sum(dim=1).unsqueeze(-1) + 1e-4)


@torch.no_grad()
def knn_affinity(x, h, k):
    """Normalised kNN patch graph ``D^-1/2 A D^-1/2`` (B, G, G), detached.

    x (B, G, 3) centers, h (B, G, C) features. Over the k nearest centers (itself included)
    ``A_ij = exp(mean(D) - D_ij) * (1 + cos(h_i, h_j))`` with D the Euclidean distances and
    mean(D) over all pairs of the sample; symmetrised, zero diagonal.
    """
    B, G, _ = x.shape
    dist2, idx = knn_points(x, x, k)
    hn = F.normalize(h.float(), dim=-1)
    cos = (hn.unsqueeze(2) * gather_points(hn, idx)).sum(-1)
    mean_d = torch.cdist(x, x).mean(dim=(1, 2)).view(B, 1, 1)
    weight = torch.exp(mean_d - dist2.clamp_min(0).sqrt()) * (1 + cos)
    adj = torch.zeros(B, G, G, device=x.device, dtype=weight.dtype).scatter_(2, idx, weight)
    adj = (adj + adj.transpose(1, 2)) / 2 * (1 - torch.eye(G, device=x.device, dtype=adj.dtype))
    inv_sqrt_deg = (adj.sum(-1) + 1e-4).rsqrt()
    return inv_sqrt_deg.unsqueeze(2) * adj * inv_sqrt_deg.unsqueeze(1)


class GraphMessagePassing(nn.Module):
    """One message-passing step on the kNN patch graph (released ``graph`` head).

    h (B, G, C), x (B, G, 3) -> ``ReLU((A_hat + I) W_m h) + W_s h`` (B, G, hidden); W_m, W_s
    bias-free Linear(C -> hidden); A_hat from ``knn_affinity`` (detached).
    """

    def __init__(self, dim, hidden=128, k=12):
        super().__init__()
        self.k = k
        self.w_m = nn.Linear(dim, hidden, bias=False)
        self.w_s = nn.Linear(dim, hidden, bias=False)

    def forward(self, h, x):
        adj = knn_affinity(x, h, min(self.k, x.shape[1])).to(h.dtype)
        m = self.w_m(h)
        return torch.relu(adj @ m + m) + self.w_s(h)


class ClusterHead(nn.Module):
    """Per-patch cluster logits ``Z = head(H) / tau_a`` (B, G, P) from H (B, G, C), X (B, G, 3).

    ``mlp``: Linear(C->128)-LayerNorm-ReLU-Linear(128->128)-ReLU-Linear(128->P).
    ``graph``: ``GraphMessagePassing`` (C -> 128) on the kNN patch graph, then the same MLP
    from 128. The head is shared by ``assign`` and ``center`` (the soft centers come from it).
    """

    def __init__(self, dim, num_clusters=16, tau=0.1, kind='mlp', hidden=128, k=12):
        super().__init__()
        self.tau = tau
        self.graph = GraphMessagePassing(dim, hidden, k) if kind == 'graph' else None
        self.mlp = nn.Sequential(nn.Linear(hidden if self.graph is not None else dim, hidden), nn.LayerNorm(hidden),
                                 nn.ReLU(inplace=True), nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, num_clusters))

    def forward(self, h, x):
        if self.graph is not None:
            h = self.graph(h, x)
        return self.mlp(h) / self.tau


class AssignLoss(nn.Module):
    """Mean cross-entropy between Sinkhorn pseudo-labels and the soft assignment.

    forward(logits Z (B, G, P), x X (B, G, 3), centers c (B, P, 3), num_visible V) -> scalar.
    Targets T (B, G, P) = ``sinkhorn(-||X_i - c_p|| / tau_s, eps, iters)`` (stop-gradient,
    rows sum to 1, G/P patches per cluster on average); loss ``-sum_p T_ip log softmax(Z)_ip``
    averaged over the batch and the patches named by ``patches``: ``all`` or ``masked`` (the dense
    token order is V visible patches then M masked ones, so masked = positions >= V).

    The released code instead normalises T per column (columns sum to 1), sums the CE over
    patches and clusters, averages over the batch and multiplies by P/G: at convergence that
    is (P/G)^2 * G * mean CE = P^2/G * mean CE, i.e. exactly 4x this loss for P = 16, G = 64,
    hence weight 4 in the released config.
    """

    def __init__(self, tau_s=0.5, eps=0.01, iters=100, tol=None, patches='all'):
        super().__init__()
        self.tau_s, self.eps, self.iters, self.tol, self.patches = tau_s, eps, iters, tol, patches

    @torch.no_grad()
    def targets(self, x, centers, sq_dist=None):
        """x (B, G, 3), centers (B, P, 3) -> Sinkhorn targets T (B, G, P), no gradient.
        ``sq_dist`` (B, G, P): the squared distances when the caller already has them."""
        if sq_dist is None:
            sq_dist = pairwise_sq_dist(x.float(), centers.float())
        return sinkhorn(-sq_dist.float().sqrt() / self.tau_s, self.eps, self.iters, self.tol)

    def forward(self, logits, x, centers, num_visible=0, sq_dist=None):
        ce = -(self.targets(x, centers, sq_dist) * F.log_softmax(logits.float(), dim=-1)).sum(-1)
        return ce[:, num_visible:].mean() if self.patches == 'masked' else ce.mean()
