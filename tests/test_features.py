"""load_encoder on every checkpoint kind: ours (pre-training, fine-tuned), Point-MAE's, Point-BERT's,
released MaskClu's; shapes of every output; per-point features against a NumPy interpolation."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT, TINY_BACKBONE, tiny_model_config
from models import build_model
from models.features import EncoderSpec, FeatureEncoder, load_encoder
from utils.checkpoint import CheckpointError, make_checkpoint, save_checkpoint

B, N = 2, 96
G, S, C = TINY_BACKBONE['num_group'], TINY_BACKBONE['group_size'], TINY_BACKBONE['trans_dim']


@pytest.fixture(autouse=True)
def _torch(torch_globals):
    yield


def perturb(module, seed):
    """Move every parameter and BatchNorm statistic off its initial value, so a weight that
    fails to load changes the features."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in module.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(0.05 * torch.randn(tensor.shape, generator=gen))
                if tensor.dim() == 1 and (tensor < 0).any():
                    tensor.abs_()
    return module.eval()


def ours_pretrain(tmp_path):
    model = perturb(build_model(tiny_model_config(NAME='MaskClu')), 1)
    path = tmp_path / 'ckpt-last.pth'
    save_checkpoint(make_checkpoint(model, epoch=3, config={'model': model.config}), path)
    return path, model.MAE_encoder, {}


def ours_finetune(tmp_path):
    cfg = {'NAME': 'PointTransformer', 'cls_dim': 5, 'encoder_dims': C, **TINY_BACKBONE}
    model = perturb(build_model(cfg), 2)
    path = tmp_path / 'ckpt-best.pth'
    save_checkpoint(make_checkpoint(model, epoch=3, config={'model': cfg}), path)
    return path, model, {}


def foreign(model_cfg, seed):
    """A pre-training model saved the Point-MAE way: {'base_model': {'module.<name>': ...}},
    no config, the reconstruction head under Point-MAE's name ``increase_dim.0``."""
    model = perturb(build_model(model_cfg), seed)
    state = {f"module.{k.replace('reconstruction_loss.head.', 'increase_dim.0.')}": v
             for k, v in model.state_dict().items()}
    return model, {'base_model': state, 'epoch': 300}


def point_mae(tmp_path):
    cfg = tiny_model_config(NAME='Point_MAE')
    model, ckpt = foreign({k: cfg[k] for k in ('NAME', 'num_group', 'group_size', 'transformer_config')}, 3)
    path = tmp_path / 'pointmae.pth'
    torch.save(ckpt, path)
    return path, model.MAE_encoder, {'num_group': G, 'group_size': S, 'num_heads': 2}


def released_maskclu(tmp_path):
    model, ckpt = foreign(tiny_model_config(NAME='MaskClu', views=1, losses={'assign': {'pairing': 'self'},
                                                                          'global': {'type': 'released'}}), 4)
    ckpt['base_model']['module.norm.weight'] = torch.ones(C)  # the released decoder's extra LayerNorm
    path = tmp_path / 'maskclu_released.pth'
    torch.save(ckpt, path)
    return path, model.MAE_encoder, {'num_group': G, 'group_size': S, 'num_heads': 2}


def point_bert(tmp_path):
    spec = EncoderSpec(trans_dim=C, depth=2, num_heads=2, num_group=G, group_size=S, point_channels=3,
                       encoder_dims=24, cls_token=True)
    model = perturb(FeatureEncoder(spec), 5)
    state = {f'module.transformer_q.{k}': v for k, v in model.state_dict().items()}
    state.update({f'module.transformer_k.{k}': torch.zeros_like(v) for k, v in model.state_dict().items()})
    state.update({'module.transformer_q.lm_head.weight': torch.zeros(8, C), 'module.dvae.codebook': torch.zeros(8, 4)})
    path = tmp_path / 'pointbert.pth'
    torch.save({'base_model': state}, path)
    return path, model, {'num_group': G, 'group_size': S, 'num_heads': 2}


KINDS = {'ours_pretrain': ours_pretrain, 'ours_finetune': ours_finetune, 'point_mae': point_mae,
         'released_maskclu': released_maskclu, 'point_bert': point_bert}


def reference_global(source, points):
    """The global feature the checkpoint's own model computes."""
    with torch.no_grad():
        if isinstance(source, FeatureEncoder):
            return source(points, per_point=False).global_feature
        if hasattr(source, 'global_features'):  # a fine-tuned classifier
            return source.global_features(points)
        return source(points)


