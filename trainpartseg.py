"""Part segmentation on ShapeNetPart (command of the original MaskClu README).

    python trainpartseg.py --ckpts <pretrained.pth> --root path/to/data --learning_rate 0.0002 --epoch 300
    python trainpartseg.py --test --ckpts exps/partseg/<log_dir>/ckpt-best.pth [--num_votes 10]
    python trainpartseg.py --svm --ckpts <pretrained.pth>          # dense frozen probe
    torchrun --nproc_per_node=N trainpartseg.py --launcher pytorch ...

Every flag can also come from ``--config file.yaml`` holding the same keys (``_base_`` inheritance
as in the main configs); a flag given on the command line wins over the file. The file may also
hold a ``model`` section (``PartSegmentation`` keys, see cfgs/partseg.yaml) and a ``dataset``
entry (``ShapeNetPart``: DATA_PATH, LAYOUT); ``--root`` replaces the entry's DATA_PATH. The flags
become a trainer config (``tools.runner_partseg.seg_config``) and a ``RunContext``; the work is
``tools.runner_partseg.run``. Folders: training ``<exp>/partseg/<log_dir>``, ``--test`` its
``test/`` and ``--svm`` its ``dense_probe/`` sub-folder (config.yaml, log.txt, results.json).
"""
import argparse
import contextlib
import os
import sys

import torch

from datasets import check_dataset_config
from main import USER_ERRORS, check_experiment
from models import check_model_config
from tools import runner_partseg
from tools.context import RunContext
from utils import dist
from utils.config import ConfigError, load_config
from utils.experiment import open_experiment
from utils.logger import get_logger
from utils.misc import resolve_device, seed_everything
from utils.registry import unknown_name_message

DEFAULT_ROOT = 'data/shapenetcore_partanno_segmentation_benchmark_v0_normal/'
SECTIONS = ('model', 'dataset')    # config-file keys that are not flags


def build_parser():
    p = argparse.ArgumentParser(description='MaskClu part segmentation on ShapeNetPart.')
    p.add_argument('--config', default=None, help='optional YAML with any of the keys below')
    p.add_argument('--ckpts', default=None, help='pre-trained checkpoint (or, with --test, a segmentation one)')
    p.add_argument('--root', default=None,
                   help=f'ShapeNetPart folder (text or HDF5 layout); default: the config\'s dataset.DATA_PATH, '
                        f'else {DEFAULT_ROOT}')
    p.add_argument('--learning_rate', type=float, default=2e-4)
    p.add_argument('--weight_decay', type=float, default=0.05)
    p.add_argument('--epoch', type=int, default=300)
    p.add_argument('--warmup_epoch', type=int, default=10)
    p.add_argument('--batch_size', type=int, default=16)
    p.add_argument('--npoint', type=int, default=2048)
    p.add_argument('--log_dir', default='default', help='experiment folder name under <exp>/partseg/')
    p.add_argument('--exp', default='exps', help='root of the experiment folders')
    p.add_argument('--test', action='store_true', help='evaluate the segmentation checkpoint in --ckpts')
    p.add_argument('--num_votes', type=int, default=0,
                   help='with --test: also average the log-probabilities of N random isotropic scalings')
    p.add_argument('--svm', action='store_true',
                   help='dense frozen probe of the pre-trained encoder in --ckpts (linear per-point classifier)')
    p.add_argument('--resume', action='store_true', help='continue the run in --log_dir from ckpt-last.pth')
    p.add_argument('--allow_changes', nargs='+', default=[], metavar='KEY',
                   help='with --resume: accept these config keys (or sections) differing from the saved config')
    p.add_argument('--val_freq', type=int, default=1, help='evaluate on the test split every N epochs')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--num_workers', type=int, default=4)
    p.add_argument('--device', choices=['auto', 'cpu', 'cuda'], default='auto')
    p.add_argument('--launcher', choices=['none', 'pytorch'], default='none')
    return p


def config_defaults(parser, path):
    """Keys of the YAML at ``path`` (bases resolved) as parser defaults; unknown keys are errors,
    the ``model`` and ``dataset`` sections are checked."""
    values = load_config(path).to_dict()
    accepted = {a.dest for a in parser._actions if a.dest not in ('help', 'config')} | set(SECTIONS)
    for key in values:
        if key not in accepted:
            raise ConfigError(f'{path}: ' + unknown_name_message('key', key, accepted))
    if 'model' in values:
        values['model'] = model_section(values['model'], f'{path}: model')
    if 'dataset' in values:
        values['dataset'] = dataset_section(values['dataset'], f'{path}: dataset')
    return values


def model_section(model, where='model'):
    """The checked ``model`` section (defaults filled); its NAME must be PartSegmentation."""
    if not isinstance(model, dict) or model.get('NAME', 'PartSegmentation') != 'PartSegmentation':
        raise ConfigError(f'{where}: expected a PartSegmentation model section, found {model!r}')
    return check_model_config({'NAME': 'PartSegmentation', **model}, where)


def dataset_section(entry, where='dataset'):
    """The ``dataset`` entry as given (checked: a ShapeNetPart entry)."""
    if not isinstance(entry, dict) or entry.get('NAME') != 'ShapeNetPart':
        raise ConfigError(f'{where}: expected a ShapeNetPart entry (_base_: dataset_configs/ShapeNetPart.yaml), '
                          f'found {entry!r}')
    check_dataset_config(entry, where)
    return dict(entry)


