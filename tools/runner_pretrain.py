"""Pre-training runner: ``python main.py --config cfgs/pretrain.yaml --exp_name <name>``.

Per epoch: train with per-step schedule and sync-free guarded steps (tools/engine.py),
log every loss term, lr and samples/s (TensorBoard + metrics.jsonl), every ``--val_freq``
epochs the loss terms on the ``val`` split (``val_*``), optionally probe the frozen encoder
with a linear SVM, and write ``ckpt-last.pth`` (every epoch) and
``ckpt-epoch-XXX.pth`` (every ``ckpt_save_freq`` epochs and at the end) atomically.
``--resume`` restores model, optimizer, schedule, epoch and every RNG stream (each rank's
under DDP). Epoch metrics add samples/s and ``skipped_steps`` (non-finite steps of that epoch).
"""
import os
import time

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from datasets import build_dataloader, unpack_batch
from utils.transforms import build_transforms
from models import build_model
from tools.engine import TrainStepper, amp_dtype
from tools.optim import build_optimizer, build_scheduler
from tools.svm import extract_features, linear_svm_accuracy
from utils import dist
from utils.checkpoint import load_pretrained, make_checkpoint, resume_state, save_checkpoint
from utils.logger import MetricsWriter
from utils.meters import AverageMeter, reduce_meter
from utils.misc import rng_state_all_ranks

PROBE_SPLITS = ('svm_train', 'svm_test')


def wrap_model(model, args, config):
    """SyncBN / DDP / torch.compile as asked; returns the module the step calls."""
    if args.sync_bn:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    net = model
    if dist.is_dist():
        device_ids = [args.device.index] if args.device.type == 'cuda' else None
        net = DistributedDataParallel(model, device_ids=device_ids)
    return torch.compile(net) if config.compile else net


