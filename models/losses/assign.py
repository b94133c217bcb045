"""Dense cluster-assignment term ``assign`` (method 2.3-2.4): the clustering head, soft centers, CE."""
import torch
import torch.nn.functional as F
from torch import nn

from extensions import knn_points
from models.sinkhorn import at_least_float32, sinkhorn


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
    hn = F.normalize(at_least_float32(h), dim=-1)
    with torch.autocast(x.device.type, enabled=False):  # the cosines stay in float32 under autocast
        cos = torch.gather(hn @ hn.transpose(1, 2), 2, idx)  # (B, G, G) Gram matrix, not (B, G, k, C) gathers
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
    """Cross-entropy between balanced Sinkhorn pseudo-labels and the soft assignment (method 2.4, 2.6).

    forward(logits Z (R, G, P), x X (R, G, 3), centers c (R, P, 3), num_visible V, views) -> scalar,
    with R = views * B (view v of sample b in row v*B + b). Targets T (R, G, P) =
    ``sinkhorn(-cost(X_i, c'_p) / tau_s)`` under stop-gradient, where ``c'`` are

    * ``pairing='cross'`` (the paper, Eqs. 5-6): the *other* view's centroids (rows of view a get
      view b's and vice versa), so each view predicts how the other one clusters the cloud;
    * ``pairing='self'`` (released): the row's own centroids;

    and ``cost`` is ``sq`` (||X_i - c_p||^2, the paper) or ``dist`` (||X_i - c_p||, released).

    ``normalise='rows'``: rows of T sum to 1 (G/P patches per cluster once converged); the loss
    is ``-(1/G) sum_ip T_ip log softmax(Z)_ip`` averaged over B and, with ``pairing='cross'``,
    summed over the two views as Eq. 6 writes it (``self``: averaged over the views); with
    ``patches='masked'`` only the patches at positions >= V (the masked ones) are averaged.
    ``normalise='columns'`` (released): columns of T sum to 1, the CE is summed over patches
    and clusters, averaged over the rows and multiplied by P/G (at convergence P^2/G times the
    mean CE: 4x for P = 16, G = 64).
    Sinkhorn: ``eps``, ``iters`` (maximum with ``tol``), ``tol`` (the released stopping rule).
    """

    def __init__(self, tau_s=0.5, eps=0.01, iters=100, tol=None, patches='all', pairing='cross', cost='sq',
                 normalise='rows'):
        super().__init__()
        self.tau_s, self.eps, self.iters, self.tol, self.patches = tau_s, eps, iters, tol, patches
        self.pairing, self.cost, self.normalise = pairing, cost, normalise

    @torch.no_grad()
    def targets(self, x, centers, sq_dist=None, views=1):
        """x (R, G, 3), centers (R, P, 3) -> Sinkhorn targets T (R, G, P), no gradient.
        ``sq_dist`` (R, G, P): ||X_i - c_p||^2 of each row's own centroids, when the caller has it."""
        if self.pairing == 'cross':
            sq_dist = pairwise_sq_dist(at_least_float32(x), at_least_float32(other_view(centers, views)))
        elif sq_dist is None:
            sq_dist = pairwise_sq_dist(at_least_float32(x), at_least_float32(centers))
        cost = at_least_float32(sq_dist)
        cost = cost if self.cost == 'sq' else cost.sqrt()
        return sinkhorn(-cost / self.tau_s, self.eps, self.iters, self.tol, self.normalise)

    def forward(self, logits, x, centers, num_visible=0, sq_dist=None, views=1):
        log_p = F.log_softmax(at_least_float32(logits), dim=-1)
        ce = -(self.targets(x, centers, sq_dist, views) * log_p).sum(-1)
        if self.normalise == 'columns':
            return ce.sum(-1).mean() * logits.shape[-1] / logits.shape[1]
        ce = ce[:, num_visible:] if self.patches == 'masked' else ce
        return ce.mean() * (views if self.pairing == 'cross' else 1)


def other_view(rows, views):
    """rows (views*B, ...) with view v of sample b in row v*B + b -> the same rows with the views
    swapped (view a's rows hold view b's and vice versa); the rows themselves for one view."""
    if views == 1:
        return rows
    return rows.unflatten(0, (views, -1)).flip(0).flatten(0, 1)
