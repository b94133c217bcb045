"""``main.py --svm --ckpts X --config <config>``: linear-SVM probe of a checkpoint's frozen encoder.

The model of ``--config`` (a classification config's ``PointTransformer``, or a pre-training
config's model) is built and loaded from ``--ckpts`` through ``utils.checkpoint.load_pretrained``
(grouped report); a checkpoint that leaves a backbone weight unloaded stops the run, except the
cls token of an encoder pre-trained without one (Point-MAE's): the classifier is then built
without it (``cls_token: false``) and the global feature is concat(mean, max). Global
features of the ``svm_train`` / ``svm_test`` splits (else ``train`` / ``test``) are extracted in
eval mode, and ``tools.svm.tuned_svm_accuracy`` picks C by cross-validation on the train features
only; the fixed-C probe that pre-training logs (``svm_probe.C``, raw features) is reported beside
it. Prints and writes to ``results.json``: ``svm_acc`` (tuned), ``svm_C``, ``svm_cv_acc_C=<C>``
(cross-validation accuracy of each C on the train split) and ``svm_acc_fixed_C``.
"""
from models import build_model
from models.build import model_class
from tools.svm import C_GRID, CV_FOLDS, SvmProbe, linear_svm_accuracy, tuned_svm_accuracy
from tools.trainer import Task, Trainer
from tools.classifier_checkpoint import model_config_for, model_state
from utils.checkpoint import BACKBONE_KEY, CheckpointError, load_checkpoint, load_pretrained
from utils.checkpoint_interop import backbone_config
from utils.config import ConfigError

SPLITS = (('svm_train', 'svm_test'), ('train', 'test'))


def probe_splits(config, where='dataset'):
    """(train entry, test entry): ``svm_train``/``svm_test`` when the config has them, else
    ``train``/``test``."""
    for train, test in SPLITS:
        if train in config.dataset and test in config.dataset:
            return config.dataset[train], config.dataset[test]
    raise ConfigError(f"{where}: --svm needs labelled splits svm_train and svm_test (or train and test); "
                      f"the config has {', '.join(config.dataset) or 'none'}")


def load_frozen_model(config, ckpt, device, logger):
    """``config.model`` with the weights of ``ckpt`` (report logged), frozen, in eval mode; model keys
    left ``auto`` (the fine-tuning configs) are read from the checkpoint's weights."""
    source, ckpt = ckpt, load_checkpoint(ckpt)
    model_cfg = model_config_for(config.model.to_dict(), ckpt, source, logger)
    if 'cls_token' in model_class(model_cfg).CONFIG_KEYS and \
            not backbone_config(model_state(ckpt, source)).get('cls_token', True):
        logger.info('%s has no cls token (pre-trained without one, as Point-MAE): the probed global feature is '
                    'concat(mean, max) over the patches', source)
        model_cfg['cls_token'] = False
    model = build_model(model_cfg)
    if not hasattr(model, 'global_features'):
        raise ConfigError(f"model.NAME {config.model.NAME} has no global features to probe "
                          f"(use a classification or pre-training config)")
    report = load_pretrained(model, ckpt, logger=logger, source=source)
    unloaded = [k for k in report.missing if BACKBONE_KEY.match(k)]
    if unloaded:
        raise CheckpointError(f"{source} leaves {len(unloaded)} backbone weights of model {config.model.NAME} "
                              f"unloaded (e.g. {unloaded[0]}): a probe of a partly random encoder would "
                              f"mislead; is it a checkpoint of this backbone?")
    return model.requires_grad_(False).eval().to(device)


class SvmTask(Task):
    """Evaluation-only task: the tuned and the fixed-C probe of a frozen encoder."""

    def __init__(self, ctx, config, logger):
        self.ctx, self.config = ctx, config
        self.model = load_frozen_model(config, ctx.ckpts, ctx.device, logger)
        train, test = probe_splits(config)
        self.probe = SvmProbe(train, test, npoints=config.npoints, batch_size=config.total_bs, device=ctx.device,
                              seed=ctx.seed, num_workers=ctx.num_workers, pin_memory=ctx.pin_memory)

    def evaluate_only(self):
        train, test = self.probe.features(self.model.global_features)
        grid = self.config.svm_probe.get('C_grid') or C_GRID
        folds = self.config.svm_probe.get('cv_folds') or CV_FOLDS
        tuned = tuned_svm_accuracy(train, test, grid=grid, folds=folds, seed=self.ctx.seed)
        fixed = linear_svm_accuracy(*train, *test, C=self.config.svm_probe.C, seed=self.ctx.seed)
        return {'svm_acc': tuned['acc'], 'svm_C': tuned['C'],
                **{f'svm_cv_acc_C={c:g}': acc for c, acc in tuned['cv'].items()},
                'svm_acc_fixed_C': fixed, 'train_items': len(train[1]), 'test_items': len(test[1])}


def run(ctx, config, logger):
    """main.py entry for the ``svm`` mode."""
    metrics = Trainer(SvmTask(ctx, config, logger), ctx, config, logger).evaluate()
    if ctx.is_main:
        print(f"linear SVM on {metrics['train_items']} train / {metrics['test_items']} test items: "
              f"accuracy {metrics['svm_acc']:.2f} % with C = {metrics['svm_C']:g} (chosen by cross-validation "
              f"on the train features); fixed C = {config.svm_probe.C:g}: {metrics['svm_acc_fixed_C']:.2f} %")
