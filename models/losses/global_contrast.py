"""Global (instance-level) term ``global``: the paper (method 2.4), ConClu (2.5) or released (2.6)."""
import torch
import torch.nn.functional as F
from torch import nn

from models.sinkhorn import at_least_float32, sinkhorn
from utils.dist import all_gather_cat, get_rank


def simsiam_distance(p, z):
    """``D(p, z) = 2 - 2 cos(p, z)`` averaged over the batch: p, z (B, D) -> scalar (in [0, 4])."""
    return (2 - 2 * F.cosine_similarity(at_least_float32(p), at_least_float32(z), dim=-1)).mean()


def symmetric_distance(f, z):
    """The paper's ``D(f, z) = 2 - cos(f, sg z) - cos(sg f, z)`` averaged over the batch: f, z (B, D)
    -> scalar. Its value is ``2 - 2 cos(f, z)``; each cosine sends gradient to one side only."""
    f, z = at_least_float32(f), at_least_float32(z)
    return (2 - F.cosine_similarity(f, z.detach(), dim=-1) - F.cosine_similarity(f.detach(), z, dim=-1)).mean()


def projector(in_dim, hidden=1024, out_dim=256):
    """g: three Linear layers, BatchNorm after each, LeakyReLU after the first two. (B, 2C) -> (B, 256)."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(inplace=True),
                         nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(inplace=True),
                         nn.Linear(hidden, out_dim), nn.BatchNorm1d(out_dim))


def predictor(dim=256, hidden=512):
    """q: Linear(256->512)-BN-LeakyReLU-Linear(512->256). (B, 256) -> (B, 256)."""
    return nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(inplace=True),
                         nn.Linear(hidden, dim))


@torch.no_grad()
def batch_codes(scores, eps, iters):
    """Swapped-prediction codes: Sinkhorn over the (global) batch.

    scores (B, J) of the local batch -> codes (B, J), rows summing to 1. Under DDP the scores
    of all ranks are gathered so the equipartition holds over the global batch, and this
    rank's rows are returned.
    """
    B = scores.shape[0]
    return sinkhorn(all_gather_cat(scores), eps, iters).narrow(0, get_rank() * B, B)


class PaperGlobalLoss(nn.Module):
    """The paper's global contrast between two masked views (Alg. 2, ``global: {type: paper}``).

    forward(cls (2B, C), patches (2B, V, C)): the encoder's cls output and visible patch outputs
    of both views stacked (view a rows first) -> ``{'global_contrast': D(f_a, z_b) + D(f_b, z_a)}``
    with ``f_v`` the cls output of view v, ``z_v`` = max over its V patch outputs and ``D`` the
    symmetric stop-gradient distance (``symmetric_distance``). No parameters (no projector,
    predictor, prototypes or Sinkhorn).
    """

    def forward(self, cls, patches):
        f_a, f_b = cls.chunk(2)
        z_a, z_b = patches.amax(dim=1).chunk(2)
        return {'global_contrast': symmetric_distance(f_a, z_b) + symmetric_distance(f_b, z_a)}


class ConCluGlobalLoss(nn.Module):
    """ConClu's contrasting + clustering between two views (``global: {type: conclu}``).

    forward(f_a, f_b) with global features (B, 2C) of views a, b -> dict of the active terms:
    ``global_con`` = D(p_a, sg z_b) + D(p_b, sg z_a) with z = g(f), p = q(z);
    ``global_clu`` = -mean_b sum_j (s_a log gamma_b + s_b log gamma_a) with
    gamma_v = softmax(cos(p_v, prototypes) / tau) and codes s_v = Sinkhorn over the batch of
    cos(sg z_v, prototypes) (eps, iters); ``global_orth`` = ||Gamma^T Gamma - I||_1 / J^2 over
    the L2-normalised prototypes (J, 256). Parts whose terms are inactive are not built.
    """

    def __init__(self, in_dim, terms=('con', 'clu', 'orth'), J=32, tau=0.1, eps=0.05, iters=3,
                 proj_hidden=1024, proj_dim=256, pred_hidden=512):
        super().__init__()
        self.terms, self.tau, self.eps, self.iters = tuple(terms), tau, eps, iters
        needs_heads = 'con' in terms or 'clu' in terms
        self.projector = projector(in_dim, proj_hidden, proj_dim) if needs_heads else None
        self.predictor = predictor(proj_dim, pred_hidden) if needs_heads else None
        self.prototypes = nn.Parameter(torch.randn(J, proj_dim)) if ('clu' in terms or 'orth' in terms) else None

    def forward(self, f_a, f_b):
        out = {}
        if self.projector is not None:
            z_a, z_b = self.projector(f_a), self.projector(f_b)
            p_a, p_b = self.predictor(z_a), self.predictor(z_b)
        if 'con' in self.terms:
            out['global_con'] = simsiam_distance(p_a, z_b.detach()) + simsiam_distance(p_b, z_a.detach())
        if 'clu' in self.terms:
            out['global_clu'] = self.swapped_prediction(z_a, z_b, p_a, p_b)
        if 'orth' in self.terms:
            protos = F.normalize(self.prototypes, dim=-1)
            eye = torch.eye(protos.shape[0], device=protos.device, dtype=protos.dtype)
            out['global_orth'] = (protos @ protos.t() - eye).abs().sum() / protos.shape[0] ** 2
        return out

    def swapped_prediction(self, z_a, z_b, p_a, p_b):
        """z, p (B, 256) per view -> -mean_b sum_j (s_a log gamma_b + s_b log gamma_a)."""
        protos = F.normalize(self.prototypes, dim=-1)
        s_a, s_b = (batch_codes(F.normalize(at_least_float32(z.detach()), dim=-1) @ protos.detach().t(), self.eps, self.iters)
                    for z in (z_a, z_b))
        log_g_a, log_g_b = (F.log_softmax(F.normalize(at_least_float32(p), dim=-1) @ protos.t() / self.tau, dim=-1)
                            for p in (p_a, p_b))
        return -((s_a * log_g_b).sum(-1) + (s_b * log_g_a).sum(-1)).mean()


class ReleasedGlobalLoss(nn.Module):
    """The released code's global terms between one masked view and an unmasked target pass.

    forward(cls (B, C) of the masked view, target (B, C) = max over the G patches of an
    unmasked pass of the same encoder (computed under no_grad by the caller), masked_tokens
    (B, M, C) = decoder output at the masked patches) -> dict of the active terms:
    ``global_g1`` = D(cls, sg target), ``global_g2`` = D(sg cls, max over M masked_tokens).
    No parameters.
    """

    def __init__(self, terms=('g1', 'g2')):
        super().__init__()
        self.terms = tuple(terms)

    def forward(self, cls, target, masked_tokens):
        out = {}
        if 'g1' in self.terms:
            out['global_g1'] = simsiam_distance(cls, target.detach())
        if 'g2' in self.terms:
            out['global_g2'] = simsiam_distance(cls.detach(), masked_tokens.amax(dim=1))
        return out
