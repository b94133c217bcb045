"""Classification downstream on the one trainer: fine-tuning, the voting test and few-shot.

    python main.py --config cfgs/finetune_modelnet.yaml --finetune_model --ckpts <pre-trained.pth> --exp_name X
    python main.py --config cfgs/finetune_modelnet.yaml --scratch_model --exp_name X
    python main.py --test --config cfgs/finetune_modelnet.yaml --ckpts <fine-tuned.pth> --exp_name X
    python main.py --way 5 --shot 10 --fold 0 --config cfgs/fewshot.yaml --finetune_model --ckpts X  (--fold -1: all)

``FinetuneTask`` is a ``tools.trainer.Task``: the training step is cross-entropy on the
``PointTransformer``'s logits after the training data path of ``tools.classification``
(FPS to ``fps_points``, a random ``npoints``, ``train_transforms``); evaluations every
``--val_freq`` epochs: the single-pass accuracy on the ``val`` split (``acc``, ``mean_class_acc``;
the best epoch, ``ckpt-best.pth``, follows ``consider_metric``, ``acc`` by default — chosen on
the test split as in the usual protocol, and said so beside the last epoch's) and with ``--vote``
one voting pass (``vote_acc_mean`` ...; the FPS of every test cloud cached for the run). Under
DDP predictions are gathered by dataset index (``utils.dist.gather_by_index``), so every test
shape counts exactly once. ``--test`` is ``evaluate_only``: the single pass and the voting test
repeated ``classification.vote_repeats`` times (mean ± std and max, labelled).

Few-shot: the fold's files are read from the ``dataset`` entries with ``way``/``shot``/``fold``
set and ``model.cls_dim = way``; a fold's result is its best test accuracy. ``--fold -1`` trains
the ten folds one after another in ``<experiment>/fold-<f>/`` and writes the per-fold table
and mean ± std (sample std) to the log and ``<experiment>/results.json``; a fold that fails is
listed with its error, not dropped silently, and the statistics say over how many folds they run.
"""
import copy
import dataclasses
import json
import os
import traceback

import torch
import torch.nn.functional as F

from datasets import build_dataloader, unpack_batch
from datasets.files import DatasetError
from models import build_model
from tools.classification import (VotingTest, accuracy_metrics, classification_config, format_vote, predict, summary,
                                  train_points)
from tools.classifier_checkpoint import load_for_finetune, load_for_test, model_config_for
from tools.engine import NonFiniteLossError, autocast, amp_dtype
from tools.trainer import Task, Trainer
from utils.checkpoint import CheckpointError, load_checkpoint
from utils.config import ConfigDict, ConfigError
from utils.dist import gather_by_index
from utils.io import write_json
from utils.transforms import build_transforms

FOLDS = 10
FOLD_ERRORS = (ConfigError, DatasetError, CheckpointError, NonFiniteLossError, RuntimeError, ValueError)


