"""Classification data path, metrics and the voting test (method.md section 3, Point-MAE's protocol).

* Training clouds (``train_points``): FPS to ``fps_points`` (1200 for ModelNet40 1k; from
  point 0), then a random ``npoints`` (1024) of them per cloud, then the training
  augmentation (``train_transforms``: scale-and-translate, optional rotation about the up axis).
  With ``fps_points`` equal to ``npoints`` (ScanObjectNN: 2048 of 2048) the cloud is used whole.
* Single-pass test (``test_points``): FPS to ``npoints`` from point 0, no augmentation.
* Voting (``VotingTest``): each test cloud is brought to ``fps_points`` by FPS ONCE and cached
  on the device for the run; a vote is a random ``npoints`` of those with the training
  augmentation; the ``votes`` logit vectors are averaged and arg-maxed. The whole test is
  repeated ``vote_repeats`` times (repeat r draws from a generator seeded ``seed + r``) and
  reported as mean ± std (sample std, n - 1) and max over the repeats, each labelled, beside
  the single-pass accuracy.
* Metrics (``accuracy_metrics``): overall accuracy and mean class accuracy (mean over the
  classes present in the test set of their recall), in percent.

Config: the optional top-level ``classification`` section (``CLASSIFICATION_KEYS``).
Shapes: B clouds, N points, P = ``fps_points``, K classes, V votes, R repeats.
"""
import contextlib

import torch

from datasets import unpack_batch
from tools.suite_stats import describe as summary  # noqa: F401  (the one mean ± sample std, max, n)
from utils.config import ConfigError, check_keys
from utils.transforms import fps_downsample

CLASSIFICATION_KEYS = {
    'fps_points': None,     # FPS to this many before the random npoints (train, votes); None: = npoints
    'votes': 10,            # V: clouds per test shape in the voting test
    'vote_repeats': 10,     # R: repeats of the whole voting test (seeds seed .. seed + R - 1)
}


def classification_config(config, where='classification'):
    """The checked ``classification`` section of a config (defaults filled; ``fps_points``
    resolved against the config's ``npoints``)."""
    cfg = check_keys(dict(config.get('classification') or {}), CLASSIFICATION_KEYS, where)
    npoints = config.get('npoints', 1024)
    cfg['fps_points'] = cfg.get('fps_points') or npoints
    for key, low in (('fps_points', npoints), ('votes', 1), ('vote_repeats', 1)):
        if not isinstance(cfg[key], int) or cfg[key] < low:
            raise ConfigError(f"{where}.{key}: {cfg[key]!r}; expected an integer >= {low}")
    return cfg


# ----------------------------------------------------------------------------- data path

def random_subset(points, npoints, generator=None):
    """A random ``npoints`` of each cloud's points, drawn per cloud: (B, P, 3) -> (B, npoints, 3).
    Unchanged when P == npoints."""
    B, P, _ = points.shape
    if P == npoints:
        return points
    device = generator.device if generator is not None else points.device
    order = torch.rand(B, P, generator=generator, device=device).argsort(dim=1)[:, :npoints].to(points.device)
    return torch.gather(points, 1, order.unsqueeze(-1).expand(-1, -1, points.shape[-1]))


def train_points(points, npoints, fps_points, transforms, generator=None):
    """Training clouds: (B, N, 3) -> FPS to P = min(fps_points, N) -> random npoints -> augmented
    (B, npoints, 3). A cloud with fewer than ``npoints`` points is a ValueError."""
    check_cloud_size(points, npoints)
    return transforms(random_subset(fps_downsample(points, fps_points), npoints, generator), generator)


def test_points(points, npoints):
    """Single-pass test clouds: (B, N, 3) -> FPS from point 0 to (B, npoints, 3)."""
    check_cloud_size(points, npoints)
    return fps_downsample(points, npoints)


def check_cloud_size(points, npoints):
    if points.shape[1] < npoints:
        raise ValueError(f"clouds hold {points.shape[1]} points, fewer than npoints={npoints}; "
                         f"lower npoints in the config")


# ----------------------------------------------------------------------------- metrics

def accuracy_metrics(pred, label, num_classes, prefix=''):
    """pred, label (n,) int64 -> {'<prefix>acc', '<prefix>mean_class_acc'} in percent (floats)."""
    if pred.numel() == 0:
        raise ValueError('accuracy of an empty set')
    correct = (pred == label).float()
    per_class_total = torch.bincount(label, minlength=num_classes).float()
    per_class_correct = torch.bincount(label, weights=correct, minlength=num_classes)
    present = per_class_total > 0
    mean_class = (per_class_correct[present] / per_class_total[present]).mean()
    return {f'{prefix}acc': 100.0 * correct.mean().item(), f'{prefix}mean_class_acc': 100.0 * mean_class.item()}


# ----------------------------------------------------------------------------- evaluation

