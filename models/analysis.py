"""What a pre-trained model sees, computed with its own modules (``tools/visualize.py``).

``load_pretraining_model(ckpt)`` rebuilds the whole pre-training model (encoder, decoder, heads)
from one of our pre-training checkpoints (its stored config) or from a Point-MAE checkpoint
(sizes inferred from the weights). Two views then use only the modules every objective keeps
under stable names: ``MAE_encoder``, ``mask_token``, ``decoder_pos_embed``, ``MAE_decoder``,
``cluster_head`` and ``reconstruction_loss.head``:

* ``cluster_assignment``: the dense head's soft assignment of the G patches to the P clusters
  (on the dense token set the head is trained on), propagated to the points;
* ``masked_reconstruction``: Point-MAE's masked patches and their predicted points.
"""
from typing import NamedTuple

import torch

from extensions import chamfer_distance, gather_points, interpolate_idw
from models.build import build_model
from models.features import checkpoint_model_config, read_checkpoint
from models.losses import soft_centers
from models.masking import make_mask
from utils.checkpoint import (WRAPPER_PREFIXES, CheckpointError, extract_state_dict, load_pretrained, strip_prefixes,
                              to_our_names)
from utils.checkpoint_interop import count_blocks
from utils.config import ConfigError


class ClusterView(NamedTuple):
    """centers (B, G, 3); assignment (B, G, P) soft, rows sum to 1; point_labels (B, N) the
    cluster of each point (argmax of the propagated assignment); cluster_centers (B, P, 3)
    ``c_p = sum_i A_ip X_i / sum_i A_ip``; masked (B, G) bool, the patches the encoder did not see."""
    centers: torch.Tensor
    assignment: torch.Tensor
    point_labels: torch.Tensor
    cluster_centers: torch.Tensor
    masked: torch.Tensor


class ReconstructionView(NamedTuple):
    """visible (B, V, S, 3) the visible patches, target (B, M, S, 3) the masked ones, predicted
    (B, M, S, 3) their reconstruction, all in the cloud's coordinates; chamfer (B,) the
    Chamfer-L2 (mean d1 + mean d2, squared) between predicted and target patches, per cloud."""
    visible: torch.Tensor
    target: torch.Tensor
    predicted: torch.Tensor
    chamfer: torch.Tensor


def load_pretraining_model(ckpt, device=None, num_group=None, num_heads=None, logger=None, source=None):
    """(model in eval mode, its model config) from a pre-training checkpoint (a path, or a loaded
    dict named ``source`` in messages).

    Our checkpoints are rebuilt from their stored config; checkpoints without one must be
    Point-MAE's (``increase_dim.0`` head), whose sizes come from the weights (6 heads and G=64
    unless given). ``num_group`` overrides G in either case. A weight of the model missing from
    the checkpoint is a CheckpointError.
    """
    source, ckpt = read_checkpoint(ckpt, source)
    state = strip_prefixes(extract_state_dict(ckpt, source), WRAPPER_PREFIXES)
    if not any(k.startswith('MAE_encoder.') for k in state):
        raise CheckpointError(f"{source} is not a pre-training checkpoint (no MAE_encoder.* weights); "
                              f"this view needs the pre-training model")
    state = to_our_names(state)  # Point-MAE's increase_dim.0 -> reconstruction_loss.head, ...
    config = checkpoint_model_config(ckpt) or point_mae_config(state, source, num_group, num_heads)
    if num_group:
        config = {**config, 'num_group': num_group}
    try:
        model = build_model(config)
    except ConfigError as e:
        raise CheckpointError(f"{source}: its model config does not build with this code: {e}") from None
    report = load_pretrained(model, {'base_model': state}, logger=logger)
    if report.missing or report.mismatched:
        raise CheckpointError(f"{source}: the pre-training model cannot be rebuilt from this checkpoint:\n  "
                              + '\n  '.join(report.lines()[1:]))
    return model.requires_grad_(False).eval().to(device or 'cpu'), config


def point_mae_config(state, source, num_group=None, num_heads=None):
    """The ``Point_MAE`` config of a Point-MAE checkpoint, from its weights' shapes."""
    if 'reconstruction_loss.head.weight' not in state:
        raise CheckpointError(f"{source} carries no model config and is not a Point-MAE pre-training "
                              f"checkpoint (no increase_dim.0 head); the model cannot be rebuilt")
    width = state['MAE_encoder.norm.weight'].shape[0]
    heads = num_heads or 6
    return {'NAME': 'Point_MAE', 'num_group': num_group or 64,
            'group_size': state['reconstruction_loss.head.weight'].shape[0] // 3,
            'point_channels': state['MAE_encoder.encoder.first_conv.0.weight'].shape[1],
            'transformer_config': {'trans_dim': width, 'encoder_dims': width, 'num_heads': heads,
                                   'depth': count_blocks(state, 'MAE_encoder.blocks.blocks.'),
                                   'decoder_depth': count_blocks(state, 'MAE_decoder.blocks.'),
                                   'decoder_num_heads': heads}}


