"""Our backbone computes Point-MAE's function on the same weights (so Point-MAE checkpoints mean
the same thing here).

``point_mae_forward`` is a plain float64 transcription of Point-MAE's documented architecture,
written from its description, one cloud at a time: FPS from point 0 picks G centers, each takes
its S nearest points relative to it; the mini-PointNet (first_conv, max over the patch, the max
concatenated before every point's feature, second_conv, max); the MLP position embedding of
the centers, added to the tokens before *every* block; an optional cls token with its own
position ``cls_pos`` in front; pre-norm blocks (multi-head attention without qkv bias, GELU MLP);
the final LayerNorm; for classification concat(cls, max over the patches) into the head.
"""
import pytest
import torch
import torch.nn.functional as F

from models import build_model
from models.maskclu import select
from test_models import classifier_cfg, clouds, pointmae_cfg

HEADS = 2


def fps(points, n):
    """(N, 3) -> n indices, farthest point sampling started at point 0."""
    chosen, dist = [0], torch.full((len(points),), float('inf'), dtype=points.dtype)
    for _ in range(n - 1):
        dist = torch.minimum(dist, (points - points[chosen[-1]]).square().sum(-1))
        chosen.append(int(dist.argmax()))
    return torch.tensor(chosen)


def group(points, num_group, group_size):
    """(N, 3) -> neighborhood (G, S, 3) relative to the centers, centers (G, 3)."""
    center = points[fps(points, num_group)]
    idx = torch.cdist(center, points).topk(group_size, largest=False).indices
    return points[idx] - center[:, None], center


def conv_bn_relu_conv(sd, prefix, x):
    """Conv1d(k=1) - BatchNorm1d (eval: running statistics) - ReLU - Conv1d(k=1) on (G, C_in, S)."""
    x = F.conv1d(x, sd[f'{prefix}.0.weight'], sd[f'{prefix}.0.bias'])
    x = F.batch_norm(x, sd[f'{prefix}.1.running_mean'], sd[f'{prefix}.1.running_var'], sd[f'{prefix}.1.weight'],
                     sd[f'{prefix}.1.bias'], training=False, eps=1e-5)
    return F.conv1d(F.relu(x), sd[f'{prefix}.3.weight'], sd[f'{prefix}.3.bias'])


def mini_pointnet(sd, neighborhood):
    """(G, S, 3) -> tokens (G, C); the per-patch max comes first in the concatenation."""
    x = neighborhood.transpose(1, 2)
    if sd['encoder.first_conv.0.weight'].shape[1] == 4:
        x = torch.cat([x, x.norm(dim=1, keepdim=True)], dim=1)
    f = conv_bn_relu_conv(sd, 'encoder.first_conv', x)
    f = torch.cat([f.amax(dim=2, keepdim=True).expand_as(f), f], dim=1)
    return conv_bn_relu_conv(sd, 'encoder.second_conv', f).amax(dim=2)


def linear(sd, name, x):
    return F.linear(x, sd[f'{name}.weight'], sd.get(f'{name}.bias'))


def layer_norm(sd, name, x):
    return F.layer_norm(x, x.shape[-1:], sd[f'{name}.weight'], sd[f'{name}.bias'], eps=1e-5)