@torch.no_grad()
def predict(model, loader, device, npoints, autocast=contextlib.nullcontext):
    """Single-pass logits of a loader: (logits (n, K) float32, labels (n,)) in loader order on ``device``."""
    logits, labels = [], []
    for batch in loader:
        points, label = unpack_batch(batch)[:2]
        with autocast():
            logits.append(model(test_points(points.to(device, non_blocking=True), npoints)).float())
        labels.append(label.to(device, non_blocking=True))
    return torch.cat(logits), torch.cat(labels)


@torch.no_grad()
def vote_logits(model, clouds, npoints, votes, transforms, generator=None, batch_size=32,
                autocast=contextlib.nullcontext):
    """Mean logits over ``votes`` augmented random subsets of cached clouds (P, already FPS'd):
    clouds (n, P, 3) -> (n, K) float32. Each forward takes ``batch_size`` clouds times V votes."""
    out = []
    for start in range(0, len(clouds), batch_size):
        chunk = clouds[start:start + batch_size]
        B = chunk.shape[0]
        repeated = chunk.unsqueeze(0).expand(votes, -1, -1, -1).reshape(votes * B, *chunk.shape[1:])
        views = transforms(random_subset(repeated, npoints, generator), generator)
        with autocast():
            logits = model(views).float()
        out.append(logits.view(votes, B, -1).mean(dim=0))
    return torch.cat(out)


class VotingTest:
    """The voting test of one test loader, its FPS computed once per cloud and cached for the run.

    ``__call__(model, seed)`` -> ``(metrics, per_repeat)``: metrics ``vote_acc_mean``,
    ``vote_acc_std``, ``vote_acc_max``, ``vote_mean_class_acc_mean`` / ``_std`` / ``_max`` and
    ``vote_repeats``; per_repeat a list of ``{'acc', 'mean_class_acc'}``. ``gather`` (optional)
    maps this rank's ``(logits (n_local, K), labels (n_local,))`` to the whole test set's (DDP:
    by dataset index, each test shape counted once).
    """

    def __init__(self, loader, device, *, npoints, fps_points, votes, repeats, transforms, num_classes,
                 batch_size=32, autocast=contextlib.nullcontext, gather=None):
        self.loader, self.device = loader, device
        self.npoints, self.fps_points, self.votes, self.repeats = npoints, fps_points, votes, repeats
        self.transforms, self.num_classes, self.batch_size = transforms, num_classes, batch_size
        self.autocast, self.gather = autocast, gather
        self.clouds = self.labels = None
        self.fps_calls = 0

    def cache(self):
        """(clouds (n, P, 3), labels (n,)) on the device: FPS to P once per test cloud, on first use."""
        if self.clouds is None:
            clouds, labels = [], []
            for batch in self.loader:
                points, label = unpack_batch(batch)[:2]
                points = points.to(self.device, non_blocking=True)
                check_cloud_size(points, self.npoints)
                clouds.append(fps_downsample(points, self.fps_points))
                labels.append(label.to(self.device, non_blocking=True))
                self.fps_calls += 1
            self.clouds, self.labels = torch.cat(clouds), torch.cat(labels)
        return self.clouds, self.labels

    def __call__(self, model, seed=0):
        clouds, labels = self.cache()
        per_repeat = []
        for r in range(self.repeats):
            generator = torch.Generator(self.device).manual_seed(seed + r)
            logits = vote_logits(model, clouds, self.npoints, self.votes, self.transforms, generator,
                                 self.batch_size, self.autocast)
            all_logits, all_labels = self.gather(logits, labels) if self.gather else (logits, labels)
            per_repeat.append(accuracy_metrics(all_logits.argmax(-1), all_labels, self.num_classes))
        return vote_metrics(per_repeat), per_repeat


def vote_metrics(per_repeat):
    """Labelled statistics of R repeats: ``vote_{acc,mean_class_acc}_{mean,std,max}``, ``vote_repeats``."""
    out = {}
    for key in ('acc', 'mean_class_acc'):
        stats = summary([m[key] for m in per_repeat])
        out.update({f'vote_{key}_mean': stats['mean'], f'vote_{key}_std': stats['std'],
                    f'vote_{key}_max': stats['max']})
    out['vote_repeats'] = len(per_repeat)
    return out


def format_vote(metrics, single=None):
    """One log line: 'voting (R repeats of V votes): acc mean ± std, max; mean class acc ...; single pass ...'."""
    text = (f"voting over {metrics['vote_repeats']} repeats: acc {metrics['vote_acc_mean']:.2f} ± "
            f"{metrics['vote_acc_std']:.2f} (mean ± std), {metrics['vote_acc_max']:.2f} (max of repeats); "
            f"mean class acc {metrics['vote_mean_class_acc_mean']:.2f} ± {metrics['vote_mean_class_acc_std']:.2f} "
            f"(mean ± std), {metrics['vote_mean_class_acc_max']:.2f} (max)")
    if single is not None:
        text += f"; single pass (no voting): acc {single['acc']:.2f}, mean class acc {single['mean_class_acc']:.2f}"
    return text
