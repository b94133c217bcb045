"""Dense frozen probe: a linear per-point classifier on a frozen encoder's per-point features.

The cheapest way to compare pre-training objectives on a dense task (ShapeNetPart):

1. ``sample_point_features``: per-point features of the train split, keeping ``points_per_shape``
   random points per shape, stored on the CPU in float16: memory shapes * points_per_shape * D * 2
   bytes (ShapeNetPart train+val, 32 points, D = 1152: 1.0 GB). For part segmentation the
   features are blocks 4/8/12 through the final norm, propagated to the points by 3-NN
   inverse-distance interpolation: with ``encoder = models.features.load_encoder(ckpt,
   num_group=128)``, ``feature_fn = lambda p: encoder(p, point_blocks=(4, 8, 12)).point_features``.
2. ``fit_linear_probe``: one ``nn.Linear(D, P)`` trained with Adam (cosine-annealed) on the
   standardised features; its softmax runs over the shape's category parts only, as the
   evaluation's argmax does. The standardisation is folded into the returned layer.
3. ``evaluate_probe``: every point of every test shape, scored with ``utils.seg_metrics``.

``dense_probe`` runs the three. Batches are ``(points (B,N,3), category (B,), parts (B,N))`` as
the ShapeNetPart loader collates them, optionally with a fourth entry, the dataset indices
(B,): needed under DDP so that the test shapes a ``DistributedSampler`` duplicates count once.
``feature_fn(points (B,N,3)) -> (B,N,D)`` is called under ``no_grad``; its encoder must be in eval
mode (``load_encoder`` returns it so). Under DDP every rank extracts its shard, the train features are gathered batch by batch,
and every rank fits the same probe (same data, same seed).
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from extensions import gather_points
from utils import dist
from utils.dist import gather_rows
from utils.seg_metrics import PartSegMeter, category_part_mask


def split_batch(batch, device):
    """A ShapeNetPart batch -> points, category, parts on ``device``, and the indices or None."""
    points, category, parts = (t.to(device, non_blocking=True) for t in batch[:3])
    index = batch[3].to(device) if len(batch) > 3 else None
    return points, category.reshape(-1).long(), parts.long(), index


@torch.no_grad()
def sample_point_features(feature_fn, loader, device, points_per_shape=32, seed=0, dtype=torch.float16):
    """Features of ``points_per_shape`` random points of every shape (all if fewer) ->
    features (M, D) ``dtype`` on the CPU, parts (M,), category (M,) int64; M = shapes * k
    (gathered over ranks under DDP)."""
    generator = torch.Generator().manual_seed(seed + dist.get_rank())
    out = {'features': [], 'parts': [], 'category': []}
    for batch in loader:
        points, category, parts, _ = split_batch(batch, device)
        B, N, _ = points.shape
        k = min(points_per_shape, N)
        pick = torch.rand(B, N, generator=generator).argsort(dim=1)[:, :k].to(device)
        rows = {'features': gather_points(feature_fn(points), pick).reshape(B * k, -1),
                'parts': parts.gather(1, pick).reshape(-1),
                'category': category[:, None].expand(B, k).reshape(-1)}
        if dist.is_dist():
            rows = gather_rows(rows)
        out['features'].append(rows['features'].to('cpu', dtype))
        out['parts'].append(rows['parts'].cpu())
        out['category'].append(rows['category'].cpu())
    return tuple(torch.cat(out[k]) for k in ('features', 'parts', 'category'))


def feature_moments(features, chunk=65536):
    """Per-dimension mean and standard deviation (float32, (D,)) of (M, D) features, accumulated
    in float64 chunk by chunk (no float32 copy of the whole set)."""
    total = torch.zeros(features.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for part in features.split(chunk):
        part = part.double()
        total += part.sum(dim=0)
        squares += part.square().sum(dim=0)
    mean = total / len(features)
    var = (squares / len(features) - mean.square()).clamp_min(0)
    return mean.float(), var.sqrt().clamp_min(1e-6).float()


def fit_linear_probe(features, parts, category, category_of_part, device='cpu', epochs=10, batch_size=1024,
                     lr=1e-3, weight_decay=1e-4, seed=0):
    """Train ``nn.Linear(D, P)`` on (M, D) features with part labels (M,) and categories (M,):
    Adam, cosine-annealed over ``epochs`` passes of shuffled mini-batches, cross-entropy over the
    category's parts (``category_of_part`` (P,)). Returns the layer on ``device``, in eval mode,
    with the feature standardisation folded in (it takes raw features)."""
    device = torch.device(device)
    table = torch.as_tensor(category_of_part, dtype=torch.long, device=device)
    mean, std = (t.to(device) for t in feature_moments(features))
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probe = nn.Linear(features.shape[1], table.numel()).to(device)
    optimizer = torch.optim.Adam(probe.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * math.ceil(len(features) / batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(steps, 1))
    # float32 with gradients even when called from an evaluation (no_grad, autocast)
    with torch.enable_grad(), torch.autocast(device.type, enabled=False):
        for _ in range(epochs):
            for rows in torch.randperm(len(features), generator=generator).split(batch_size):
                x = (features[rows].to(device).float() - mean) / std
                allowed = category_part_mask(category[rows].to(device), table)
                logits = probe(x).masked_fill(~allowed, float('-inf'))
                loss = F.cross_entropy(logits, parts[rows].to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
    with torch.no_grad():
        probe.weight.div_(std)
        probe.bias.sub_(probe.weight @ mean)
    return probe.eval()


@torch.no_grad()
def evaluate_probe(feature_fn, probe, loader, device, category_of_part, names=None):
    """Score ``probe(feature_fn(points))`` on every point of every shape of ``loader``:
    ``utils.seg_metrics.summarize``'s dict (instance / class mIoU, point accuracy, per category)."""
    meter = PartSegMeter(category_of_part, names)
    seen = 0
    for batch in loader:
        points, category, parts, index = split_batch(batch, device)
        if index is None:
            if dist.is_dist():
                raise ValueError('evaluate_probe under DDP needs the dataset indices as the 4th batch entry')
            index = torch.arange(seen, seen + len(points), device=device)
        seen += len(points)
        meter.update(probe(feature_fn(points).float()), parts, category, index)
    return meter.gather().compute()


def dense_probe(feature_fn, train_loader, test_loader, device, category_of_part, names=None,
                points_per_shape=32, seed=0, **fit_kwargs):
    """Sample train features, fit the linear probe, evaluate on the test loader. Returns the
    metrics of ``evaluate_probe`` plus ``train_points`` and ``feature_dim``; ``fit_kwargs`` go
    to ``fit_linear_probe`` (epochs, batch_size, lr, weight_decay)."""
    features, parts, category = sample_point_features(feature_fn, train_loader, device, points_per_shape, seed)
    probe = fit_linear_probe(features, parts, category, category_of_part, device, seed=seed, **fit_kwargs)
    metrics = evaluate_probe(feature_fn, probe, test_loader, device, category_of_part, names)
    return {**metrics, 'train_points': len(features), 'feature_dim': features.shape[1]}
