"""Part-segmentation metrics (the ShapeNetPart protocol of PointNet++ / Point-MAE), vectorised.

* The prediction of a shape is restricted to its category's parts: the argmax runs over those
  part scores only (``restricted_prediction``).
* Per-shape IoU (``shape_ious``): for each part of the shape's category, |pred ∩ truth| /
  |pred ∪ truth| over the shape's points, with IoU = 1 for a part absent from both prediction
  and truth; the shape's IoU is the mean over its category's parts.
* Instance mIoU: mean over shapes; per-category IoU: mean over the shapes of a category; class
  mIoU: mean over the categories that have test shapes; point accuracy: correct points / points.

``PartSegMeter`` accumulates one row per shape tagged by its dataset index, so that under DDP
(where ``DistributedSampler`` pads ranks with duplicate shapes) ``gather()`` followed by
``compute()`` counts every shape exactly once. The category-of-part table is an argument
(``datasets.shapenetpart_labels.CATEGORY_OF_PART`` for ShapeNetPart): this module does not
depend on datasets/. Shapes: B shapes, N points, P parts, K categories.
"""
import torch

from utils import dist
from utils.dist import first_occurrences, gather_by_index

STATE_KEYS = ('index', 'category', 'iou', 'correct', 'points')


def category_part_mask(category, category_of_part):
    """category (B,) int64, category_of_part (P,) int64 -> (B, P) bool: the parts each shape may take."""
    return category_of_part.to(category.device)[None, :] == category[:, None]


def restricted_prediction(scores, category, category_of_part):
    """scores (B, N, P) (logits or log-probabilities) -> pred (B, N) int64, the argmax over the
    parts of each shape's category only."""
    allowed = category_part_mask(category, category_of_part)[:, None, :]
    return scores.masked_fill(~allowed, float('-inf')).argmax(dim=-1)


def shape_ious(pred, parts, category, category_of_part):
    """pred, parts (B, N) int64 global part ids, category (B,) -> IoU per shape (B,) float32.

    Mean over the category's parts of |pred = p and truth = p| / |pred = p or truth = p|, a part
    absent from both counting 1. Computed for all shapes at once with scatter-adds into (B, P)
    counts (no host sync, no loop over shapes).
    """
    B, N = parts.shape
    P = category_of_part.numel()
    offsets = P * torch.arange(B, device=parts.device)[:, None]

    def flat(labels):
        return (labels + offsets).reshape(-1)

    ones = torch.ones(B * N, device=parts.device)
    pred_count = ones.new_zeros(B * P).index_add_(0, flat(pred), ones)
    true_count = ones.new_zeros(B * P).index_add_(0, flat(parts), ones)
    inter = ones.new_zeros(B * P).index_add_(0, flat(parts), (pred == parts).reshape(-1).float())
    union = pred_count + true_count - inter
    iou = torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union)).view(B, P)
    mask = category_part_mask(category, category_of_part)
    return (iou * mask).sum(dim=1) / mask.sum(dim=1)


def summarize(state, num_categories, names=None):
    """Metrics of an accumulated state (``PartSegMeter.state()``, possibly gathered over ranks):
    each dataset index counts once (its first row). Returns a dict with ``instance_miou``,
    ``class_miou``, ``accuracy`` (fractions in [0, 1]; NaN without shapes), ``shapes`` (distinct),
    ``per_category`` {name: mean IoU, None for a category without shapes} and
    ``shapes_per_category`` {name: count}; ``class_miou`` averages the categories with shapes.
    """
    names = list(names) if names is not None else [str(k) for k in range(num_categories)]
    if len(names) != num_categories:
        raise ValueError(f'{len(names)} category names for {num_categories} categories')
    state = {k: state[k].detach().cpu() for k in STATE_KEYS}
    keep = first_occurrences(state['index'])
    category, iou = state['category'][keep], state['iou'][keep].double()
    count = torch.bincount(category, minlength=num_categories)
    per_category = torch.zeros(num_categories, dtype=torch.float64).index_add_(0, category, iou) / count.clamp_min(1)
    present = count > 0
    nan = float('nan')
    return {
        'instance_miou': iou.mean().item() if len(keep) else nan,
        'class_miou': per_category[present].mean().item() if present.any() else nan,
        'accuracy': (state['correct'][keep].sum().double() / state['points'][keep].sum()).item() if len(keep) else nan,
        'shapes': len(keep),
        'per_category': {n: (v.item() if p else None) for n, v, p in zip(names, per_category, present)},
        'shapes_per_category': {n: int(c) for n, c in zip(names, count)},
    }


def format_table(metrics):
    """Lines of the per-category table of ``summarize``'s result (IoUs in percent)."""
    lines = [f"{'category':<14}{'shapes':>8}{'mIoU':>8}"]
    for name, value in metrics['per_category'].items():
        shown = f'{100 * value:8.2f}' if value is not None else f"{'-':>8}"
        lines.append(f"{name:<14}{metrics['shapes_per_category'][name]:>8}{shown}")
    lines.append(f"instance mIoU {100 * metrics['instance_miou']:.2f}  class mIoU {100 * metrics['class_miou']:.2f}  "
                 f"point accuracy {100 * metrics['accuracy']:.2f}  ({metrics['shapes']} shapes)")
    return lines


class PartSegMeter:
    """Accumulates per-shape results over an evaluation; see the module docstring.

    ``update(scores (B, N, P), parts (B, N), category (B,), index (B,))`` restricts the
    prediction, computes the shapes' IoUs and keeps (index, category, iou, correct, points)
    on the scores' device (no host sync). ``gather()`` concatenates the rows of every rank
    (any per-rank counts); ``compute()`` -> ``summarize``'s dict. ``state()`` exposes the rows
    for callers that gather themselves.
    """

    def __init__(self, category_of_part, names=None):
        self.category_of_part = torch.as_tensor(category_of_part, dtype=torch.long)
        self.num_categories = int(self.category_of_part.max()) + 1
        self.names = names
        self.rows = {k: [] for k in STATE_KEYS}

    def update(self, scores, parts, category, index):
        """Add a batch; returns its per-shape IoUs (B,)."""
        table = self.category_of_part.to(scores.device)
        pred = restricted_prediction(scores, category, table)
        iou = shape_ious(pred, parts, category, table)
        new = {'index': index, 'category': category, 'iou': iou,
               'correct': (pred == parts).sum(dim=1), 'points': torch.full_like(category, parts.shape[1])}
        for key, value in new.items():
            self.rows[key].append(value.detach().to(scores.device))
        return iou

    def state(self):
        """{index, category, correct, points: (M,) int64; iou: (M,) float32} of the rows so far."""
        if not self.rows['index']:
            empty = torch.zeros(0, dtype=torch.long)
            return {k: empty.float() if k == 'iou' else empty for k in STATE_KEYS}
        return {k: torch.cat(v).long() if k != 'iou' else torch.cat(v).float() for k, v in self.rows.items()}

    def gather(self):
        """Replace the rows by those of every rank, each dataset index once
        (``utils.dist.gather_by_index``; identity without DDP); returns self."""
        if dist.is_dist():
            state = self.state()
            index, values = gather_by_index(state.pop('index'), state)
            self.rows = {'index': [index], **{k: [v] for k, v in values.items()}}
        return self

    def compute(self):
        return summarize(self.state(), self.num_categories, self.names)
