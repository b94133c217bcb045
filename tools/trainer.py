"""The one training loop: every runner (pre-training, fine-tuning, few-shot, part segmentation)
is a ``Task`` plugged into ``Trainer``.

The trainer owns what does not depend on the task: SyncBN / DDP / ``torch.compile`` wrapping,
the optimizer and per-step schedule (``config.optimizer`` / ``config.scheduler``), the
host-sync-free step (``tools.engine.TrainStepper``: accumulation, autocast, clipping, the
non-finite guard), ``--start_ckpts``, exact ``--resume`` (model, optimizer, schedule, epoch and
every rank's RNG streams), the epoch loop with evaluations every N epochs (``due``), step and
epoch logging (tqdm, ``metrics.jsonl`` and TensorBoard through ``utils.logger.MetricsWriter``),
the checkpoints ``ckpt-last.pth`` (every epoch), ``ckpt-epoch-XXX.pth`` (every
``ckpt_save_freq`` epochs and the last) and ``ckpt-best.pth`` (the best epoch by the config key
``consider_metric``), and ``results.json`` (best-epoch and last-epoch metrics, atomic).

A task provides the model, the training loader, how a batch becomes inputs (``prepare``), the
training step (``train_step``), its evaluations, and optionally a single evaluation
(``evaluate_only``, for ``--test``). See ``Task``.
"""
import contextlib
import time
from typing import NamedTuple

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from tools.engine import TrainStepper, amp_dtype, autocast
from tools.optim import build_optimizer, build_scheduler
from utils import dist
from utils.checkpoint import load_pretrained, make_checkpoint, resume_state, save_checkpoint, to_plain
from utils.config import ConfigError
from utils.io import write_json
from utils.logger import MetricsWriter
from utils.meters import AverageMeter, reduce_meter
from utils.misc import rng_state_all_ranks

RESULTS_FILE = 'results.json'


class Task:
    """What a task plugs into ``Trainer``; subclass it and set or override:

    * ``model`` (attribute): the bare ``nn.Module`` on ``ctx.device`` (the trainer wraps it).
    * ``train_loader`` (attribute): a ``datasets.EpochLoader``, or None for an evaluation-only task.
    * ``log_names`` (attribute): names of the values ``train_step`` returns besides the loss.
    * ``evaluations`` (attribute): list of ``(freq, fn)``; ``fn(epoch) -> {name: number}`` runs
      after every ``freq``-th epoch and after the last (``freq`` 0: never), with ``epoch`` the
      number of epochs completed (1-based). The trainer calls it with the model in eval mode,
      under ``torch.no_grad()`` and the run's autocast; under DDP every rank calls it, and it
      returns metrics already reduced over the ranks (the same on every rank).
    * ``best_metric`` (attribute): the metric ``ckpt-best.pth`` follows when the config has no
      ``consider_metric``: None, a name (higher is better) or ``{'name': ..., 'mode': 'max'|'min'}``.
    * ``prepare(batch) -> inputs``: unpack a loader batch and move it to the device (and augment).
    * ``train_step(net, inputs) -> (loss, values)``: the forward pass through ``net`` (the wrapped
      model), a scalar loss tensor and ``{name: scalar tensor}`` for every name of ``log_names``;
      runs under autocast. No host reads here (no ``.item()``): values stay on the device.
    * ``train_mode(net)``: put the model in training mode at the start of every epoch (a frozen
      encoder goes back to eval here).
    * ``batch_size(inputs) -> int``: items in ``inputs`` on this rank (for samples/s).
    * ``evaluate_only() -> {name: number}``: optional, the single evaluation of ``--test``.
    """
    model = None
    train_loader = None
    log_names = ()
    evaluations = ()
    best_metric = None

    def prepare(self, batch):
        raise NotImplementedError

    def train_step(self, net, inputs):
        raise NotImplementedError

    def train_mode(self, net):
        net.train()

    def batch_size(self, inputs):
        first = inputs if isinstance(inputs, torch.Tensor) else inputs[0]
        return first.shape[0]

    def evaluate_only(self):
        raise NotImplementedError(f'{type(self).__name__} has no single evaluation (evaluate_only)')


class BestMetric(NamedTuple):
    """The metric that chooses ``ckpt-best.pth``: ``name`` and ``mode`` ('max' or 'min')."""
    name: str
    mode: str = 'max'

    def better(self, value, best):
        """Is ``value`` better than ``best`` (None: nothing yet)?"""
        if best is None:
            return True
        return value > best if self.mode == 'max' else value < best

    def describe(self):
        return f"{'highest' if self.mode == 'max' else 'lowest'} {self.name}"


def parse_best_metric(value, where='consider_metric'):
    """``consider_metric`` (a name, or ``{name, mode: max|min}``) -> BestMetric, or None."""
    if value is None:
        return None
    if isinstance(value, str) and value:
        return BestMetric(value)
    if isinstance(value, dict) and set(value) <= {'name', 'mode'} and isinstance(value.get('name'), str) \
            and value.get('mode', 'max') in ('max', 'min'):
        return BestMetric(value['name'], value.get('mode', 'max'))
    raise ConfigError(f"{where}: expected a metric name or {{name: <metric>, mode: max|min}}, got {value!r}")