class FinetuneTask(Task):
    """Fine-tuning (or, without a train split, the ``--test`` evaluation) of a ``PointTransformer``."""
    best_metric = {'name': 'acc', 'mode': 'max'}
    log_names = ('train_acc',)

    def __init__(self, ctx, config, logger):
        self.ctx, self.config, self.logger = ctx, config, logger
        self.cls_cfg = classification_config(config)
        self.npoints = config.npoints
        self.model = build_classifier(ctx, config, logger).to(ctx.device)
        self.num_classes = self.model.config['cls_dim']
        self.transforms = build_transforms(config.train_transforms)
        self.autocast = lambda: autocast(ctx.device, amp_dtype(config.amp, ctx.device))
        loader_args = dict(total_bs=config.total_bs, seed=ctx.seed, num_workers=ctx.num_workers,
                           pin_memory=ctx.pin_memory)
        training = ctx.mode != 'test'
        if training:
            self.train_loader = build_dataloader(config.dataset.train, train=True, where='dataset.train',
                                                 **loader_args)
        split = 'val' if training else 'test'
        if split not in config.dataset:
            raise ConfigError(f"dataset.{split}: the config has no {split} split to evaluate on "
                              f"(it has {', '.join(config.dataset)})")
        self.eval_loader = build_dataloader(config.dataset[split], train=False, where=f'dataset.{split}',
                                            **loader_args)
        self.eval_index = self.eval_loader.sample_indices()
        self.voting = VotingTest(self.eval_loader, ctx.device, npoints=self.npoints,
                                 fps_points=self.cls_cfg['fps_points'], votes=self.cls_cfg['votes'],
                                 repeats=self.cls_cfg['vote_repeats'] if not training else 1,
                                 transforms=self.transforms, num_classes=self.num_classes,
                                 batch_size=self.eval_loader.batch_size, autocast=self.autocast, gather=self.gather)
        self.evaluations = [(ctx.val_freq, self.validate)] + ([(ctx.val_freq, self.vote)] if ctx.vote else [])
        logger.info('classification: model.type=%s, %d classes, %d points (FPS to %d, then random %d), '
                    'augmentation %s', self.model.config['type'], self.num_classes, self.npoints,
                    self.cls_cfg['fps_points'], self.npoints, self.transforms)

    # ------------------------------------------------------------------ training
    def prepare(self, batch):
        b = unpack_batch(batch, self.train_loader.kind)
        points = train_points(b.points.to(self.ctx.device, non_blocking=True), self.npoints,
                              self.cls_cfg['fps_points'], self.transforms)
        return points, b.label.to(self.ctx.device, non_blocking=True)

    def train_step(self, net, inputs):
        points, label = inputs
        logits = net(points)
        loss = F.cross_entropy(logits.float(), label)
        return loss, {'train_acc': 100.0 * (logits.argmax(-1) == label).float().mean()}

    # ------------------------------------------------------------------ evaluation
    def gather(self, logits, labels):
        """This rank's (logits, labels) in loader order -> every test shape's once (by dataset index)."""
        _, out = gather_by_index(self.eval_index.to(logits.device), {'logits': logits, 'labels': labels})
        return out['logits'], out['labels']

    def single_pass(self):
        logits, labels = self.gather(*predict(self.model, self.eval_loader, self.ctx.device, self.npoints,
                                              self.autocast))
        return accuracy_metrics(logits.argmax(-1), labels, self.num_classes)

    def validate(self, epoch):
        """Single-pass overall and mean class accuracy on the evaluation split (FPS from point 0)."""
        return self.single_pass()

    def vote(self, epoch):
        """One voting pass (seeded ``--seed``): ``vote_acc_mean`` ... over that one repeat."""
        metrics, _ = self.voting(self.model, seed=self.ctx.seed)
        return {k: v for k, v in metrics.items() if not k.endswith(('_std', '_max'))}

    def evaluate_only(self):
        """``--test``: the single pass and the voting test repeated R times (seeds seed..seed+R-1)."""
        single = self.single_pass()
        votes, per_repeat = self.voting(self.model, seed=self.ctx.seed)
        self.logger.info(format_vote(votes, single))
        return {**single, **votes, 'vote_acc_per_repeat': [r['acc'] for r in per_repeat],
                'vote_seeds': [self.ctx.seed + r for r in range(len(per_repeat))], 'votes': self.cls_cfg['votes']}


def build_classifier(ctx, config, logger):
    """The ``PointTransformer`` of ``config.model`` with its weights for the mode: ``--ckpts`` of a
    fine-tuning run (encoder; a fine-tuned head dropped) or of ``--test`` (whole, checked); keys left
    ``auto`` come from that checkpoint (on ``--resume`` from ``ckpt-last.pth``), else the defaults."""
    model_cfg = config.model.to_dict()
    source = ctx.ckpts or (ctx.path('ckpt-last.pth') if ctx.resume else None)
    ckpt = load_checkpoint(source) if source else None
    model = build_model(model_config_for(model_cfg, ckpt, source, logger))
    if ctx.mode == 'test':
        load_for_test(model, ckpt, source, logger)
    elif ctx.ckpts and not ctx.resume:
        load_for_finetune(model, ckpt, source, logger)
    return model


def finetune(ctx, config, logger):
    """One fine-tuning run; returns the trainer's results (best and last epoch), summarised in the log."""
    trainer = Trainer(FinetuneTask(ctx, config, logger), ctx, config, logger)
    results = trainer.fit()
    best, last = results.get('best_epoch'), results.get('last_epoch')
    if best and last:
        rule = results['consider_metric']['name']
        logger.info('best epoch %d: %s=%.2f (chosen on the evaluation split, the usual protocol) | last epoch %d: '
                    '%s=%.2f', best['epoch'], rule, best['metrics'][rule], last['epoch'], rule,
                    last['metrics'].get(rule, float('nan')))
    return results


# ----------------------------------------------------------------------------- few-shot

def fold_config(config, way, shot, fold):
    """``config`` with every dataset entry pointed at ``{way}way_{shot}shot/{fold}.pkl`` and
    ``model.cls_dim = way``."""
    cfg = copy.deepcopy(config.to_dict())
    for entry in cfg['dataset'].values():
        if entry.get('NAME') != 'ModelNetFewShot':
            raise ConfigError(f"few-shot (--way/--shot/--fold) needs ModelNetFewShot dataset entries; "
                              f"got NAME {entry.get('NAME')} (use cfgs/fewshot.yaml)")
        entry.update(way=way, shot=shot, fold=fold)
    cfg['model']['cls_dim'] = way
    return ConfigDict(cfg)


def fold_result(results):
    """A fold's row: its best test accuracy (and epoch) and the last epoch's."""
    best, last = results['best_epoch'], results['last_epoch']
    return {'acc': best['metrics']['acc'], 'best_epoch': best['epoch'],
            'mean_class_acc': best['metrics'].get('mean_class_acc'), 'last_acc': last['metrics'].get('acc')}


