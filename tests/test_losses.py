"""Loss terms: assign (+ heads, soft centers), center, global (conclu, released), reconstruction."""
import math

import pytest
import torch
import torch.distributed as dist

from models.losses import (AssignLoss, CenterLoss, ClusterHead, ConCluGlobalLoss, ReconstructionLoss,
                           ReleasedGlobalLoss, soft_centers)
from models.losses.assign import knn_affinity
from models.losses.global_contrast import batch_codes, simsiam_distance
from models.losses.reconstruction import chamfer_l1, chamfer_l2
from models.sinkhorn import sinkhorn

B, G, P, C = 3, 64, 16, 32


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def sphere(b=B, g=G, seed=0):
    x = rand(b, g, 3, seed=seed)
    return x / x.norm(dim=-1, keepdim=True)


# ---------------------------------------------------------------- assign
def test_soft_centers_formula_and_gradient_through_assignment():
    x = sphere()
    logits = rand(B, G, P, seed=1).requires_grad_()
    a = logits.softmax(-1)
    c = soft_centers(a, x)
    expected = torch.einsum('bgp,bgd->bpd', a, x) / (a.sum(1)[..., None] + 1e-4)
    torch.testing.assert_close(c, expected, rtol=1e-5, atol=1e-6)
    c.sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


@pytest.mark.parametrize('kind', ['mlp', 'graph'])
def test_cluster_head_shapes_and_temperature(kind):
    head = ClusterHead(C, P, tau=0.1, kind=kind, hidden=24, k=12)
    h, x = rand(B, G, C), sphere()
    z = head(h, x)
    assert z.shape == (B, G, P)
    head.tau = 1.0
    torch.testing.assert_close(z, head(h, x) * 10, rtol=1e-5, atol=1e-5)


def test_graph_affinity_is_symmetric_normalised_and_detached():
    x, h = sphere(), rand(B, G, C).requires_grad_()
    adj = knn_affinity(x, h, 12)
    assert not adj.requires_grad
    torch.testing.assert_close(adj, adj.transpose(1, 2), rtol=0, atol=1e-7)
    assert torch.all(adj.diagonal(dim1=1, dim2=2) == 0) and (adj >= 0).all()
    assert ((adj > 0).sum(-1) >= 11).all()
    eig = torch.linalg.eigvalsh(adj.double())
    assert eig.abs().max() <= 1 + 1e-4


def affinity_by_loops(x, h, k):
    """knn_affinity's docstring for one sample, pair by pair in float64: x (G, 3), h (G, C)."""
    x, h = x.double(), h.double()
    d = torch.cdist(x, x)
    adj = torch.zeros(len(x), len(x), dtype=torch.float64)
    for i in range(len(x)):
        for j in d[i].argsort()[:k].tolist():
            adj[i, j] = torch.exp(d.mean() - d[i, j]) * (1 + torch.cosine_similarity(h[i], h[j], dim=0))
    adj = (adj + adj.T) / 2 * (1 - torch.eye(len(x), dtype=torch.float64))
    inv_sqrt_deg = (adj.sum(-1) + 1e-4).rsqrt()
    return inv_sqrt_deg[:, None] * adj * inv_sqrt_deg[None, :]


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_graph_affinity_is_the_formula_pair_by_pair(dtype):
    """The batched (Gram matrix) affinity against the per-pair formula: float64 to rounding,
    float32 within 1e-6 (entries up to about 0.2)."""
    x, h = sphere(), rand(B, G, C, seed=3)
    adj = knn_affinity(x.to(dtype), h.to(dtype), 12)
    expected = torch.stack([affinity_by_loops(x[b], h[b], 12) for b in range(B)])
    torch.testing.assert_close(adj.double(), expected, rtol=0, atol=1e-6 if dtype == torch.float32 else 1e-12)