def block(sd, prefix, x):
    """Pre-norm block on (T, C): x + Attn(LN(x)), then x + MLP(LN(x))."""
    T, C = x.shape
    q, k, v = linear(sd, f'{prefix}.attn.qkv', layer_norm(sd, f'{prefix}.norm1', x)).reshape(
        T, 3, HEADS, C // HEADS).permute(1, 2, 0, 3)
    attn = (q @ k.transpose(-2, -1) * (C // HEADS) ** -0.5).softmax(dim=-1)
    x = x + linear(sd, f'{prefix}.attn.proj', (attn @ v).transpose(0, 1).reshape(T, C))
    hidden = F.gelu(linear(sd, f'{prefix}.mlp.fc1', layer_norm(sd, f'{prefix}.norm2', x)))
    return x + linear(sd, f'{prefix}.mlp.fc2', hidden)


def transformer(sd, tokens, center, pos_every_block=True):
    """tokens (T, C), centers (T, 3) -> (T [+1], C) after the final LayerNorm."""
    pos = linear(sd, 'pos_embed.2', F.gelu(linear(sd, 'pos_embed.0', center)))
    x = tokens
    if 'cls_token' in sd:
        x, pos = torch.cat([sd['cls_token'][0], x]), torch.cat([sd['cls_pos'][0], pos])
    depth = len({k.split('.')[2] for k in sd if k.startswith('blocks.blocks.')})
    for i in range(depth):
        x = block(sd, f'blocks.blocks.{i}', x + pos if pos_every_block or i == 0 else x)
    return layer_norm(sd, 'norm', x)


def classify(sd, points, num_group, group_size, pos_every_block=True):
    """Point-MAE's PointTransformer: (B, N, 3) -> logits (B, classes)."""
    logits = []
    for cloud in points:
        neighborhood, center = group(cloud, num_group, group_size)
        x = transformer(sd, mini_pointnet(sd, neighborhood), center, pos_every_block)
        f = torch.cat([x[0], x[1:].amax(dim=0)])[None]
        for i in (0, 4):
            f = F.relu(F.batch_norm(linear(sd, f'cls_head_finetune.{i}', f), sd[f'cls_head_finetune.{i + 1}.running_mean'],
                                    sd[f'cls_head_finetune.{i + 1}.running_var'], sd[f'cls_head_finetune.{i + 1}.weight'],
                                    sd[f'cls_head_finetune.{i + 1}.bias'], training=False, eps=1e-5))
        logits.append(linear(sd, 'cls_head_finetune.8', f)[0])
    return torch.stack(logits)


def randomized(model):
    """Every parameter and BatchNorm statistic drawn at random (LayerNorm affine included), float64."""
    torch.manual_seed(0)
    model = model.double().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * (0.5 if p.ndim == 1 else 0.3) + (1.0 if 'norm' in name and
                                                                              name.endswith('weight') else 0.0))
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model


@pytest.mark.parametrize('channels', [3, 4])
def test_classifier_computes_point_maes_function(channels):
    model = randomized(build_model(classifier_cfg(point_channels=channels)))
    sd = model.state_dict()
    points = clouds(b=3, n=128).double()
    expected = classify(sd, points, 16, 8)
    torch.testing.assert_close(model(points), expected, rtol=1e-9, atol=1e-9)
    once = classify(sd, points, 16, 8, pos_every_block=False)
    assert (once - expected).abs().max() > 1e-2  # the position embedding before every block matters


def test_pretraining_encoder_without_cls_token_computes_point_maes_function():
    """Point-MAE pre-training: the encoder sees only the visible patches, without a cls token."""
    encoder = randomized(build_model(pointmae_cfg())).MAE_encoder
    sd = encoder.state_dict()
    points = clouds(b=2, n=128).double()
    neighborhood, center, tokens = encoder.tokenize(points)
    visible = torch.stack([torch.randperm(16, generator=torch.Generator().manual_seed(b))[:6] for b in range(2)])
    cls, patches = encoder.encode(select(tokens, visible), select(center, visible))
    assert cls is None
    for b in range(2):
        ref_neighborhood, ref_center = group(points[b], 16, 8)
        torch.testing.assert_close(center[b], ref_center, rtol=0, atol=0)
        torch.testing.assert_close(tokens[b], mini_pointnet(sd, ref_neighborhood), rtol=1e-9, atol=1e-9)
        expected = transformer(sd, tokens[b][visible[b]], center[b][visible[b]])
        torch.testing.assert_close(patches[b], expected, rtol=1e-9, atol=1e-9)
