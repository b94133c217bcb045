"""Command-line flags of main.py (Point-MAE's set, minus the dead ones, plus a few)."""
import argparse
import os

FEWSHOT_WAYS = (5, 10)
FEWSHOT_SHOTS = (10, 20)


def build_parser():
    p = argparse.ArgumentParser(
        description='MaskClu: pre-train, fine-tune and evaluate point-cloud ViTs.')
    p.add_argument('--config', required=True, help='YAML config (Point-MAE schema)')
    p.add_argument('--exp_name', default='default', help='experiment name (folder under --exp)')
    p.add_argument('--exp', default='exps', help='root of the experiment folders')
    mode = p.add_argument_group('mode')
    mode.add_argument('--finetune_model', action='store_true', help='fine-tune from --ckpts')
    mode.add_argument('--scratch_model', action='store_true', help='train a downstream model from scratch')
    mode.add_argument('--test', action='store_true', help='evaluate --ckpts (voting test for classification)')
    mode.add_argument('--svm', action='store_true', help='linear-SVM probe of the frozen encoder in --ckpts')
    mode.add_argument('--vote', action='store_true', help='use voting when validating during fine-tuning')
    ckpt = p.add_argument_group('checkpoints')
    ckpt.add_argument('--ckpts', default=None, help='checkpoint to fine-tune / test / probe')
    ckpt.add_argument('--start_ckpts', default=None, help='initialise the model from this checkpoint')
    ckpt.add_argument('--resume', action='store_true', help='continue from <experiment>/ckpt-last.pth')
    ckpt.add_argument('--partial_load', action='store_true',
                      help='load the tensors of --start_ckpts that fit and keep the others as initialised '
                           '(without it a shape mismatch stops the run)')
    ckpt.add_argument('--allow_changes', nargs='+', default=[], metavar='KEY',
                      help='with --resume: accept these config keys (or sections) differing from the saved config')
    fs = p.add_argument_group('few-shot')
    fs.add_argument('--way', type=int, default=-1)
    fs.add_argument('--shot', type=int, default=-1)
    fs.add_argument('--fold', type=int, default=-2, help='0..9, or -1 for all ten folds (mean ± std)')
    run = p.add_argument_group('runtime')
    run.add_argument('--seed', type=int, default=0)
    run.add_argument('--deterministic', action='store_true', help='deterministic kernels (slower)')
    run.add_argument('--num_workers', type=int, default=4)
    run.add_argument('--launcher', choices=['none', 'pytorch'], default='none',
                     help="'pytorch' under torchrun (reads LOCAL_RANK/RANK/WORLD_SIZE)")
    run.add_argument('--sync_bn', action='store_true', help='SyncBatchNorm under DDP')
    run.add_argument('--val_freq', type=int, default=1, help='validate every N epochs')
    run.add_argument('--device', choices=['auto', 'cpu', 'cuda'], default='auto')
    run.add_argument('--opts', nargs='+', default=[], metavar='KEY=VALUE',
                     help='config overrides, e.g. --opts max_epoch=10 model.num_group=32')
    return p


def contradiction(args):
    """Return a one-line reason why the flags cannot go together, or None."""
    fewshot = [args.way != -1, args.shot != -1, args.fold != -2]
    rules = [
        (args.test and args.resume, '--test evaluates a checkpoint; it cannot --resume training'),
        (args.test and not args.ckpts, '--test needs --ckpts <checkpoint to evaluate>'),
        (args.svm and not args.ckpts, '--svm needs --ckpts <pre-trained checkpoint to probe>'),
        (args.svm and (args.test or args.resume or args.finetune_model or args.scratch_model),
         '--svm is a probe of --ckpts alone; drop --test/--resume/--finetune_model/--scratch_model'),
        (args.finetune_model and args.scratch_model, '--finetune_model and --scratch_model exclude each other'),
        (args.finetune_model and not args.ckpts and not args.resume,
         '--finetune_model needs --ckpts <pre-trained checkpoint>'),
        (args.test and (args.finetune_model or args.scratch_model),
         '--test evaluates; drop --finetune_model/--scratch_model'),
        (args.resume and args.start_ckpts, '--resume continues the experiment; --start_ckpts would be ignored'),
        (args.allow_changes and not args.resume, '--allow_changes applies to --resume only'),
        (args.ckpts and mode_of(args) == 'pretrain',
         '--ckpts is read by --finetune_model/--test/--svm/few-shot; pre-training starts from a checkpoint '
         'with --start_ckpts'),
        (args.partial_load and not args.start_ckpts, '--partial_load applies to --start_ckpts only'),
        (args.scratch_model and args.ckpts, '--scratch_model trains from scratch; --ckpts would be ignored'),
        (any(fewshot) and not all(fewshot), 'few-shot needs all of --way, --shot and --fold'),
        (all(fewshot) and args.way not in FEWSHOT_WAYS, f'--way must be one of {FEWSHOT_WAYS}'),
        (all(fewshot) and args.shot not in FEWSHOT_SHOTS, f'--shot must be one of {FEWSHOT_SHOTS}'),
        (all(fewshot) and not -1 <= args.fold <= 9, '--fold must be 0..9, or -1 for all folds'),
        (args.sync_bn and args.launcher == 'none', '--sync_bn needs --launcher pytorch (torchrun)'),
        (args.val_freq < 1, '--val_freq must be >= 1'),
        (args.num_workers < 0, '--num_workers must be >= 0'),
        (args.ckpts is not None and not os.path.isfile(args.ckpts), f'--ckpts {args.ckpts}: no such file'),
        (args.start_ckpts is not None and not os.path.isfile(args.start_ckpts),
         f'--start_ckpts {args.start_ckpts}: no such file'),
        (not os.path.isfile(args.config), f'--config {args.config}: no such file'),
    ]
    return next((reason for bad, reason in rules if bad), None)


def mode_of(args):
    """The task main.py runs: svm, test, fewshot, finetune or pretrain."""
    if args.svm:
        return 'svm'
    if args.test:
        return 'test'
    if args.way != -1:
        return 'fewshot'
    if args.finetune_model or args.scratch_model:
        return 'finetune'
    return 'pretrain'


def experiment_dir(args):
    """``<exp>/<config stem>/<config parent folder>/<exp_name>`` (Point-MAE's layout)."""
    config = os.path.abspath(args.config)
    stem = os.path.splitext(os.path.basename(config))[0]
    parent = os.path.basename(os.path.dirname(config))
    return os.path.join(args.exp, stem, parent, args.exp_name)


def parse_args(argv=None):
    """Parse and validate; a contradiction exits at once with a one-line reason (status 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    reason = contradiction(args)
    if reason:
        parser.exit(2, f'main.py: error: {reason}\n')
    args.mode = mode_of(args)
    args.experiment_path = experiment_dir(args)
    return args