def test_assign_targets_are_balanced_distributions():
    loss = AssignLoss(iters=3000, tol=1e-6)
    x = sphere()
    c = soft_centers(rand(B, G, P, seed=2).softmax(-1), x)
    t = loss.targets(x, c)
    torch.testing.assert_close(t.sum(-1), torch.ones(B, G), rtol=0, atol=1e-5)
    torch.testing.assert_close(t.sum(1), torch.full((B, P), G / P), rtol=0, atol=1e-3)


def test_assign_ce_is_log_p_for_uniform_logits_and_masked_uses_masked_patches():
    x = sphere()
    c = soft_centers(rand(B, G, P, seed=2).softmax(-1), x)
    uniform = torch.zeros(B, G, P)
    assert AssignLoss()(uniform, x, c) == pytest.approx(math.log(P), abs=1e-5)
    logits = rand(B, G, P, seed=3) * 3
    tail_changed = logits.clone()
    tail_changed[:, :40] = 0
    on_masked = AssignLoss(patches='masked')
    assert on_masked(logits, x, c, num_visible=40) == pytest.approx(on_masked(tail_changed, x, c, 40).item())
    ce = -(AssignLoss().targets(x, c) * logits.log_softmax(-1)).sum(-1)
    assert on_masked(logits, x, c, 40) == pytest.approx(ce[:, 40:].mean().item(), rel=1e-5)


def test_released_assign_reduction_is_four_times_the_mean_ce():
    """Released (normalise='columns'): column-normalised targets, CE summed over patches and
    clusters, batch mean, x P/G; at convergence 4x the rows-normalised mean CE (P = 16, G = 64)."""
    assert (P, G) == (16, 64)
    x = sphere()
    logits = rand(B, G, P, seed=4) * 2
    c = soft_centers(logits.softmax(-1), x)
    rows = AssignLoss(iters=3000, tol=1e-9, pairing='self', cost='dist')
    columns = AssignLoss(iters=3000, tol=1e-9, pairing='self', cost='dist', normalise='columns')
    t = columns.targets(x, c)
    torch.testing.assert_close(t.sum(1), torch.ones(B, P), rtol=0, atol=1e-6)
    released = -(t * logits.log_softmax(-1)).sum(dim=(1, 2)).mean() * P / G
    torch.testing.assert_close(columns(logits, x, c), released, rtol=1e-6, atol=0)
    torch.testing.assert_close(columns(logits, x, c), 4 * rows(logits, x, c), rtol=1e-4, atol=0)


# ---------------------------------------------------------------- center
def test_center_mean_reduction_is_welsch_of_nearest_squared_distance():
    x, c = sphere(), rand(B, P, 3, seed=5) * 0.5
    r = torch.cdist(x, c).amin(-1) ** 2
    expected = (1 - torch.exp(-r / (2 * 0.1 ** 2))).mean()
    torch.testing.assert_close(CenterLoss(0.1, kind='welsch')(x, c), expected, rtol=1e-5, atol=1e-6)
    assert CenterLoss(0.1, kind='welsch')(c[:, :1].expand(B, G, 3), c) == 0


def test_center_released_reduction_sums_over_the_batch():
    x, c = sphere() * 0.05, rand(B, P, 3, seed=5) * 0.05
    r = ((x.unsqueeze(2) - c.unsqueeze(1)) ** 2).sum(-1).amin(-1).sum(1)
    expected = (1 - torch.exp(-r / 2)).sum() * P / G
    released = CenterLoss(1.0, 'released', 'welsch')
    torch.testing.assert_close(released(x, c), expected, rtol=1e-5, atol=1e-7)
    two_views = torch.cat([x, x]), torch.cat([c, c])
    torch.testing.assert_close(released(*two_views, num_views=2), expected, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- global
def test_simsiam_distance_range():
    p = rand(8, 16)
    assert simsiam_distance(p, p) == pytest.approx(0, abs=1e-6)
    assert simsiam_distance(p, -p) == pytest.approx(4, abs=1e-6)


def test_conclu_terms_values_and_stop_gradients():
    torch.manual_seed(0)
    loss = ConCluGlobalLoss(2 * C, J=8, proj_hidden=64, proj_dim=32, pred_hidden=48)
    f_a, f_b = rand(6, 2 * C, seed=1).requires_grad_(), rand(6, 2 * C, seed=2).requires_grad_()
    out = loss(f_a, f_b)
    assert set(out) == {'global_con', 'global_clu', 'global_orth'}
    assert 0 <= out['global_con'] <= 8 and out['global_clu'] > 0 and out['global_orth'] >= 0
    out['global_clu'].backward()
    assert loss.prototypes.grad is not None and f_a.grad is not None


def test_conclu_codes_are_batch_sinkhorn_rows():
    codes = batch_codes(rand(16, 8), eps=0.05, iters=3)
    torch.testing.assert_close(codes.sum(-1), torch.ones(16), rtol=0, atol=1e-5)


def _codes_on_rank(rank, world, init_file, scores, out_dir):
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=world)
    torch.save(batch_codes(scores.chunk(world)[rank], eps=0.05, iters=3), f'{out_dir}/codes{rank}.pt')
    dist.destroy_process_group()