@pytest.mark.parametrize('kind', sorted(KINDS))
def test_load_encoder_every_checkpoint_kind(tmp_path, kind):
    path, source, overrides = KINDS[kind](tmp_path)
    encoder = load_encoder(path, **overrides)
    assert not encoder.training and not any(p.requires_grad for p in encoder.parameters())
    points = torch.randn(B, N, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = encoder(points)
    assert out.global_feature.shape == (B, 2 * C)
    assert out.patch_tokens.shape == (B, G, C)
    assert out.centers.shape == (B, G, 3)
    assert out.point_features.shape == (B, N, C)
    torch.testing.assert_close(out.global_feature, reference_global(source, points), rtol=1e-5, atol=1e-5)
    assert encoder.spec.cls_token == (kind != 'point_mae')
    assert encoder.spec.point_channels == (3 if kind in ('point_mae', 'point_bert') else 4)
    assert (encoder.reduce_dim is not None) == (kind == 'point_bert')


def test_config_gives_sizes_and_overrides_win(tmp_path):
    path, _, _ = ours_pretrain(tmp_path)
    spec = load_encoder(path).spec
    assert (spec.num_group, spec.group_size, spec.num_heads) == (G, S, 2)
    assert spec.sources == {'num_heads': 'config', 'num_group': 'config', 'group_size': 'config'}
    spec = load_encoder(path, num_group=8, group_size=4).spec
    assert (spec.num_group, spec.group_size, spec.sources['num_group']) == (8, 4, 'given')


def test_without_config_heads_default_to_six_and_must_divide(tmp_path):
    path, _, _ = point_mae(tmp_path)
    with pytest.raises(CheckpointError, match='num_heads=6 .default. does not divide the encoder width 32'):
        load_encoder(path)


def test_missing_encoder_weight_is_an_error_naming_it(tmp_path):
    path, _, overrides = point_mae(tmp_path)
    ckpt = torch.load(path)
    del ckpt['base_model']['module.MAE_encoder.blocks.blocks.1.mlp.fc2.weight']
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=r'(?s)pointmae.pth: the encoder cannot be rebuilt.*missing.*blocks.blocks.1.mlp.fc2.weight'):
        load_encoder(path, **overrides)


def test_not_an_encoder_checkpoint(tmp_path):
    path = tmp_path / 'other.pth'
    torch.save({'model': {'fc.weight': torch.zeros(2, 2)}}, path)
    with pytest.raises(CheckpointError, match="other.pth holds no point-cloud ViT encoder"):
        load_encoder(path)


def numpy_idw(points, centers, features):
    """Brute force: each point takes the 3 nearest centers, weights 1/(d2+1e-8) normalised."""
    out = np.zeros((points.shape[0], points.shape[1], features.shape[-1]))
    for b in range(points.shape[0]):
        for i, p in enumerate(points[b]):
            d2 = ((centers[b] - p) ** 2).sum(-1)
            near = np.argsort(d2)[:3]
            w = 1.0 / (d2[near] + 1e-8)
            out[b, i] = (w[:, None] * features[b, near]).sum(0) / w.sum()
    return out


@pytest.mark.parametrize('point_blocks', [None, (1, 2)])
def test_per_point_features_are_inverse_distance_interpolation(tmp_path, point_blocks):
    path, _, _ = ours_pretrain(tmp_path)
    encoder = load_encoder(path)
    points = torch.randn(B, N, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    encoder = encoder.double()
    with torch.no_grad():
        out = encoder(points, point_blocks=point_blocks)
        dense = out.patch_tokens if point_blocks is None else torch.cat(
            encoder.encode_blocks(encoder.tokenize(points)[2], out.centers, point_blocks), -1)
    expected = numpy_idw(points.numpy(), out.centers.numpy(), dense.numpy())
    assert out.point_features.shape == (B, N, C * (1 if point_blocks is None else len(point_blocks)))
    torch.testing.assert_close(out.point_features, torch.from_numpy(expected), rtol=1e-9, atol=1e-9)
    # every point sits on a center or between them: its feature is not simply one patch's
    assert not torch.allclose(out.point_features[:, :, :C], dense[:, :1, :C].expand(B, N, C))


def test_per_point_optional_and_input_checked(tmp_path):
    path, _, _ = ours_pretrain(tmp_path)
    encoder = load_encoder(path)
    with torch.no_grad():
        assert encoder(torch.randn(1, N, 3), per_point=False).point_features is None
    with pytest.raises(ValueError, match=r'float points \(B, N, 3\), got \(1, 96, 6\)'):
        encoder(torch.randn(1, N, 6))
    with pytest.raises(ValueError, match='point_blocks'):
        encoder(torch.randn(1, N, 3), point_blocks=(3,))


def test_importing_features_imports_no_dataset_reader():
    code = ("import sys; import models.features; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('datasets', 'h5py')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, '-c', code], cwd=ROOT, check=True,
                   env={**os.environ, 'PYTHONPATH': ROOT})
