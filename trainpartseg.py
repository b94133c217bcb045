"""Part segmentation on ShapeNetPart (command of the original MaskClu README).

    python trainpartseg.py --ckpts <pretrained.pth> --root path/to/data --learning_rate 0.0002 --epoch 300

Every flag can also come from ``--config file.yaml`` holding the same keys; a flag given on the
command line wins over the file. This release parses and validates the flags and the config;
the part-segmentation runner arrives with the part-segmentation release.
"""
import argparse
import os
import sys

from utils.config import ConfigError, load_yaml
from utils.registry import unknown_name_message


def build_parser():
    p = argparse.ArgumentParser(description='MaskClu part segmentation on ShapeNetPart.')
    p.add_argument('--config', default=None, help='optional YAML with any of the keys below')
    p.add_argument('--ckpts', default=None, help='pre-trained checkpoint (or, with --test, a segmentation one)')
    p.add_argument('--root', default='data/shapenetcore_partanno_segmentation_benchmark_v0_normal/',
                   help='ShapeNetPart folder (text or HDF5 layout)')
    p.add_argument('--learning_rate', type=float, default=2e-4)
    p.add_argument('--epoch', type=int, default=300)
    p.add_argument('--warmup_epoch', type=int, default=10)
    p.add_argument('--batch_size', type=int, default=16)
    p.add_argument('--npoint', type=int, default=2048)
    p.add_argument('--log_dir', default=None, help='experiment folder name under exps/partseg/')
    p.add_argument('--test', action='store_true', help='evaluate the segmentation checkpoint in --ckpts')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--num_workers', type=int, default=4)
    p.add_argument('--device', choices=['auto', 'cpu', 'cuda'], default='auto')
    p.add_argument('--launcher', choices=['none', 'pytorch'], default='none')
    return p


def config_defaults(parser, path):
    """Keys of the YAML at ``path`` as parser defaults; unknown keys are errors."""
    values = load_yaml(path)
    accepted = {a.dest for a in parser._actions if a.dest not in ('help', 'config')}
    for key in values:
        if key not in accepted:
            raise ConfigError(f'{path}: ' + unknown_name_message('key', key, accepted))
    return values


def contradiction(args):
    """A one-line reason why the flags cannot go together, or None."""
    rules = [
        (args.test and not args.ckpts, '--test needs --ckpts <segmentation checkpoint>'),
        (args.ckpts is not None and not os.path.isfile(args.ckpts), f'--ckpts {args.ckpts}: no such file'),
        (not os.path.isdir(args.root), f'--root {args.root}: no such folder (ShapeNetPart text or HDF5 '
                                       f'layout; demo data: python tools/make_demo_data.py --out data/demo)'),
        (args.learning_rate <= 0, '--learning_rate must be > 0'),
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
    reason = contradiction(args)
    if reason:
        parser.exit(2, f'trainpartseg.py: error: {reason}\n')
    return args


def main(argv=None):
    parse_args(argv)
    sys.exit('trainpartseg.py: the part-segmentation runner is not part of this release '
             '(flags and config were checked)')


if __name__ == '__main__':
    main()