def test_conclu_codes_use_the_global_batch_under_ddp(tmp_path):
    scores = rand(8, 4)
    torch.multiprocessing.spawn(_codes_on_rank, args=(2, str(tmp_path / 'init'), scores, str(tmp_path)), nprocs=2)
    codes = torch.cat([torch.load(tmp_path / f'codes{rank}.pt') for rank in range(2)])
    torch.testing.assert_close(codes, sinkhorn(scores, eps=0.05, iters=3), rtol=1e-6, atol=1e-7)
    assert not torch.allclose(codes[:4], sinkhorn(scores[:4], eps=0.05, iters=3))


def test_orthogonality_is_zero_for_orthonormal_prototypes():
    loss = ConCluGlobalLoss(2 * C, terms=('orth',), J=8, proj_dim=32)
    assert loss.projector is None and loss.predictor is None
    with torch.no_grad():
        loss.prototypes.copy_(torch.eye(8, 32) * 3)
    assert loss(rand(4, 2 * C), rand(4, 2 * C))['global_orth'].item() == pytest.approx(0, abs=1e-7)


def test_conclu_builds_only_what_the_active_terms_need():
    loss = ConCluGlobalLoss(2 * C, terms=('con',), J=8, proj_hidden=64, proj_dim=32, pred_hidden=48)
    assert loss.prototypes is None
    assert set(loss(rand(4, 2 * C), rand(4, 2 * C))) == {'global_con'}


def test_released_global_terms_and_stop_gradients():
    cls, target = rand(4, C).requires_grad_(), rand(4, C, seed=1)
    masked = rand(4, 5, C, seed=2).requires_grad_()
    out = ReleasedGlobalLoss()(cls, target, masked)
    torch.testing.assert_close(out['global_g1'], simsiam_distance(cls, target))
    torch.testing.assert_close(out['global_g2'], simsiam_distance(cls, masked.amax(1)))
    out['global_g2'].backward()
    assert cls.grad is None and masked.grad is not None


# ---------------------------------------------------------------- reconstruction
def test_chamfer_variants_on_a_shift():
    a = rand(5, 8, 3)
    b = a + torch.tensor([0.1, 0.0, 0.0])
    assert chamfer_l2(a, a) == 0 and chamfer_l1(a, a) == pytest.approx(0, abs=1e-5)
    assert chamfer_l2(a, b) <= 2 * 0.1 ** 2 + 1e-6
    assert chamfer_l1(a, b) <= 0.1 + 1e-6


def test_reconstruction_head_shape_and_gradient():
    loss = ReconstructionLoss(C, 8, 'cdl1')
    tokens = rand(2, 5, C).requires_grad_()
    value = loss(tokens, rand(2, 5, 8, 3, seed=1))
    assert value.dim() == 0 and torch.isfinite(value)
    value.backward()
    assert torch.isfinite(tokens.grad).all() and loss.head.weight.grad is not None
    assert loss.head.out_channels == 3 * 8