def transformer_config(config):
    return config.get('transformer_config', {})


def masked_pass(model, points, mask_ratio, mask_type, generator):
    """Tokenize, mask, encode the visible patches: returns neighborhood (B, G, S, 3), centers
    (B, G, 3), order (B, G) = [visible indices, masked indices], V, and x_vis (B, V, C)."""
    encoder = model.MAE_encoder
    neighborhood, centers, tokens = encoder.tokenize(points)
    B, G, _ = centers.shape
    if mask_ratio > 0:
        vis, mask = make_mask(centers, mask_ratio, mask_type, generator)
    else:
        vis, mask = torch.arange(G, device=points.device).expand(B, G), centers.new_zeros(B, 0).long()
    _, x_vis = encoder.encode(gather_points(tokens, vis), gather_points(centers, vis))
    return neighborhood, centers, torch.cat([vis, mask], dim=1), vis.shape[1], x_vis


@torch.no_grad()
def cluster_assignment(model, config, points, mask_ratio=None, seed=0):
    """``ClusterView`` of points (B, N, 3) under ``model``'s dense cluster head.

    The head sees the dense token set it was trained on: with ``dense_tokens: decoder`` the
    decoder outputs at all G patches, otherwise the encoder outputs at the visible patches and
    the decoder outputs at the masked ones. ``mask_ratio`` defaults to the training ratio
    (masks drawn from ``seed``); 0 encodes the whole cloud (every patch visible).
    """
    if getattr(model, 'cluster_head', None) is None:
        raise ValueError("this checkpoint has no cluster head (its assign and center terms have weight 0, "
                         "e.g. the Point-MAE baseline or a global-only objective); the cluster view needs a "
                         "MaskClu pre-training checkpoint")
    t = transformer_config(config)
    ratio = t.get('mask_ratio', 0.6) if mask_ratio is None else mask_ratio
    generator = torch.Generator(points.device).manual_seed(seed)
    _, centers, order, V, x_vis = masked_pass(model, points, ratio, t.get('mask_type', 'rand'), generator)
    x = gather_points(centers, order)
    if model.dense_tokens == 'decoder':
        h = model.decode(x_vis, x[:, :V], x[:, V:])
    elif V < x.shape[1]:
        h = torch.cat([x_vis, model.decode(x_vis, x[:, :V], x[:, V:])], dim=1)
    else:
        h = x_vis
    assign = torch.softmax(model.cluster_head(h, x).float(), dim=-1)
    assign = torch.empty_like(assign).scatter_(1, order.unsqueeze(-1).expand_as(assign), assign)
    masked = torch.zeros(order.shape, dtype=torch.bool, device=points.device)
    masked.scatter_(1, order[:, V:], True)
    point_labels = interpolate_idw(points, centers, assign).argmax(dim=-1)
    return ClusterView(centers, assign, point_labels, soft_centers(assign, centers), masked)


@torch.no_grad()
def masked_reconstruction(model, config, points, mask_ratio=None, seed=0):
    """``ReconstructionView`` of points (B, N, 3): mask as in training (or ``mask_ratio``), with
    masks drawn from ``seed``, and predict the masked patches with the reconstruction head."""
    head = getattr(getattr(model, 'reconstruction_loss', None), 'head', None)
    if head is None:
        raise ValueError("this checkpoint has no reconstruction head (its reconstruction term has weight 0); "
                         "the reconstruction view needs the Point-MAE baseline or an objective with that term")
    t = transformer_config(config)
    ratio = t.get('mask_ratio', 0.6) if mask_ratio is None else mask_ratio
    if ratio <= 0:
        raise ValueError('the reconstruction view needs masked patches: mask_ratio must be > 0')
    generator = torch.Generator(points.device).manual_seed(seed)
    neighborhood, centers, order, V, x_vis = masked_pass(model, points, ratio, t.get('mask_type', 'rand'), generator)
    B, G, S, _ = neighborhood.shape
    patches = gather_points((neighborhood + centers.unsqueeze(2)).reshape(B, G, S * 3), order).reshape(B, G, S, 3)
    x = gather_points(centers, order)
    tokens = model.decode(x_vis, x[:, :V], x[:, V:])[:, V:] if model.dense_tokens == 'decoder' else \
        model.decode(x_vis, x[:, :V], x[:, V:])
    predicted = head(tokens.transpose(1, 2)).transpose(1, 2).reshape(B, G - V, S, 3) + x[:, V:].unsqueeze(2)
    d1, d2, _, _ = chamfer_distance(predicted.reshape(-1, S, 3).float(), patches[:, V:].reshape(-1, S, 3).float())
    chamfer = (d1.mean(-1) + d2.mean(-1)).view(B, G - V).mean(-1)
    return ReconstructionView(patches[:, :V], patches[:, V:], predicted, chamfer)