def due(epoch, freq, max_epoch):
    """After epoch ``epoch`` (epochs completed, 1-based): every ``freq`` epochs and at the last
    one; never when ``freq`` is 0."""
    return bool(freq) and (epoch % freq == 0 or epoch == max_epoch)


def wrap_model(model, ctx, config):
    """DDP / torch.compile as asked; returns the module the step calls (``model`` itself without
    either)."""
    net = model
    if dist.is_dist():
        device_ids = [ctx.device.index] if ctx.device.type == 'cuda' else None
        net = DistributedDataParallel(model, device_ids=device_ids)
    return torch.compile(net) if config.compile else net


class Trainer:
    """Trains ``task`` (``fit``) or runs its single evaluation (``evaluate``).

    ``Trainer(task, ctx, config, logger)``: ``ctx`` a ``tools.context.RunContext``, ``config`` the
    validated config (``optimizer``, ``scheduler``, ``max_epoch``, ``step_per_update``,
    ``grad_norm_clip``, ``amp``, ``compile``, ``log_freq``, ``ckpt_save_freq``,
    ``nonfinite_patience``, ``consider_metric``). With ``ctx.start_ckpts`` the model is first
    initialised from that checkpoint (grouped report); with ``ctx.resume`` the run continues from
    ``ckpt-last.pth``. A task without ``train_loader`` can only ``evaluate``.
    """

    def __init__(self, task, ctx, config, logger):
        self.task, self.ctx, self.config, self.logger = task, ctx, config, logger
        self.model = task.model
        self.amp = amp_dtype(config.amp, ctx.device)
        self.best_rule = parse_best_metric(config.get('consider_metric')) or \
            parse_best_metric(task.best_metric, f'{type(task).__name__}.best_metric')
        self.start_epoch, self.best, self.last = 0, {}, None
        if ctx.start_ckpts:
            load_pretrained(self.model, ctx.start_ckpts, logger=logger, strict_shapes=True,
                            partial=ctx.partial_load, opt_in='--partial_load')
        if task.train_loader is None:
            return
        self.loader = task.train_loader
        if ctx.sync_bn:  # new BatchNorm modules: the task, the checkpoints and the optimizer see them
            self.model = task.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.net = wrap_model(self.model, ctx, config)
        self.optimizer = build_optimizer(self.model, config.optimizer)
        steps = len(self.loader) // config.step_per_update
        self.scheduler = build_scheduler(self.optimizer, config.scheduler, steps)
        self.stepper = TrainStepper(self.net, self.optimizer, self.scheduler, accum=config.step_per_update,
                                    grad_clip=config.get('grad_norm_clip'), amp=self.amp,
                                    device=ctx.device, patience=config.nonfinite_patience)
        self.writer = MetricsWriter(ctx.experiment_path)
        if ctx.resume:
            self.start_epoch, _, best = resume_state(self.ckpt_path('last'), self.model, self.optimizer,
                                                     self.scheduler, None)
            self.best = best or {}
            logger.info('resumed from %s at epoch %d', self.ckpt_path('last'), self.start_epoch)

    def ckpt_path(self, name):
        return self.ctx.path(f'ckpt-{name}.pth')

    # ------------------------------------------------------------------------- training

    def fit(self):
        """Train from ``start_epoch`` to ``max_epoch``; returns the content of results.json."""
        if self.task.train_loader is None:
            raise RuntimeError(f'{type(self.task).__name__} has no train_loader: use evaluate()')
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
                if any(due(epoch + 1, freq, self.config.max_epoch) for freq, _ in self.task.evaluations):
                    self.save_last(epoch + 1, metrics)  # first: a failing evaluation does not cost the epoch
                metrics.update(self.run_evaluations(epoch + 1))
                self.writer.write(metrics, step=epoch + 1, prefix='epoch', epoch=epoch + 1)
                self.logger.info('epoch %d/%d %s', epoch + 1, self.config.max_epoch,
                                 ' '.join(f'{k}={v:.4g}' for k, v in metrics.items()))
                self.save(epoch + 1, metrics)
        finally:  # also on an interruption or a non-finite stop: flush metrics.jsonl and TensorBoard
            self.writer.close()
        if self.best_rule and not self.best:
            self.logger.warning('the best-checkpoint metric %s (consider_metric) never appeared in the epoch '
                                'metrics: no ckpt-best.pth', self.best_rule.name)
        return self.results()

    def train_one_epoch(self, epoch):
        """One pass over the training loader (``epoch`` is 0-based); returns the epoch metrics:
        the means of the loss and ``log_names`` over the ranks, lr, epoch_time_s, samples_per_s
        and skipped_steps (non-finite steps of this epoch)."""
        self.task.train_mode(self.net)
        self.loader.set_epoch(epoch)
        self.stepper.start_epoch()
        names = ['loss', *self.task.log_names]
        log_sums, epoch_sums = AverageMeter(names), AverageMeter(names)
        steps = len(self.loader)
        skipped_before = self.stepper.check()
        start = last_log = time.perf_counter()
        samples = 0
        bar = tqdm(self.loader, desc=f'epoch {epoch + 1}', disable=not dist.is_main_process(),
                   leave=False, dynamic_ncols=True)
        for i, batch in enumerate(bar):
            inputs = self.task.prepare(batch)
            with self.stepper.sync_context(), self.stepper.autocast():
                loss, values = self.task.train_step(self.net, inputs)
            self.stepper.backward(loss)
            values = {'loss': loss, **values}
            log_sums.update(values)
            epoch_sums.update(values)
            samples += self.task.batch_size(inputs) * dist.get_world_size()
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

    @contextlib.contextmanager
    def evaluating(self):
        """Model in eval mode, no gradients, the run's autocast."""
        self.model.eval()
        with torch.no_grad(), autocast(self.ctx.device, self.amp):
            yield

    def run_evaluations(self, epoch):
        """The task's evaluations due after ``epoch`` (epochs completed); their merged metrics."""
        metrics = {}
        for freq, fn in self.task.evaluations:
            if due(epoch, freq, self.config.max_epoch):
                with self.evaluating():
                    metrics.update(fn(epoch))
        return metrics

    # ------------------------------------------------------------------ checkpoints, results

    def update_best(self, epoch, metrics):
        """Keep ``{'epoch': e, **metrics of e}`` of the best epoch by ``best_rule``."""
        rule = self.best_rule
        if rule is None or metrics.get(rule.name) is None:
            return
        value = float(metrics[rule.name])
        if value == value and rule.better(value, self.best.get(rule.name)):  # NaN is never best
            self.best = {'epoch': epoch, **to_plain(metrics)}

    def save(self, epochs_done, metrics):
        """Checkpoints and results.json after epoch ``epochs_done`` (rank 0 writes)."""
        self.update_best(epochs_done, metrics)
        self.last = {'epoch': epochs_done, **to_plain(metrics)}
        ckpt = self.checkpoint(epochs_done, metrics)
        if ckpt is None:
            return
        save_checkpoint(ckpt, self.ckpt_path('last'))
        if epochs_done % self.config.ckpt_save_freq == 0 or epochs_done == self.config.max_epoch:
            save_checkpoint(ckpt, self.ckpt_path(f'epoch-{epochs_done:03d}'))
        if self.best.get('epoch') == epochs_done:
            save_checkpoint(ckpt, self.ckpt_path('best'))
        write_json(self.ctx.path(RESULTS_FILE), self.results())

    def checkpoint(self, epochs_done, metrics):
        """The checkpoint dict of epoch ``epochs_done`` on rank 0, None on the other ranks (every
        rank must call it: gathering the RNG states is a collective under DDP)."""
        rng = rng_state_all_ranks()
        if not dist.is_main_process():
            return None
        return make_checkpoint(self.model, self.optimizer, self.scheduler, None, epoch=epochs_done,
                               metrics=metrics, best_metrics=self.best, config=self.config, rng=rng)

    def save_last(self, epochs_done, metrics):
        """``ckpt-last.pth`` of epoch ``epochs_done`` before its evaluations run (rank 0 writes)."""
        ckpt = self.checkpoint(epochs_done, metrics)
        if ckpt is not None:
            save_checkpoint(ckpt, self.ckpt_path('last'))

    def results(self):
        """results.json of a training run: the best epoch (by ``consider_metric``) and the last."""
        rule = self.best_rule
        best = {k: v for k, v in self.best.items() if k != 'epoch'} if self.best else None
        last = {k: v for k, v in self.last.items() if k != 'epoch'} if self.last else None
        return {
            'mode': self.ctx.mode,
            'consider_metric': rule._asdict() if rule else None,
            'best_epoch': {'epoch': self.best['epoch'], 'metrics': best,
                           'note': f'the epoch with the {rule.describe()} so far, chosen on the '
                                   f'evaluation split'} if best else None,
            'last_epoch': {'epoch': self.last['epoch'], 'metrics': last,
                           'note': 'the last epoch trained'} if last else None,
        }

    # ------------------------------------------------------------------------ evaluation

    def evaluate(self):
        """The task's single evaluation (``evaluate_only``) in eval mode; logs the metrics, writes
        results.json (rank 0) and returns the metrics."""
        with self.evaluating():
            metrics = to_plain(self.task.evaluate_only())
        self.logger.info('%s: %s', self.ctx.mode, ' '.join(f'{k}={v:.4g}' if isinstance(v, float) else f'{k}={v}'
                                                           for k, v in metrics.items()))
        if dist.is_main_process():
            write_json(self.ctx.path(RESULTS_FILE), {'mode': self.ctx.mode, 'checkpoint': self.ctx.ckpts,
                                                     'metrics': metrics})
        return metrics
