"""Part segmentation on ShapeNetPart (method.md section 3) on the one training loop.

``trainpartseg.py`` turns its flags into a config of the main schema (``seg_config``) and a
``RunContext``, then ``run`` picks the task by ``ctx.mode``:

* ``partseg`` — ``PartSegTask`` on ``tools.trainer.Trainer``: the encoder of ``ctx.ckpts``
  (pre-training checkpoints, ours / Point-MAE's / the released MaskClu ones, through
  ``PartSegmentation.load_encoder``; none: from scratch), AdamW with the cosine schedule and
  warm-up stepped once per batch, the isotropic ``ScaleShift`` augmentation, NLL over all
  points, and every ``ctx.val_freq`` epochs the test split's metrics (``evaluate_split``):
  ``instance_miou``, ``class_miou``, ``point_acc`` and ``iou_<Category>`` per category, in
  percent, each test shape counted once under DDP. ``ckpt-best.pth`` follows ``instance_miou``.
* ``partseg_test`` — ``PartSegTestTask``: a trained segmentation checkpoint on the test split,
  a single pass and, with ``num_votes`` V > 0, the mean log-probabilities of V passes over
  random isotropic scalings of each shape (``vote_scales``), reported separately.
* ``dense_probe`` — ``DenseProbeTask``: ``tools.dense_probe`` on the frozen encoder of
  ``ctx.ckpts`` (per-point features of ``model.feature_blocks``, propagated).

Shapes: B shapes, N points, P = 50 parts, V votes.
"""
import torch

from datasets import build_dataloader, check_dataset_config, unpack_batch
from datasets.shapenetpart_labels import CATEGORIES, CATEGORY_OF_PART
from models import build_model
from models.features import load_encoder
from models.partseg import nll_loss
from tools.classifier_checkpoint import model_config_for
from tools.config_check import validate_config
from tools.dense_probe import dense_probe
from tools.trainer import Task, Trainer
from utils.checkpoint import CheckpointError, load_checkpoint
from utils.seg_metrics import PartSegMeter, format_table
from utils.transforms import ScaleShift, build_transforms

TABLE = torch.as_tensor(CATEGORY_OF_PART, dtype=torch.long)
HEAD_KEY = 'convs3.weight'   # the last layer of the segmentation head: only segmentation checkpoints have it
VOTE_SCALE = (ScaleShift.CONFIG_KEYS['scale_low'], ScaleShift.CONFIG_KEYS['scale_high'])


def seg_config(*, learning_rate, weight_decay, epoch, warmup_epoch, batch_size, npoint, model, dataset,
               amp='auto', log_freq=20, ckpt_save_freq=50):
    """The trainer config (main.py's schema, validated) of trainpartseg.py's settings: AdamW
    (``learning_rate``, ``weight_decay``), CosLR over ``epoch`` epochs with ``warmup_epoch``
    warm-up epochs, batch ``batch_size`` (global), ``npoint`` points, ``ScaleShift`` augmentation,
    no gradient clipping, train = ``trainval`` and test = ``test`` of the ShapeNetPart ``dataset``
    entry, best checkpoint by ``instance_miou``."""
    entry = {k: v for k, v in check_dataset_config(dataset, 'dataset').items() if k not in ('subset', 'npoints')}
    config = {
        'optimizer': {'type': 'AdamW', 'kwargs': {'lr': learning_rate, 'weight_decay': weight_decay}},
        'scheduler': {'type': 'CosLR', 'kwargs': {'epochs': epoch, 'initial_epochs': warmup_epoch}},
        'dataset': {'train': {**entry, 'subset': 'trainval', 'npoints': npoint},
                    'test': {**entry, 'subset': 'test', 'npoints': npoint}},
        'model': dict(model), 'npoints': npoint, 'total_bs': batch_size, 'max_epoch': epoch,
        'step_per_update': 1, 'grad_norm_clip': None, 'consider_metric': 'instance_miou',
        'train_transforms': [{'NAME': 'ScaleShift'}], 'amp': amp, 'log_freq': log_freq,
        'ckpt_save_freq': ckpt_save_freq,
    }
    return validate_config(config, 'trainpartseg.py settings')


def vote_scales(num_items, votes, seed):
    """(num_items, V) isotropic scales U(0.8, 1.25) (``ScaleShift``'s range), one row per dataset
    item: drawn once from ``seed``, so a shape's votes do not depend on the rank that sees it."""
    low, high = VOTE_SCALE
    return low + (high - low) * torch.rand(num_items, votes, generator=torch.Generator().manual_seed(seed))


