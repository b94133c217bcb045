"""Pre-training runner: ``python main.py --config cfgs/pretrain.yaml --exp_name <name>``.

``PretrainTask`` plugs pre-training into the one training loop (``tools.trainer.Trainer``): the
training step is the objective's forward (``out['loss']``, every term of ``out['terms']``
logged), after the ``train_transforms`` augmentations. Evaluations: every ``--val_freq`` epochs
the loss terms on the ``val`` split (``val_*``), and every ``svm_probe.freq`` epochs the
fixed-C linear-SVM probe of the frozen encoder (``svm_acc``, ``tools.svm.SvmProbe``), which
also chooses ``ckpt-best.pth`` unless the config sets ``consider_metric``.
"""
import torch

from datasets import build_dataloader, unpack_batch
from models import build_model
from tools.svm import SvmProbe
from tools.trainer import Task, Trainer
from utils.meters import AverageMeter, reduce_meter
from utils.transforms import build_transforms


class PretrainTask(Task):
    """Pre-training of ``config.model`` (MaskClu, Point_MAE, ...) on ``dataset.train``; the best
    epoch is the one with the highest probe accuracy when the probe runs."""

    def __init__(self, ctx, config, logger):
        self.ctx, self.config, self.logger = ctx, config, logger
        self.best_metric = {'name': 'svm_acc', 'mode': 'max'} if config.svm_probe.freq else None
        loader_args = dict(total_bs=config.total_bs, seed=ctx.seed, num_workers=ctx.num_workers,
                           pin_memory=ctx.pin_memory)
        self.train_loader = build_dataloader(config.dataset.train, train=True, **loader_args)
        self.model = build_model(config.model).to(ctx.device)
        self.log_names = tuple(self.model.term_weights)
        self.transforms = build_transforms(config.train_transforms)
        self.val_loader = None
        if 'val' in config.dataset:
            self.val_loader = build_dataloader(config.dataset.val, train=False, **loader_args)
        self.probe = None
        if config.svm_probe.freq:  # its splits are checked by tools.config_check
            self.probe = SvmProbe(config.dataset.get('svm_train'), config.dataset.get('svm_test'),
                                  npoints=config.npoints, batch_size=config.total_bs, device=ctx.device,
                                  seed=ctx.seed, num_workers=ctx.num_workers, pin_memory=ctx.pin_memory)
            self.probe.open()  # now: a bad probe file stops the run before the first step
        self.evaluations = [(ctx.val_freq if self.val_loader is not None else 0, self.validate),
                            (config.svm_probe.freq, self.svm_probe)]

    def prepare(self, batch):
        points = unpack_batch(batch, self.train_loader.kind).points
        return self.transforms(points.to(self.ctx.device, non_blocking=True))

    def train_step(self, net, points):
        out = net(points)
        return out['loss'], out['terms']

    def validate(self, epoch):
        """Mean loss terms on the ``val`` split: eval mode (no drop path, BatchNorm running
        statistics, FPS from point 0) and masks from a generator seeded with ``--seed``, so the
        numbers of different epochs and runs compare."""
        generator = torch.Generator(self.ctx.device).manual_seed(self.ctx.seed)
        sums = AverageMeter(['loss', *self.log_names])
        for batch in self.val_loader:
            points = unpack_batch(batch, self.val_loader.kind).points
            out = self.model(points.to(self.ctx.device, non_blocking=True), generator)
            sums.update({'loss': out['loss'], **out['terms']})
        return {f'val_{name}': value for name, value in reduce_meter(sums).avg.items()}

    def svm_probe(self, epoch):
        """Fixed-C linear-SVM accuracy of the frozen encoder on ``svm_train`` / ``svm_test``."""
        return {'svm_acc': self.probe.accuracy(self.model.global_features, self.config.svm_probe.C)}


def run(ctx, config, logger):
    """main.py entry for the ``pretrain`` mode."""
    Trainer(PretrainTask(ctx, config, logger), ctx, config, logger).fit()