class Pretrainer:
    """Holds what one pre-training run needs; ``fit`` runs the epochs."""

    def __init__(self, args, config, logger):
        self.args, self.config, self.logger = args, config, logger
        self.device = args.device
        self.pin = self.device.type == 'cuda'  # pinned host memory: the copies to the GPU do not block
        self.loader = build_dataloader(config.dataset.train, train=True, total_bs=config.total_bs,
                                       seed=args.seed, num_workers=args.num_workers, pin_memory=self.pin)
        self.model = build_model(config.model).to(self.device)
        if args.start_ckpts:
            load_pretrained(self.model, args.start_ckpts, logger=logger, strict_shapes=True,
                            partial=args.partial_load, opt_in='--partial_load')
        self.net = wrap_model(self.model, args, config)
        self.optimizer = build_optimizer(self.model, config.optimizer)
        steps = len(self.loader) // config.step_per_update
        self.scheduler = build_scheduler(self.optimizer, config.scheduler, steps)
        self.stepper = TrainStepper(self.net, self.optimizer, self.scheduler, accum=config.step_per_update,
                                    grad_clip=config.get('grad_norm_clip'), amp=amp_dtype(config.amp, self.device),
                                    device=self.device, patience=config.nonfinite_patience)
        self.val_loader = None
        if 'val' in config.dataset:
            self.val_loader = build_dataloader(config.dataset.val, train=False, total_bs=config.total_bs,
                                               seed=args.seed, num_workers=args.num_workers, pin_memory=self.pin)
        self.probe_loaders = {}  # opened now: a bad probe file stops the run before the first step
        for split in PROBE_SPLITS if config.svm_probe.freq else ():
            self.probe_loaders[split] = build_dataloader(config.dataset[split], train=False, total_bs=config.total_bs,
                                                         seed=args.seed, num_workers=args.num_workers,
                                                         where=f'dataset.{split}')
        self.transforms = build_transforms(config.train_transforms)
        self.writer = MetricsWriter(args.experiment_path)
        self.start_epoch, self.best = 0, {}
        if args.resume:
            self.start_epoch, _, self.best = resume_state(self.ckpt_path('last'), self.model, self.optimizer,
                                                          self.scheduler, None)
            logger.info('resumed from %s at epoch %d', self.ckpt_path('last'), self.start_epoch)

    def ckpt_path(self, name):
        return os.path.join(self.args.experiment_path, f'ckpt-{name}.pth')

    def fit(self):
        epochs = self.config.scheduler.kwargs.get('epochs')
        if epochs != self.config.max_epoch:
            self.logger.warning('scheduler.kwargs.epochs (%s) differs from max_epoch (%s): the cosine schedule '
                                'will not end with the run', epochs, self.config.max_epoch)
        self.logger.info('model: %s, %.2fM trainable parameters; %d steps per epoch',
                         self.config.model.NAME, sum(p.numel() for p in self.model.parameters()
                                                     if p.requires_grad) / 1e6, len(self.loader))
        try:
            for epoch in range(self.start_epoch, self.config.max_epoch):
                metrics = self.train_one_epoch(epoch)
                metrics.update(self.maybe_validate(epoch))
                if self.due(epoch, self.config.svm_probe.freq):
                    self.save(epoch + 1, metrics)  # first: a failing probe does not cost the epoch
                    metrics.update(self.maybe_probe(epoch))
                self.writer.write(metrics, step=epoch + 1, prefix='epoch', epoch=epoch + 1)
                self.logger.info('epoch %d/%d %s', epoch + 1, self.config.max_epoch,
                                 ' '.join(f'{k}={v:.4g}' for k, v in metrics.items()))
                self.save(epoch + 1, metrics)
        finally:  # also on an interruption or a non-finite stop: flush metrics.jsonl and TensorBoard
            self.writer.close()

    def new_meter(self):
        """Running means of the total and every active term, kept on the device (no host read
        until ``reduce_meter``, which sums over ranks and reads once)."""
        return AverageMeter(['loss', *self.model.term_weights])

    def train_one_epoch(self, epoch):
        self.net.train()
        self.loader.set_epoch(epoch)
        self.stepper.start_epoch()
        log_sums, epoch_sums = self.new_meter(), self.new_meter()
        steps = len(self.loader)
        skipped_before = self.stepper.check()
        start = last_log = time.perf_counter()
        samples = 0
        bar = tqdm(self.loader, desc=f'epoch {epoch + 1}', disable=not dist.is_main_process(),
                   leave=False, dynamic_ncols=True)
        for i, batch in enumerate(bar):
            points = self.transforms(unpack_batch(batch)[0].to(self.device, non_blocking=True))
            with self.stepper.sync_context(), self.stepper.autocast():
                out = self.net(points)
            self.stepper.backward(out['loss'])
            values = {'loss': out['loss'], **out['terms']}
            log_sums.update(values)
            epoch_sums.update(values)
            samples += points.shape[0] * dist.get_world_size()
            if (i + 1) % self.config.log_freq == 0 or i + 1 == steps:
                now = time.perf_counter()
                self.log_step(log_sums, epoch * steps + i + 1, samples / (now - last_log), bar)
                samples, last_log = 0, time.perf_counter()
        metrics = reduce_meter(epoch_sums).avg
        elapsed = time.perf_counter() - start
        metrics.update(lr=self.scheduler.get_last_lr()[0], epoch_time_s=elapsed,
                       samples_per_s=steps * self.loader.batch_size * dist.get_world_size() / elapsed,
                       skipped_steps=self.stepper.check() - skipped_before)  # this epoch's, as resume sees it
        return metrics

    def log_step(self, sums, step, samples_per_s, bar):
        values = reduce_meter(sums).avg
        sums.reset()
        self.stepper.check()
        values.update(lr=self.scheduler.get_last_lr()[0], samples_per_s=samples_per_s)
        self.writer.write(values, step=step, prefix='train')
        bar.set_postfix(loss=f"{values['loss']:.4f}", lr=f"{values['lr']:.2e}")

    def due(self, epoch, freq):
        """Every ``freq`` epochs and at the last one; never when ``freq`` is 0."""
        return bool(freq) and ((epoch + 1) % freq == 0 or epoch + 1 == self.config.max_epoch)

    @torch.no_grad()
    def maybe_validate(self, epoch):
        """Mean loss terms on the ``val`` split every ``--val_freq`` epochs: eval mode (no drop
        path, BatchNorm running statistics, FPS from point 0) and masks from a generator seeded
        with ``--seed``, so the numbers of different epochs and runs compare."""
        if self.val_loader is None or not self.due(epoch, self.args.val_freq):
            return {}
        self.model.eval()
        generator = torch.Generator(self.device).manual_seed(self.args.seed)
        sums = self.new_meter()
        for batch in self.val_loader:
            with self.stepper.autocast():
                out = self.model(unpack_batch(batch)[0].to(self.device, non_blocking=True), generator)
            sums.update({'loss': out['loss'], **out['terms']})
        self.model.train()
        return {f'val_{name}': value for name, value in reduce_meter(sums).avg.items()}

    def maybe_probe(self, epoch):
        """Linear-SVM accuracy of the frozen encoder every ``svm_probe.freq`` epochs (and at the end)."""
        if not self.due(epoch, self.config.svm_probe.freq):
            return {}
        self.model.eval()
        feats = {}
        for split, loader in self.probe_loaders.items():
            npoints = self.config.dataset[split].get('npoints') or self.config.npoints
            with self.stepper.autocast():
                feats[split] = extract_features(self.model.global_features, loader, self.device, npoints)
        acc = linear_svm_accuracy(*feats['svm_train'], *feats['svm_test'], C=self.config.svm_probe.C,
                                  seed=self.args.seed)
        self.model.train()
        return {'svm_acc': acc}

    def save(self, epochs_done, metrics):
        if 'svm_acc' in metrics and metrics['svm_acc'] > self.best.get('svm_acc', -1.0):
            self.best = {'svm_acc': metrics['svm_acc'], 'epoch': epochs_done}
        rng = rng_state_all_ranks()  # a collective under DDP: before the rank-0 check
        if not dist.is_main_process():
            return
        ckpt = make_checkpoint(self.model, self.optimizer, self.scheduler, None, epoch=epochs_done,
                               metrics=metrics, best_metrics=self.best, config=self.config, rng=rng)
        save_checkpoint(ckpt, self.ckpt_path('last'))
        if epochs_done % self.config.ckpt_save_freq == 0 or epochs_done == self.config.max_epoch:
            save_checkpoint(ckpt, self.ckpt_path(f'epoch-{epochs_done:03d}'))
        if self.best.get('epoch') == epochs_done:
            save_checkpoint(ckpt, self.ckpt_path('best'))


def run(args, config, logger):
    """main.py entry for the ``pretrain`` mode."""
    Pretrainer(args, config, logger).fit()