def evaluate_split(model, loader, device, scales=None):
    """Scores every shape of ``loader`` (an evaluation ``EpochLoader``) -> ``{'single': meter}``
    plus ``'vote'`` when ``scales`` (num_items, V) is given (mean log-probabilities over the V
    scaled copies). The meters are gathered over the ranks (each dataset item once)."""
    meters = {'single': PartSegMeter(TABLE, CATEGORIES)}
    if scales is not None:
        meters['vote'] = PartSegMeter(TABLE, CATEGORIES)
        scales = scales.to(device)
    for batch in with_indices(loader):
        points, category, parts, index = (t.to(device, non_blocking=True) for t in batch)
        meters['single'].update(model(points, category), parts, category, index)
        if scales is not None:
            votes = sum(model(points * scale[:, None, None], category) for scale in scales[index].unbind(1))
            meters['vote'].update(votes / scales.shape[1], parts, category, index)
    return {name: meter.gather() for name, meter in meters.items()}


def headline(metrics, prefix='', per_category=True):
    """``summarize``'s dict -> flat metrics in percent: instance_miou, class_miou, point_acc and
    (``per_category``) iou_<Category> for the categories with shapes, names prefixed by ``prefix``."""
    out = {f'{prefix}instance_miou': 100 * metrics['instance_miou'], f'{prefix}class_miou': 100 * metrics['class_miou'],
           f'{prefix}point_acc': 100 * metrics['accuracy']}
    if per_category:
        out.update({f'{prefix}iou_{name}': 100 * v for name, v in metrics['per_category'].items() if v is not None})
    return out


def build_test_loader(ctx, config):
    return build_dataloader(config.dataset.test, train=False, total_bs=config.total_bs, seed=ctx.seed,
                            num_workers=ctx.num_workers, pin_memory=ctx.pin_memory, where='dataset.test')


class PartSegTask(Task):
    """Fine-tuning (or training from scratch) of ``PartSegmentation``; see the module docstring."""
    log_names = ('train_acc',)
    best_metric = 'instance_miou'

    def __init__(self, ctx, config, logger):
        self.ctx, self.config, self.logger = ctx, config, logger
        self.train_loader = build_dataloader(config.dataset.train, train=True, total_bs=config.total_bs,
                                             seed=ctx.seed, num_workers=ctx.num_workers, pin_memory=ctx.pin_memory,
                                             where='dataset.train')
        self.test_loader = build_test_loader(ctx, config)
        source = ctx.ckpts or (ctx.path('ckpt-last.pth') if ctx.resume else None)
        ckpt = load_checkpoint(source) if source else None   # keys left ``auto`` are read from it
        self.model = build_model(model_config_for(config.model.to_dict(), ckpt, source, logger))
        if ctx.ckpts and not ctx.resume:   # a resumed run takes everything from ckpt-last.pth
            self.model.load_encoder(ckpt, logger, source=source)
        elif not ctx.resume:
            logger.info('part segmentation from scratch (no --ckpts)')
        self.model.to(ctx.device)
        self.transforms = build_transforms(config.train_transforms)
        self.evaluations = [(ctx.val_freq, self.validate)]

    def prepare(self, batch):
        points, category, parts = (t.to(self.ctx.device, non_blocking=True)
                                   for t in unpack_batch(batch, self.train_loader.kind))
        return self.transforms(points), category, parts

    def train_step(self, net, inputs):
        points, category, parts = inputs
        log_probs = net(points, category)
        accuracy = (log_probs.detach().argmax(dim=-1) == parts).float().mean()
        return nll_loss(log_probs, parts), {'train_acc': accuracy}

    def validate(self, epoch):
        """The test split's metrics (percent) after ``epoch`` epochs; the table goes to the log."""
        metrics = evaluate_split(self.model, self.test_loader, self.ctx.device)['single'].compute()
        for line in format_table(metrics):
            self.logger.info(line)
        return headline(metrics)


