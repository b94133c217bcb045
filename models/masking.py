"""Patch masks with a fixed count per sample, as index tensors (no data-dependent shapes)."""
import torch


def num_masked(ratio, num_group):
    """M = floor(ratio * G) (Point-MAE's ``int(ratio * G)``)."""
    return int(ratio * num_group)


def _uniform(shape, generator, device):
    """U(0, 1) noise of ``shape`` from ``generator`` (drawn on its device), moved to ``device``."""
    gen_device = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=gen_device).to(device)


def random_mask(center, ratio, generator=None):
    """``rand`` mask: per sample exactly M = floor(ratio * G) patches chosen uniformly.

    center (B, G, 3) -> vis_idx (B, V), mask_idx (B, M) long, each sorted ascending.
    """
    B, G, _ = center.shape
    order = _uniform((B, G), generator, center.device).argsort(dim=1)
    return _split(order, num_masked(ratio, G))


def block_mask(center, ratio, generator=None):
    """``block`` mask: the M = floor(ratio * G) centers nearest a uniformly chosen center.

    center (B, G, 3) -> vis_idx (B, V), mask_idx (B, M) long, each sorted ascending.
    """
    B, G, _ = center.shape
    seed = (_uniform((B,), generator, center.device) * G).long().clamp_(max=G - 1)
    anchor = torch.gather(center, 1, seed.view(B, 1, 1).expand(B, 1, 3))
    order = (center - anchor).square().sum(-1).argsort(dim=1, stable=True)
    return _split(order, num_masked(ratio, G))


def _split(order, m):
    """order (B, G) -> (sorted last G - m, sorted first m)."""
    return order[:, m:].sort(dim=1).values, order[:, :m].sort(dim=1).values


MASKS = {'rand': random_mask, 'block': block_mask}


def make_mask(center, ratio, kind, generator=None):
    """Dispatch on ``kind`` ('rand' | 'block'): center (B, G, 3) -> vis_idx (B, V), mask_idx (B, M)."""
    return MASKS[kind](center, ratio, generator)
