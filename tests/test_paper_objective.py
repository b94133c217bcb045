"""The paper's objective (method 2.2-2.4, cfgs/pretrain.yaml): each term against a float64/NumPy
transcription of its equation on a hand-sized case (G = 8, K = 3), the stop-gradients, the
cross-view pairing, and a gradient for every parameter under every shipped pre-training config."""
import glob
import os

import numpy as np
import pytest
import torch

from models import build_model
from models.losses import AssignLoss, CenterLoss, ConCluGlobalLoss, PaperGlobalLoss, soft_centers
from models.losses.global_contrast import simsiam_distance, symmetric_distance
from tests.conftest import ROOT, TINY_MODEL, deep_merge
from tests.test_models import TINY_TRANSFORMER, clouds, maskclu_cfg
from tools.config_check import validate_config
from utils.config import load_config

B, G, K, C = 2, 8, 3, 5


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ------------------------------------------------------------------ NumPy transcriptions
def np_sinkhorn_rows(scores, eps, iters=5000):
    """Balanced plan of exp(scores / eps) with row sums 1/G and column sums 1/K (plain
    multiplicative Sinkhorn, ending on the rows), returned as G * plan (rows sum to 1)."""
    g, k = scores.shape
    kernel = np.exp((scores - scores.max()) / eps)
    u, v = np.ones(g), np.ones(k)
    for _ in range(iters):
        v = (1 / k) / (kernel.T @ u)
        u = (1 / g) / (kernel @ v)
    return g * u[:, None] * kernel * v[None, :]


def np_chamfer(x, c):
    """Chamfer-L2 of Eq. 4 by loops: mean over patches of the squared distance to the nearest
    centroid + mean over centroids of the squared distance to the nearest patch center."""
    d = np.array([[np.sum((xi - cj) ** 2) for cj in c] for xi in x])
    return np.mean([min(row) for row in d]) + np.mean([min(col) for col in d.T])