def segmentation_model(ckpt, config, path, logger):
    """``PartSegmentation`` with every weight of the segmentation checkpoint ``ckpt`` (loaded from
    ``path``): built from the checkpoint's own model section when it has one (ours), else from
    ``config.model``. A checkpoint without the segmentation head is a ``CheckpointError``."""
    state = ckpt.get('base_model', ckpt.get('model', ckpt.get('model_state_dict'))) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not any(k.endswith(HEAD_KEY) for k in state):
        raise CheckpointError(f'{path} is not a part-segmentation checkpoint (no {HEAD_KEY} of the segmentation '
                              f'head); --test takes one written by trainpartseg.py (ckpt-best.pth), a '
                              f'pre-trained checkpoint is fine-tuned with --ckpts and no --test')
    saved = (ckpt.get('config') or {}).get('model')
    model_cfg = saved if isinstance(saved, dict) and saved.get('NAME') == 'PartSegmentation' else config.model.to_dict()
    model = build_model(model_config_for(model_cfg, ckpt, path, logger))
    report = model.load_encoder(ckpt, logger)
    if report.missing:
        raise CheckpointError(f'{path} leaves {len(report.missing)} weights of the segmentation model unloaded '
                              f'(e.g. {report.missing[0]}): it does not match the model section')
    return model


class PartSegTestTask(Task):
    """``--test``: a segmentation checkpoint on the test split, single pass and V-vote."""

    def __init__(self, ctx, config, logger, num_votes=0):
        self.ctx, self.config, self.logger, self.num_votes = ctx, config, logger, num_votes
        self.model = segmentation_model(load_checkpoint(ctx.ckpts), config, ctx.ckpts, logger).to(ctx.device)
        self.test_loader = build_test_loader(ctx, config)

    def evaluate_only(self):
        scales = vote_scales(len(self.test_loader.dataset), self.num_votes, self.ctx.seed) if self.num_votes else None
        results = {name: meter.compute() for name, meter in
                   evaluate_split(self.model, self.test_loader, self.ctx.device, scales).items()}
        out = {}
        for name, metrics in results.items():
            title = 'single pass' if name == 'single' else f'{self.num_votes} votes (random scalings)'
            self.logger.info('part segmentation, test split, %s:', title)
            for line in format_table(metrics):
                self.logger.info(line)
            prefix = '' if name == 'single' else 'vote_'
            out.update(headline(metrics, prefix, per_category=False))
            out[f'{prefix}per_category'] = {k: None if v is None else 100 * v
                                            for k, v in metrics['per_category'].items()}
        out.update(shapes=results['single']['shapes'], shapes_per_category=results['single']['shapes_per_category'],
                   num_votes=self.num_votes)
        return out


class DenseProbeTask(Task):
    """``--svm``: the dense frozen probe (``tools.dense_probe``) of the encoder of ``ctx.ckpts``:
    features after ``model.feature_blocks`` propagated to the points, G = ``model.num_group``."""

    def __init__(self, ctx, config, logger):
        self.ctx, self.config, self.logger = ctx, config, logger
        self.model = load_encoder(ctx.ckpts, num_group=config.model.num_group, group_size=config.model.group_size,
                                  device=ctx.device, logger=logger)
        self.blocks = tuple(config.model.feature_blocks)
        loaders = {split: build_dataloader(config.dataset[key], train=False, total_bs=config.total_bs,
                                           seed=ctx.seed, num_workers=ctx.num_workers, pin_memory=ctx.pin_memory,
                                           where=f'dataset.{key}')
                   for split, key in (('train', 'train'), ('test', 'test'))}
        self.loaders = loaders

    def feature_fn(self, points):
        return self.model(points, point_blocks=self.blocks).point_features

    def evaluate_only(self):
        train, test = (with_indices(self.loaders[s]) for s in ('train', 'test'))
        metrics = dense_probe(self.feature_fn, train, test, self.ctx.device, TABLE, CATEGORIES, seed=self.ctx.seed)
        for line in format_table(metrics):
            self.logger.info(line)
        return {**headline(metrics, 'probe_'), 'train_points': metrics['train_points'],
                'feature_dim': metrics['feature_dim'], 'shapes': metrics['shapes']}


def with_indices(loader):
    """The batches of an evaluation ``EpochLoader`` with their dataset indices as a 4th entry."""
    indices = loader.sample_indices()
    seen = 0
    for batch in loader:
        points, category, parts = unpack_batch(batch, loader.kind)
        yield points, category, parts, indices[seen:seen + len(points)]
        seen += len(points)


def run(ctx, config, logger, num_votes=0):
    """trainpartseg.py's runner: train (``partseg``), ``partseg_test`` or ``dense_probe`` by ``ctx.mode``;
    returns the results (results.json's content for training, the metrics otherwise)."""
    if ctx.mode == 'partseg':
        return Trainer(PartSegTask(ctx, config, logger), ctx, config, logger).fit()
    task = PartSegTestTask(ctx, config, logger, num_votes) if ctx.mode == 'partseg_test' \
        else DenseProbeTask(ctx, config, logger)
    return Trainer(task, ctx, config, logger).evaluate()