def resolve_sections(args):
    """Fill ``args.model`` (checked, defaults filled) and ``args.dataset`` (DATA_PATH = ``args.root``,
    which defaults to the config's DATA_PATH, else ``DEFAULT_ROOT``)."""
    args.model = getattr(args, 'model', None) or model_section({})
    dataset = dict(getattr(args, 'dataset', None) or {'NAME': 'ShapeNetPart', 'LAYOUT': 'auto'})
    args.root = args.root or dataset.get('DATA_PATH') or DEFAULT_ROOT
    args.dataset = {**dataset, 'DATA_PATH': args.root}
    return args


def contradiction(args):
    """A one-line reason why the flags cannot go together, or None."""
    rules = [
        (args.test and args.svm, '--test and --svm are two different evaluations; give one'),
        (args.test and not args.ckpts, '--test needs --ckpts <segmentation checkpoint>'),
        (args.svm and not args.ckpts, '--svm needs --ckpts <pre-trained checkpoint>'),
        ((args.test or args.svm) and args.resume, '--resume continues a training run; not with --test or --svm'),
        (args.allow_changes and not args.resume, '--allow_changes applies to --resume only'),
        (args.num_votes and not args.test, '--num_votes goes with --test'),
        (args.num_votes < 0 or args.val_freq < 0, '--num_votes and --val_freq must be >= 0'),
        (args.ckpts is not None and not os.path.isfile(args.ckpts), f'--ckpts {args.ckpts}: no such file'),
        (not os.path.isdir(args.root), f'--root {args.root}: no such folder (ShapeNetPart text or HDF5 '
                                       f'layout; demo data: python tools/make_demo_data.py --out data/demo)'),
        (args.learning_rate <= 0, '--learning_rate must be > 0'),
        (args.weight_decay < 0, '--weight_decay must be >= 0'),
        (not 0 <= args.warmup_epoch < args.epoch, '--warmup_epoch must be in [0, --epoch)'),
        (args.batch_size < 1 or args.npoint < 1, '--batch_size and --npoint must be >= 1'),
    ]
    return next((reason for bad, reason in rules if bad), None)


def parse_args(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.config:
        try:
            parser.set_defaults(**config_defaults(parser, args.config))
        except ConfigError as e:
            parser.exit(2, f'trainpartseg.py: error: {e}\n')
        args = parser.parse_args(argv)
    resolve_sections(args)
    reason = contradiction(args)
    if reason:
        parser.exit(2, f'trainpartseg.py: error: {reason}\n')
    return args


def mode_of(args):
    return 'partseg_test' if args.test else 'dense_probe' if args.svm else 'partseg'


def experiment_path(args):
    """``<exp>/partseg/<log_dir>``, with ``test/`` or ``dense_probe/`` below it for the evaluations."""
    path = os.path.join(args.exp, 'partseg', args.log_dir)
    sub = {'partseg_test': 'test', 'dense_probe': 'dense_probe'}.get(mode_of(args))
    return os.path.join(path, sub) if sub else path


def main(argv=None):
    args = parse_args(argv)
    try:
        config = runner_partseg.seg_config(learning_rate=args.learning_rate, weight_decay=args.weight_decay,
                                           epoch=args.epoch, warmup_epoch=args.warmup_epoch,
                                           batch_size=args.batch_size, npoint=args.npoint, model=args.model,
                                           dataset=args.dataset)
        device_type = resolve_device(args.device)
    except (ConfigError, ValueError) as e:
        raise SystemExit(f'trainpartseg.py: error: {e}') from None
    path = experiment_path(args)
    local_rank = dist.init_distributed(args.launcher, device_type)
    device = torch.device(device_type, local_rank) if device_type == 'cuda' else torch.device('cpu')
    ctx = RunContext(device=device, experiment_path=path, mode=mode_of(args), seed=args.seed, rank=dist.get_rank(),
                     world_size=dist.get_world_size(), local_rank=local_rank, resume=args.resume,
                     val_freq=args.val_freq, ckpts=args.ckpts, scratch=not args.ckpts, num_workers=args.num_workers)
    seed_everything(ctx.seed + ctx.rank)
    folder_args = argparse.Namespace(experiment_path=path, mode=ctx.mode, fold=None, resume=args.resume)
    try:
        with contextlib.ExitStack() as stack:  # holds the experiment lock until the run ends
            notes = open_experiment(path, config, stack, resume=args.resume, allow_changes=args.allow_changes,
                                    check=lambda: check_experiment(folder_args, 'trainpartseg.py'),
                                    prog='trainpartseg.py')
            logger = get_logger('maskclu', ctx.path('log.txt') if ctx.is_main else None)
            logger.info('command: %s', ' '.join(sys.argv if argv is None else ['trainpartseg.py', *argv]))
            logger.info('experiment folder: %s | mode: %s | device: %s | world size: %d', path, ctx.mode, device,
                        ctx.world_size)
            for line in notes:
                logger.warning(line)
            try:
                result = runner_partseg.run(ctx, config, logger, num_votes=args.num_votes)
                dist.barrier()
                return result
            except USER_ERRORS as e:
                logger.error('%s: %s', type(e).__name__, e)
                raise SystemExit(f'trainpartseg.py: error: {e}') from None
    finally:
        dist.cleanup_distributed()


if __name__ == '__main__':
    main()