def np_cos(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


# ------------------------------------------------------------------ center (Eq. 4)
def test_chamfer_center_term_is_the_hand_computation():
    x, logits = rand(2 * B, G, 3), rand(2 * B, G, K, seed=1)
    c = soft_centers(logits.softmax(-1), x)
    expected = sum(np.mean([np_chamfer(x[v * B + b].numpy(), c[v * B + b].numpy()) for b in range(B)])
                   for v in range(2))  # chamfer(C, C^a) + chamfer(C, C^b), each averaged over the batch
    got = CenterLoss(kind='chamfer')(x, c, num_views=2)
    assert abs(got.item() - expected) <= 1e-12 * expected


def test_chamfer_is_zero_exactly_when_centroids_sit_on_centers_and_cover_them():
    spots = rand(1, K, 3, seed=2)
    x = spots[:, torch.tensor([0, 1, 2, 0, 1, 2, 2, 1])]  # 8 patch centers on 3 spots
    loss = CenterLoss(kind='chamfer')
    assert loss(x, spots).item() == 0
    assert loss(x, spots[:, [0, 1, 1]]).item() > 1e-3  # on the centers, but spot 2 uncovered
    assert loss(x, spots + torch.tensor([0.0, 0.0, 0.1], dtype=torch.float64) * (torch.arange(K) == 0)[:, None]
                ).item() > 1e-3  # covering, but one centroid off the shape
    assert loss(rand(1, G, 3, seed=3), spots).item() > 0  # 8 distinct centers cannot be covered by 3


# ------------------------------------------------------------------ assign (Eqs. 5-6)
def test_cross_view_assign_is_the_hand_computation():
    x, logits = rand(2 * B, G, 3), rand(2 * B, G, K, seed=1) * 2
    c = soft_centers(logits.softmax(-1), x)
    tau_s, eps = 0.5, 0.1
    loss = AssignLoss(tau_s=tau_s, eps=eps, iters=3000, pairing='cross', cost='sq')(logits, x, c, views=2)
    log_s = torch.log_softmax(logits, -1).numpy()
    total = 0.0
    for b in range(B):
        for v, other in ((0, 1), (1, 0)):  # Gamma^{ab}: view a's patches vs view b's centroids, and back
            xi, cj = x[v * B + b].numpy(), c[other * B + b].numpy()
            cost = np.array([[np.sum((p - q) ** 2) for q in cj] for p in xi])
            gamma = np_sinkhorn_rows(-cost / tau_s, eps)
            assert np.allclose(gamma.sum(1), 1) and np.allclose(gamma.sum(0), G / K, atol=1e-6)  # balanced
            total += -(gamma * log_s[v * B + b]).sum() / G
    expected = total / B
    assert abs(loss.item() - expected) <= 1e-6 * expected


def test_cross_pairing_uses_the_other_views_centroids():
    x, logits = rand(2 * B, G, 3), rand(2 * B, G, K, seed=1)
    c = soft_centers(logits.softmax(-1), x)
    cross = AssignLoss(eps=0.1, iters=50, pairing='cross')
    own = AssignLoss(eps=0.1, iters=50, pairing='self')
    swapped = torch.cat([c[B:], c[:B]])
    torch.testing.assert_close(cross.targets(x, c, views=2), own.targets(x, swapped), rtol=0, atol=0)
    assert (cross.targets(x, c, views=2) - own.targets(x, c)).abs().max() > 0.1
    torch.testing.assert_close(cross(logits, x, c, views=2), 2 * own(logits, x, swapped), rtol=1e-12, atol=0)


def test_assign_sends_no_gradient_to_its_targets():
    """Only log S carries gradient: the centroids and centers (the target side) get none."""
    x, logits = rand(2 * B, G, 3).requires_grad_(), rand(2 * B, G, K, seed=1).requires_grad_()
    c = soft_centers(logits.softmax(-1), x).detach().requires_grad_()
    AssignLoss(eps=0.1, iters=20)(logits, x, c, views=2).backward()
    assert x.grad is None and c.grad is None and logits.grad.abs().sum() > 0


def test_the_model_pairs_each_view_with_the_other():
    """In the model, the assign term equals cross-view targets on the head's own logits and
    centroids (captured by a hook) and differs from self-pairing on the same tensors."""
    torch.manual_seed(0)
    model = build_model(maskclu_cfg({'center': {'weight': 0.0}, 'global': {'weight_contrast': 0.0}}))
    seen = {}
    model.cluster_head.register_forward_hook(lambda m, args, out: seen.update(h=args[0], x=args[1], logits=out))
    term = model(clouds(), torch.Generator().manual_seed(0))['terms']['assign']
    centers = soft_centers(seen['logits'].softmax(-1), seen['x'])
    loss = model.assign_loss
    torch.testing.assert_close(term, loss(seen['logits'], seen['x'], centers, views=2), rtol=1e-6, atol=0)
    own = AssignLoss(loss.tau_s, loss.eps, loss.iters, pairing='self')(seen['logits'], seen['x'], centers)
    assert abs(term.item() - 2 * own.item()) > 1e-3


# ------------------------------------------------------------------ global (Alg. 2)
def test_paper_global_term_is_the_hand_computation():
    cls, patches = rand(2 * B, C), rand(2 * B, 4, C, seed=1)
    got = PaperGlobalLoss()(cls, patches)['global_contrast']
    f, z = cls.numpy(), patches.numpy().max(axis=1)
    expected = np.mean([(2 - 2 * np_cos(f[b], z[B + b])) + (2 - 2 * np_cos(f[B + b], z[b])) for b in range(B)])
    assert abs(got.item() - expected) <= 1e-12 * expected


def test_each_cosine_of_D_sends_gradient_to_one_side():
    """D(f, z) = 2 - cos(f, sg z) - cos(sg f, z): each side gets the gradient of one cosine,
    i.e. half the gradient of 2 - 2 cos(f, z). Removing either stop-gradient doubles one side."""
    f, z = rand(4, C).requires_grad_(), rand(4, C, seed=1).requires_grad_()
    symmetric_distance(f, z).backward()
    f2, z2 = f.detach().clone().requires_grad_(), z.detach().clone().requires_grad_()
    simsiam_distance(f2, z2).backward()
    torch.testing.assert_close(f.grad, f2.grad / 2, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(z.grad, z2.grad / 2, rtol=1e-12, atol=1e-15)


def test_paper_global_gradients_follow_the_pairing():
    """cls of view a is pulled towards max F^b only through D(f_a, z_b): its gradient is that of
    -cos(f_a, z_b) / B (z_b fixed), and the patches of view b get that of -cos(f_a, z_b) / B too."""
    cls, patches = rand(2 * B, C).requires_grad_(), rand(2 * B, 4, C, seed=1).requires_grad_()
    PaperGlobalLoss()(cls, patches)['global_contrast'].backward()
    f_a = cls[:B].detach().clone().requires_grad_()
    z_b = patches[B:].detach().amax(1).clone().requires_grad_()
    (-torch.nn.functional.cosine_similarity(f_a, z_b, dim=-1).sum() / B).backward()
    torch.testing.assert_close(cls.grad[:B], f_a.grad, rtol=1e-12, atol=1e-15)
    top = patches[B:].detach().argmax(1, keepdim=True)
    torch.testing.assert_close(patches.grad[B:].gather(1, top).squeeze(1), z_b.grad, rtol=1e-12, atol=1e-15)


def test_conclu_contrast_stops_the_gradient_of_the_target_projection():
    """global_con = D(p_a, sg z_b) + D(p_b, sg z_a): with the stop-gradient the projector gets its
    gradient only through the predictor branch (checked against the expression written here)."""
    torch.manual_seed(0)
    loss = ConCluGlobalLoss(2 * C, terms=('con',), proj_hidden=16, proj_dim=8, pred_hidden=12).double().eval()
    f_a, f_b = rand(6, 2 * C, seed=1), rand(6, 2 * C, seed=2)
    loss(f_a, f_b)['global_con'].backward()
    got = [p.grad.clone() for p in loss.projector.parameters()]
    loss.zero_grad()
    z_a, z_b = loss.projector(f_a), loss.projector(f_b)
    (simsiam_distance(loss.predictor(z_a), z_b.detach()) + simsiam_distance(loss.predictor(z_b), z_a.detach())).backward()
    for g, expected in zip(got, [p.grad for p in loss.projector.parameters()]):
        torch.testing.assert_close(g, expected, rtol=1e-10, atol=1e-14)


# ------------------------------------------------------------------ every shipped config
PRETRAIN_CONFIGS = sorted(os.path.relpath(p, ROOT) for pattern in ('cfgs/pretrain*.yaml', 'cfgs/demo/pretrain*.yaml',
                                                                   'cfgs/ablations/*.yaml')
                          for p in glob.glob(os.path.join(ROOT, pattern)))


def tiny_model(path):
    config = load_config(os.path.join(ROOT, path)).to_dict()
    if config['model']['NAME'] == 'MaskClu':
        config['model'] = deep_merge(config['model'], TINY_MODEL)
    else:
        config['model']['transformer_config'] = {**config['model']['transformer_config'], **TINY_TRANSFORMER}
        config['model'].update(num_group=16, group_size=8)
    return build_model(validate_config(config, path).model)


def test_the_shipped_configs_are_all_covered():
    assert {'cfgs/pretrain.yaml', 'cfgs/pretrain_released.yaml', 'cfgs/pretrain_conclu.yaml',
            'cfgs/ablations/legacy_default.yaml', 'cfgs/demo/pretrain.yaml'} <= set(PRETRAIN_CONFIGS)
    assert len(PRETRAIN_CONFIGS) >= 17


@pytest.mark.parametrize('path', PRETRAIN_CONFIGS)
def test_every_parameter_gets_a_gradient_under_every_config(path, torch_globals):
    torch.manual_seed(0)
    model = tiny_model(path)
    out = model(clouds(), torch.Generator().manual_seed(0))
    out['loss'].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()
               or not p.grad.abs().sum() > 0]
    assert not missing, f'{path}: parameters without a non-zero finite gradient: {missing}'


def test_the_paper_default_is_the_papers():
    cfg = validate_config(load_config(os.path.join(ROOT, 'cfgs/pretrain.yaml')), 'cfgs/pretrain.yaml').model
    a, c, g = cfg.losses.assign, cfg.losses.center, cfg.losses['global']
    assert (cfg.views, cfg.dense_tokens, cfg.decoder_extra_norm) == (2, 'decoder', False)
    assert (a.head, a.P, a.pairing, a.cost, a.normalise, a.weight) == ('graph', 24, 'cross', 'sq', 'rows', 1.0)
    assert (c.type, c.weight, g.type, g.weight_contrast) == ('chamfer', 1.0, 'paper', 1.0)
    model = tiny_model('cfgs/pretrain.yaml')
    assert model.global_loss is not None and not list(model.global_loss.parameters())


# ------------------------------------------------------------------ released terms (method 2.6)
def test_released_terms_are_the_released_equations(torch_globals):
    """cfgs/pretrain_released.yaml at tiny sizes in float64 against the released equations written
    out from their description (method 2.6, issue 9), on the tensors the model passes between its
    modules (captured by hooks): assign = -sum_ij Gamma_ij log S_ij * K/G (batch mean) with Gamma
    the column-normalised plan of -||X_i - c_j|| / tau_s under the released stopping rule; center =
    sum_b (1 - exp(-sum_i min_j ||X_i - c_j||^2 / 2)) * K/G; g1 = D(cls, max over the unmasked
    pass's block outputs *before* the final LayerNorm); g2 = D(cls, max over the masked decoder
    outputs after the extra LayerNorm ``norm``); D = 2 - 2 cos."""
    from tests.test_sinkhorn import released_rule_reference
    from tests.test_models import clouds as test_clouds
    torch.manual_seed(0)
    model = tiny_model('cfgs/pretrain_released.yaml').double().eval()
    with torch.no_grad():
        for p in model.parameters():  # LayerNorm affine terms away from the identity
            p.add_(torch.randn_like(p) * 0.05)
    seen = {}

    def keep(name):
        return lambda m, args, out: seen.setdefault(name, []).append((args, out))
    for name, module in (('head', model.cluster_head), ('embed', model.MAE_encoder.encoder),
                         ('group', model.MAE_encoder.group_divider), ('enc_norm', model.MAE_encoder.norm),
                         ('extra_norm', model.norm)):
        module.register_forward_hook(keep(name))
    terms = model(test_clouds().double(), torch.Generator().manual_seed(0))['terms']
    a = model.config['losses']['assign']
    (h, x), logits = seen['head'][0]
    K, G = logits.shape[-1], logits.shape[1]
    s = logits.softmax(-1)
    c = (s.unsqueeze(-1) * x.unsqueeze(2)).sum(1) / (s.sum(1).unsqueeze(-1) + 1e-4)
    gamma, _ = released_rule_reference(-torch.cdist(x, c) / a['tau_s'], a['eps'], a['tol'], a['iters'])
    expected = {'assign': -(gamma * logits.log_softmax(-1)).sum((1, 2)).mean() * K / G}
    r = (x.unsqueeze(2) - c.unsqueeze(1)).square().sum(-1).amin(-1).sum(-1)
    expected['center'] = (1 - torch.exp(-r / 2)).sum() * K / G
    cls = seen['enc_norm'][0][1][:, 0]  # the masked pass's cls output (after the final LayerNorm)
    tokens, centers = seen['embed'][0][1], seen['group'][0][1][1]
    enc = model.MAE_encoder
    B = tokens.shape[0]
    blocks_out = enc.blocks(torch.cat([enc.cls_token.expand(B, -1, -1), tokens], 1),
                            torch.cat([enc.cls_pos.expand(B, -1, -1), enc.pos_embed(centers)], 1))
    cos = torch.nn.functional.cosine_similarity
    expected['global_g1'] = (2 - 2 * cos(cls, blocks_out[:, 1:].amax(1), dim=-1)).mean()
    masked_out = seen['extra_norm'][0][1]
    assert masked_out.shape[1] == int(0.6 * G)
    expected['global_g2'] = (2 - 2 * cos(cls, masked_out.amax(1), dim=-1)).mean()
    assert set(terms) == set(expected)
    for name, value in expected.items():
        torch.testing.assert_close(terms[name], value.detach(), rtol=1e-6, atol=0, msg=name)
    with_norm = enc.norm(blocks_out)[:, 1:].amax(1)  # the target taken after the final LayerNorm differs
    assert abs((2 - 2 * cos(cls, with_norm, dim=-1)).mean().item() - terms['global_g1'].item()) > 1e-4
