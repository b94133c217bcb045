"""Backbone units: tokenizer, masking, position embeddings, transformer blocks, encoder, decoder."""
import math

import pytest
import torch
import torch.nn.functional as F

from models.decoder import TransformerDecoder
from models.encoder import PointEncoder
from models.masking import block_mask, make_mask, num_masked, random_mask
from models.pos_embed import SinCosFeatures, mlp_pos_embed, sincos_pos_embed
from models.tokenizer import PatchEmbedding, PatchGrouper
from models.transformer import Attention, Block, DropPath, TransformerEncoder, drop_path_rates

B, N, G, S, C = 2, 256, 16, 8, 32


def cloud(seed=0, b=B, n=N):
    return torch.rand(b, n, 3, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def sq_dist(a, b):
    return (a.unsqueeze(2) - b.unsqueeze(1)).square().sum(-1)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def tiny_encoder(**kw):
    args = dict(trans_dim=C, depth=2, num_heads=2, drop_path_rate=0.1, num_group=G, group_size=S)
    return PointEncoder(**{**args, **kw})


# ---------------------------------------------------------------- tokenizer
def test_grouper_shapes_and_neighbourhoods_are_relative_knn():
    points = cloud()
    neighborhood, center = PatchGrouper(G, S)(points)
    assert neighborhood.shape == (B, G, S, 3) and center.shape == (B, G, 3)
    absolute = neighborhood + center.unsqueeze(2)
    d2 = sq_dist(absolute.reshape(B, G * S, 3), points)
    torch.testing.assert_close(d2.amin(-1), torch.zeros(B, G * S), rtol=0, atol=1e-12)
    torch.testing.assert_close(neighborhood.norm(dim=-1).amin(-1), torch.zeros(B, G), rtol=0, atol=1e-6)
    kth = sq_dist(center, points).sort(-1).values[..., S - 1]
    assert (neighborhood.square().sum(-1).amax(-1) <= kth + 1e-6).all()


def test_grouper_starts_fps_at_the_given_point():
    points = cloud()
    _, center = PatchGrouper(G, S)(points, torch.tensor([5, 9]))
    torch.testing.assert_close(center[:, 0], points[torch.arange(B), torch.tensor([5, 9])], rtol=0, atol=0)


def test_grouper_rejects_too_small_clouds():
    with pytest.raises(ValueError, match='cannot make'):
        PatchGrouper(G, S)(cloud(n=12))


def test_fps_random_start_only_in_training_and_seeded():
    enc = tiny_encoder(fps_random_start=True)
    points = cloud()
    a, b, c = (enc.patchify(points, gen(s))[1] for s in (1, 1, 2))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)
    enc.eval()
    _, det = enc.patchify(points, gen(1))
    torch.testing.assert_close(det[:, 0], points[:, 0], rtol=0, atol=0)


@pytest.mark.parametrize('channels', [3, 4])
def test_patch_embedding_shapes_and_names(channels):
    emb = PatchEmbedding(C, channels)
    assert emb(torch.randn(B, G, S, 3)).shape == (B, G, C)
    assert emb.first_conv[0].in_channels == channels
    assert {k.split('.')[0] for k in emb.state_dict()} == {'first_conv', 'second_conv'}


def point_mae_embedding(emb, neighborhood):
    """Point-MAE's computation: the Conv1d stacks on (B*G, channels, S) with the global concat."""
    b, g, s, _ = neighborhood.shape
    x = neighborhood.reshape(b * g, s, 3)
    if emb.in_channels == 4:
        x = torch.cat([x, x.norm(dim=-1, keepdim=True)], dim=-1)
    feature = emb.first_conv(x.transpose(1, 2))
    feature = torch.cat([feature.amax(dim=2, keepdim=True).expand(-1, -1, s), feature], dim=1)
    return emb.second_conv(feature).amax(dim=2).reshape(b, g, -1)


