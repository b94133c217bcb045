"""models.analysis: the cluster view feeds the head exactly the dense set of a training step, the
reconstruction view reproduces the reconstruction term, Point-MAE checkpoints rebuild from weights."""
import pytest
import torch

from conftest import tiny_model_config
from models import build_model
from models.analysis import cluster_assignment, load_pretraining_model, masked_reconstruction
from test_features import G, S, foreign, ours_finetune, perturb
from utils.checkpoint import CheckpointError, make_checkpoint, save_checkpoint

B, N = 2, 128


@pytest.fixture(autouse=True)
def _torch(torch_globals):
    yield


def points(seed=0):
    return torch.randn(B, N, 3, generator=torch.Generator().manual_seed(seed))


def one_view_maskclu():
    """The paper's dense terms on one masked view (no global term; one view has no other view to
    pair with, so ``pairing: self``), so a training forward and the
    cluster view draw the same mask from the same seed."""
    cfg = tiny_model_config(NAME='MaskClu', views=1,
                            losses={'assign': {'pairing': 'self'}, 'global': {'weight_contrast': 0.0}})
    return perturb(build_model(cfg), 7), cfg


def point_mae():
    cfg = tiny_model_config(NAME='Point_MAE')
    cfg = {k: cfg[k] for k in ('NAME', 'num_group', 'group_size', 'transformer_config')}
    return perturb(build_model(cfg), 8), cfg


def save(tmp_path, model, cfg, name='ckpt.pth'):
    path = tmp_path / name
    save_checkpoint(make_checkpoint(model, epoch=1, config={'model': cfg}), path)
    return path


def capture_head_inputs(model):
    seen = []
    handle = model.cluster_head.register_forward_hook(lambda m, args, out: seen.append((*args, out)))
    return seen, handle


def test_cluster_view_uses_the_dense_set_of_training(tmp_path):
    source, cfg = one_view_maskclu()
    model, config = load_pretraining_model(save(tmp_path, source, cfg))
    seen, handle = capture_head_inputs(model)
    x = points()
    with torch.no_grad():
        model(x, generator=torch.Generator().manual_seed(3))
        view = cluster_assignment(model, config, x, seed=3)
    handle.remove()
    (h_train, x_train, logits_train), (h_view, x_view, _) = seen
    torch.testing.assert_close(h_view, h_train, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(x_view, x_train)
    # the assignment, back in patch order, is the training softmax of the head's logits
    order = torch.cdist(x_train, view.centers).argmin(-1)  # (B, G): dense position -> patch index
    assert all(sorted(o.tolist()) == list(range(G)) for o in order)
    expected = torch.softmax(logits_train, -1)
    torch.testing.assert_close(torch.gather(view.assignment, 1, order.unsqueeze(-1).expand_as(expected)), expected)
    M = int(0.6 * G)
    assert view.masked.sum(1).tolist() == [M] * B
    assert view.point_labels.shape == (B, N) and view.cluster_centers.shape == (B, 8, 3)
    torch.testing.assert_close(view.assignment.sum(-1), torch.ones(B, G))


def test_cluster_view_without_masking_sees_every_patch(tmp_path):
    source, cfg = one_view_maskclu()
    model, config = load_pretraining_model(save(tmp_path, source, cfg))
    x = points(1)
    view = cluster_assignment(model, config, x, mask_ratio=0)
    assert not view.masked.any()
    with torch.no_grad():  # the paper's dense set: the decoder at all G patches, here all visible
        _, centers, tokens = model.MAE_encoder.tokenize(x)
        _, x_vis = model.MAE_encoder.encode(tokens, centers)
        pos = model.decoder_pos_embed(centers)
        h = model.MAE_decoder.norm(model.MAE_decoder.blocks[0](x_vis + pos))  # tiny: decoder_depth 1
        expected = torch.softmax(model.cluster_head(h, centers), -1)
    torch.testing.assert_close(view.assignment, expected)
    # a point on a patch center takes that patch's cluster
    idx = torch.cdist(view.centers, x).argmin(-1)
    on_center = torch.gather(view.point_labels, 1, idx)
    assert torch.equal(on_center, view.assignment.argmax(-1))


def test_reconstruction_view_reproduces_the_reconstruction_term(tmp_path):
    source, cfg = point_mae()
    model, config = load_pretraining_model(save(tmp_path, source, cfg))
    x = points(2)
    with torch.no_grad():
        term = model(x, generator=torch.Generator().manual_seed(5))['terms']['reconstruction']
    view = masked_reconstruction(model, config, x, seed=5)
    M = int(0.6 * G)
    assert view.visible.shape == (B, G - M, S, 3) and view.target.shape == view.predicted.shape == (B, M, S, 3)
    torch.testing.assert_close(view.chamfer.mean(), term, rtol=1e-5, atol=1e-6)
    # visible and masked patches are the G kNN groups in the cloud's coordinates
    groups = torch.cat([view.visible, view.target], 1).reshape(B, -1, 3)
    assert (groups.unsqueeze(2) - x.unsqueeze(1)).square().sum(-1).amin(-1).max() < 1e-10


def test_point_mae_checkpoint_without_config_rebuilds_from_its_weights(tmp_path):
    source, ckpt = foreign(point_mae()[1], 9)
    path = tmp_path / 'pointmae.pth'
    torch.save(ckpt, path)
    model, config = load_pretraining_model(path, num_group=G, num_heads=2)
    assert config['group_size'] == S and config['transformer_config']['decoder_depth'] == 1
    x = points(3)
    with torch.no_grad():
        expected = source(x, generator=torch.Generator().manual_seed(1))['terms']['reconstruction']
    torch.testing.assert_close(masked_reconstruction(model, config, x, seed=1).chamfer.mean(), expected,
                               rtol=1e-5, atol=1e-6)


def test_views_refuse_models_without_the_head(tmp_path):
    mae, cfg = point_mae()
    model, config = load_pretraining_model(save(tmp_path, mae, cfg))
    with pytest.raises(ValueError, match='no cluster head'):
        cluster_assignment(model, config, points())
    clu, cfg = one_view_maskclu()
    model, config = load_pretraining_model(save(tmp_path, clu, cfg, 'clu.pth'))
    with pytest.raises(ValueError, match='no reconstruction head'):
        masked_reconstruction(model, config, points())
    finetuned, _, _ = ours_finetune(tmp_path)
    with pytest.raises(CheckpointError, match='not a pre-training checkpoint'):
        load_pretraining_model(finetuned)