def finished_fold(fold_ctx, max_epoch):
    """The results.json of a fold trained to ``max_epoch`` before (on ``--resume``), else None."""
    path = fold_ctx.path('results.json')
    if not (fold_ctx.resume and os.path.isfile(path)):
        return None
    with open(path) as f:
        results = json.load(f)
    last = results.get('last_epoch') or {}
    return results if last.get('epoch') == max_epoch and results.get('best_epoch') else None


def fewshot_table(rows):
    """Log lines: per-fold table, then mean ± std over the folds that finished, and the failures."""
    lines = [f"{'fold':>4} {'best acc':>9} {'epoch':>6} {'last acc':>9}  status"]
    for r in rows:
        if 'error' in r:
            lines.append(f"{r['fold']:>4} {'-':>9} {'-':>6} {'-':>9}  FAILED: {r['error']}")
        else:
            lines.append(f"{r['fold']:>4} {r['acc']:>9.2f} {r['best_epoch']:>6} {r['last_acc']:>9.2f}  ok")
    return lines


def fewshot_summary(rows):
    """``{'acc_mean', 'acc_std', 'folds_ok', 'folds_failed'}`` over the rows (sample std)."""
    ok = [r['acc'] for r in rows if 'error' not in r]
    stats = summary(ok) if ok else {'mean': None, 'std': None}
    return {'acc_mean': stats['mean'], 'acc_std': stats['std'], 'folds_ok': len(ok),
            'folds_failed': [r['fold'] for r in rows if 'error' in r]}


def fewshot(ctx, config, logger):
    """One fold (``--fold f``), or all ten (``--fold -1``) with the per-fold table and mean ± std."""
    if ctx.fold >= 0:
        return finetune(ctx, fold_config(config, ctx.way, ctx.shot, ctx.fold), logger)
    folds = [dataclasses.replace(ctx, experiment_path=ctx.path(f'fold-{f}'), fold=f) for f in range(FOLDS)]
    started = [c.experiment_path for c in folds if os.path.isfile(c.path('ckpt-last.pth'))]
    if started and not ctx.resume:
        raise ConfigError(f"{started[0]} already holds ckpt-last.pth; use --resume to continue the folds or a "
                          f"new --exp_name")
    rows = []
    for fold_ctx in folds:
        f = fold_ctx.fold
        fold_ctx = dataclasses.replace(fold_ctx, resume=os.path.isfile(fold_ctx.path('ckpt-last.pth')))
        done = finished_fold(fold_ctx, config.max_epoch)
        if done:
            logger.info('fold %d finished before: its results.json is reused', f)
            rows.append({'fold': f, **fold_result(done)})
            continue
        logger.info('few-shot %d-way %d-shot, fold %d/%d -> %s', ctx.way, ctx.shot, f + 1, FOLDS,
                    fold_ctx.experiment_path)
        try:
            if fold_ctx.is_main:
                os.makedirs(fold_ctx.experiment_path, exist_ok=True)
            rows.append({'fold': f, **fold_result(finetune(fold_ctx, fold_config(config, ctx.way, ctx.shot, f),
                                                           logger))})
        except FOLD_ERRORS as e:
            logger.error('fold %d failed: %s: %s', f, type(e).__name__, e)
            logger.debug(traceback.format_exc())
            rows.append({'fold': f, 'error': f'{type(e).__name__}: {e}'.splitlines()[0]})
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    stats = fewshot_summary(rows)
    for line in fewshot_table(rows):
        logger.info(line)
    if stats['folds_ok']:
        logger.info('%d-way %d-shot: %.2f ± %.2f (mean ± sample std of the best test accuracy over %d of %d folds)%s',
                    ctx.way, ctx.shot, stats['acc_mean'], stats['acc_std'], stats['folds_ok'], FOLDS,
                    f"; FAILED folds: {stats['folds_failed']}" if stats['folds_failed'] else '')
    else:
        logger.error('%d-way %d-shot: every fold failed', ctx.way, ctx.shot)
    results = {'mode': 'fewshot', 'way': ctx.way, 'shot': ctx.shot, 'folds': rows, **stats,
               'note': "each fold's accuracy is its best epoch's on the fold's test split (the usual protocol); "
                       "std is the sample std (n - 1) over the folds that finished"}
    if ctx.is_main:
        write_json(ctx.path('results.json'), results)
    if not stats['folds_ok']:
        raise RuntimeError(f'few-shot: all {FOLDS} folds failed (see the table in the log)')
    return results


def run(ctx, config, logger):
    """main.py entry for the ``finetune``, ``test`` and ``fewshot`` modes."""
    if ctx.mode == 'test':
        return Trainer(FinetuneTask(ctx, config, logger), ctx, config, logger).evaluate()
    if ctx.mode == 'fewshot':
        return fewshot(ctx, config, logger)
    return finetune(ctx, config, logger)
