"""Entry point: pre-training, fine-tuning, testing, few-shot and the SVM probe.

    python main.py --config cfgs/pretrain.yaml --exp_name <name>
    torchrun --nproc_per_node=N main.py --launcher pytorch --config ... --exp_name <name>
"""
import contextlib
import importlib
import os
import sys

import torch

from datasets.files import DatasetError
from tools.config_check import validate_config
from tools.context import RunContext
from tools.engine import NonFiniteLossError
from utils import dist
from utils.checkpoint import CheckpointError
from utils.config import ConfigError, load_config
from utils.experiment import open_experiment
from utils.logger import get_logger
from utils.misc import resolve_device, seed_everything
from utils.parser import parse_args

RUNNERS = {'pretrain': 'tools.runner_pretrain', 'svm': 'tools.runner_svm', 'finetune': 'tools.runner_finetune',
           'test': 'tools.runner_finetune', 'fewshot': 'tools.runner_finetune'}
# Errors about the user's input or run: a one-line message (also in log.txt), no traceback.
USER_ERRORS = (ConfigError, DatasetError, CheckpointError, NonFiniteLossError)


TRAINING_MODES = ('pretrain', 'finetune', 'fewshot', 'partseg')  # modes that write checkpoints


def check_experiment(args, prog='main.py'):
    """Refuse to overwrite an earlier run's checkpoints, or to resume one that does not exist.
    ``args``: ``experiment_path``, ``mode``, ``fold``, ``resume`` (main.py's flags, or the same
    names from trainpartseg.py); ``prog`` starts the error message."""
    path = args.experiment_path
    has_ckpt = os.path.isfile(os.path.join(path, 'ckpt-last.pth'))
    if args.mode == 'fewshot' and args.fold == -1:  # the ten folds live in <path>/fold-<f>/
        folds = [os.path.join(path, f'fold-{f}') for f in range(10)]
        has_ckpt = any(os.path.isfile(os.path.join(p, 'ckpt-last.pth')) for p in folds)
        path = next((p for p in folds if os.path.isfile(os.path.join(p, 'ckpt-last.pth'))), path)
    if args.mode in TRAINING_MODES and has_ckpt and not args.resume:
        raise SystemExit(f'{prog}: error: {path} already holds ckpt-last.pth; '
                         f'use --resume to continue it or a new --exp_name')
    if args.resume and not has_ckpt:
        raise SystemExit(f'{prog}: error: --resume but {path}/ckpt-last.pth does not exist')


def main(argv=None):
    args = parse_args(argv)
    try:
        config = validate_config(load_config(args.config, args.opts), args.config, args.mode)
    except ConfigError as e:
        raise SystemExit(f'main.py: error: {e}') from None
    if args.mode not in RUNNERS:
        raise SystemExit(f'main.py: error: mode {args.mode} is not available in this release '
                         f'(available: {", ".join(RUNNERS)})')
    check_experiment(args)
    try:
        device_type = resolve_device(args.device)
    except ValueError as e:
        raise SystemExit(f'main.py: error: {e}') from None
    if args.sync_bn and device_type != 'cuda':
        raise SystemExit('main.py: error: --sync_bn needs CUDA (torch has no SyncBatchNorm on CPU)')
    try:
        local_rank = dist.init_distributed(args.launcher, device_type)
    except dist.LauncherError as e:
        raise SystemExit(f'main.py: error: {e}') from None
    device = torch.device(device_type, local_rank) if device_type == 'cuda' else torch.device('cpu')
    ctx = RunContext.from_args(args, device, local_rank)
    seed_everything(ctx.seed + ctx.rank, ctx.deterministic)
    try:
        with contextlib.ExitStack() as stack:  # holds the experiment lock until the run ends
            run_in_experiment(ctx, args, config, stack)
    finally:
        dist.cleanup_distributed()


def run_in_experiment(ctx, args, config, stack):
    """Open the experiment folder (``utils.experiment.open_experiment``), start the log, run the mode's runner;
    the user's errors end as one line (also in ``log.txt``)."""
    notes = open_experiment(ctx.experiment_path, config, stack, resume=args.resume, allow_changes=args.allow_changes,
                            check=lambda: check_experiment(args))
    logger = get_logger('maskclu', ctx.path('log.txt') if ctx.is_main else None)
    logger.info('command: %s', ' '.join(sys.argv))
    logger.info('experiment folder: %s | device: %s | world size: %d',
                ctx.experiment_path, ctx.device, ctx.world_size)
    for line in notes:
        logger.warning(line)
    try:
        importlib.import_module(RUNNERS[ctx.mode]).run(ctx, config, logger)
        dist.barrier()  # ranks leave together: a rank tearing gloo down while rank 0 still saves aborts
    except USER_ERRORS as e:
        logger.error('%s: %s', type(e).__name__, e)
        raise SystemExit(f'main.py: error: {e}') from None
    except OSError as e:  # the machine's, not the code's: a full disk, a folder made read-only
        logger.error('%s: %s (files written before are intact)', type(e).__name__, e)
        raise SystemExit(f'main.py: error: {e} (files written before are intact)') from None


if __name__ == '__main__':
    main()