@pytest.mark.parametrize('channels', [3, 4])
@pytest.mark.parametrize('train', [True, False])
def test_patch_embedding_equals_point_mae_conv_stack(channels, train):
    torch.manual_seed(0)
    emb = PatchEmbedding(C, channels).double().train(train)
    for module in emb.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 2.0)
    x = torch.randn(B, G, S, 3, dtype=torch.float64)
    reference = [b.clone() for b in emb.buffers()]
    ours = emb(x)
    ours_buffers = [b.clone() for b in emb.buffers()]
    grads = torch.autograd.grad(ours.square().sum(), list(emb.parameters()))
    for buf, ref in zip(emb.buffers(), reference):
        buf.copy_(ref)
    theirs = point_mae_embedding(emb, x)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)
    for a, b in zip(ours_buffers, emb.buffers()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    for a, b in zip(grads, torch.autograd.grad(theirs.square().sum(), list(emb.parameters()))):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_patch_embedding_is_permutation_invariant_within_a_patch():
    emb = PatchEmbedding(C, 4).eval()
    x = torch.randn(B, G, S, 3)
    torch.testing.assert_close(emb(x), emb(x[:, :, torch.randperm(S)]), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- masking
@pytest.mark.parametrize('kind', ['rand', 'block'])
def test_masks_have_exact_counts_and_partition_the_patches(kind):
    center = torch.randn(4, 64, 3)
    vis, mask = make_mask(center, 0.6, kind, gen(0))
    assert vis.shape == (4, 26) and mask.shape == (4, 38) and num_masked(0.6, 64) == 38
    assert vis.dtype == mask.dtype == torch.long
    everything = torch.cat([vis, mask], 1).sort(1).values
    torch.testing.assert_close(everything, torch.arange(64).expand(4, 64), rtol=0, atol=0)


@pytest.mark.parametrize('kind', ['rand', 'block'])
def test_masks_are_reproducible_from_a_seed(kind):
    center = torch.randn(4, 64, 3)
    first, again, other = (make_mask(center, 0.6, kind, gen(s)) for s in (7, 7, 8))
    assert all(torch.equal(x, y) for x, y in zip(first, again))
    assert not torch.equal(first[1], other[1])


def test_rand_masks_differ_between_samples():
    vis, _ = random_mask(torch.zeros(8, 64, 3), 0.6, gen(0))
    assert len({tuple(v.tolist()) for v in vis}) == 8


def test_block_mask_is_the_nearest_centers_of_one_center():
    center = torch.randn(3, 64, 3)
    vis, mask = block_mask(center, 0.6, gen(3))
    for b in range(3):
        d = sq_dist(center[b:b + 1], center[b:b + 1])[0]
        found = [a for a in mask[b] if d[a, mask[b]].max() <= d[a, vis[b]].min()]
        assert found, 'no center of the block has all masked centers nearer than all visible ones'


# ---------------------------------------------------------------- position embeddings
def test_sincos_features_follow_the_released_formula():
    xyz = torch.randn(B, G, 3)
    feats = SinCosFeatures(48)(xyz)
    assert feats.shape == (B, G, 48)
    j = torch.arange(8)
    angle = 100 * xyz[..., 1, None] / 1000 ** (j / 8)
    torch.testing.assert_close(feats[..., 16:32:2], angle.sin(), rtol=0, atol=1e-5)
    torch.testing.assert_close(feats[..., 17:32:2], angle.cos(), rtol=0, atol=1e-5)


def test_position_embedding_shapes_and_keys():
    xyz = torch.randn(B, G, 3)
    assert mlp_pos_embed(C)(xyz).shape == sincos_pos_embed(C)(xyz).shape == (B, G, C)
    assert set(mlp_pos_embed(C).state_dict()) == {'0.weight', '0.bias', '2.weight', '2.bias'}
    assert set(sincos_pos_embed(C).state_dict()) == {'1.weight', '1.bias', '3.weight', '3.bias'}


# ---------------------------------------------------------------- transformer
def test_attention_equals_explicit_softmax_attention():
    attn = Attention(C, num_heads=4).eval()
    x = torch.randn(B, 10, C)
    q, k, v = attn.qkv(x).reshape(B, 10, 3, 4, C // 4).permute(2, 0, 3, 1, 4)
    w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(C // 4), dim=-1)
    expected = attn.proj((w @ v).transpose(1, 2).reshape(B, 10, C))
    torch.testing.assert_close(attn(x), expected, rtol=1e-5, atol=1e-6)
    assert attn.qkv.bias is None


def test_drop_path_drops_whole_samples_and_is_identity_in_eval():
    dp = DropPath(0.5)
    x = torch.ones(64, 5, 3)
    torch.manual_seed(0)
    y = dp(x)
    per_sample = y.reshape(64, -1)
    assert set(per_sample.unique().tolist()) <= {0.0, 2.0}
    assert (per_sample.amin(1) == per_sample.amax(1)).all()
    assert torch.equal(dp.eval()(x), x)


def test_block_and_encoder_shapes_and_schedule():
    assert drop_path_rates(0.1, 12)[0] == 0 and drop_path_rates(0.1, 12)[-1] == pytest.approx(0.1)
    assert Block(C, 2)(torch.randn(B, 5, C)).shape == (B, 5, C)
    enc = TransformerEncoder(C, 3, 2).eval()
    x, pos = torch.randn(B, 5, C), torch.randn(B, 5, C)
    outs = enc(x, pos, after_blocks=(1, 3))
    assert len(outs) == 2 and outs[1].shape == (B, 5, C)
    torch.testing.assert_close(outs[1], enc(x, pos), rtol=0, atol=0)
    torch.testing.assert_close(outs[0], enc.blocks[0](x + pos), rtol=0, atol=0)


def test_decoder_returns_the_normalised_masked_tokens():
    dec = TransformerDecoder(C, 2, 2).eval()
    out = dec(torch.randn(B, G, C), torch.randn(B, G, C), num_masked=5)
    assert out.shape == (B, 5, C)
    torch.testing.assert_close(out.mean(-1), torch.zeros(B, 5), rtol=0, atol=1e-5)
    assert set(k.split('.')[0] for k in dec.state_dict()) == {'blocks', 'norm'}


# ---------------------------------------------------------------- encoder
def test_encoder_steps_shapes_with_and_without_cls():
    enc = tiny_encoder()
    neighborhood, center, tokens = enc.tokenize(cloud())
    assert tokens.shape == (B, G, C)
    cls, patches = enc.encode(tokens[:, :5], center[:, :5])
    assert cls.shape == (B, C) and patches.shape == (B, 5, C)
    assert enc(cloud()).shape == (B, 2 * C)
    no_cls = tiny_encoder(cls_token=False)
    cls, patches = no_cls.encode(tokens, center)
    assert cls is None and patches.shape == (B, G, C)
    assert 'cls_token' not in no_cls.state_dict()


def test_block_features_end_with_the_encoder_output():
    enc = tiny_encoder().eval()
    feats, center = enc.block_features(cloud(), after_blocks=(1, 2))
    assert len(feats) == 2 and feats[0].shape == (B, G, C) and center.shape == (B, G, 3)
    _, center, tokens = enc.tokenize(cloud())
    torch.testing.assert_close(feats[1], enc.encode(tokens, center)[1], rtol=0, atol=0)


def test_global_feature_is_cls_and_max():
    cls, patches = torch.randn(B, C), torch.randn(B, 7, C)
    f = PointEncoder.global_feature(cls, patches)
    torch.testing.assert_close(f, torch.cat([cls, patches.max(1).values], -1), rtol=0, atol=0)


def test_encoder_init_is_point_mae_like():
    enc = PointEncoder()
    w = enc.blocks.blocks[0].mlp.fc1.weight
    assert abs(w.std().item() - 0.02) < 0.002 and enc.blocks.blocks[0].mlp.fc1.bias.abs().max() == 0
    assert torch.equal(enc.norm.weight, torch.ones(384))
    assert 0 < enc.cls_token.std().item() < 0.03
    assert F.cosine_similarity(enc.cls_token.flatten(), enc.cls_pos.flatten(), dim=0).abs() < 0.3
