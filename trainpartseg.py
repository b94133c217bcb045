"""Part segmentation on ShapeNetPart (command of the original MaskClu README).

    python trainpartseg.py --ckpts <pretrained.pth> --root path/to/data --learning_rate 0.0002 --epoch 300

Every flag can also come from ``--config file.yaml`` holding the same keys (``_base_`` inheritance
as in the main configs); a flag given on the command line wins over the file. The file may also
hold a ``model`` section (``PartSegmentation`` keys, see cfgs/partseg.yaml) and a ``dataset``
entry (``ShapeNetPart``: DATA_PATH, LAYOUT); ``--root`` replaces the entry's DATA_PATH. This
release parses and validates the flags and the config; the part-segmentation runner arrives
with the part-segmentation release.
"""
import argparse
import os
import sys

from datasets import check_dataset_config
from models import check_model_config
from utils.config import ConfigError, load_config
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
    p.add_argument('--log_dir', default=None, help='experiment folder name under exps/partseg/')
    p.add_argument('--test', action='store_true', help='evaluate the segmentation checkpoint in --ckpts')
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
        (args.test and not args.ckpts, '--test needs --ckpts <segmentation checkpoint>'),
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


def main(argv=None):
    parse_args(argv)
    sys.exit('trainpartseg.py: the part-segmentation runner is not part of this release '
             '(flags and config were checked)')


if __name__ == '__main__':
    main()
