"""Turn your own meshes into a dataset the loaders and configs read (ShapeNet-55 or ModelNet layout).

    python tools/prepare_dataset.py --meshes <folder> --layout shapenet55|modelnet --out <folder> \\
        [--points 8192] [--seed 0] [--test_fraction 0.2] [--workers N] [--overwrite]

<folder>/<class>/**/*.{obj,off,ply,stl}: the class is the sub-folder name; a class folder with
train/ and test/ sub-folders keeps that split, other meshes are split per class at random
(deterministic in --seed). Each mesh gives --points surface points (area-weighted, with normals,
seeded). Unreadable or empty meshes are skipped, printed and listed in <out>/prepare_report.txt.
<out>/dataset.yaml is a dataset config for the result, e.g. in a config:

    dataset:
      train: {_base_: <out>/dataset.yaml, others: {subset: train, npoints: 1024}}

See datasets/own_data.py for the exact layouts.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from datasets.files import DatasetError  # noqa: E402
from datasets.own_data import LAYOUTS, prepare_dataset  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--meshes', required=True, help='folder with one sub-folder of meshes per class')
    p.add_argument('--layout', required=True, choices=LAYOUTS)
    p.add_argument('--out', required=True, help='output folder (must be empty or new, unless --overwrite)')
    p.add_argument('--points', type=int, default=8192, help='surface points per shape (default 8192)')
    p.add_argument('--seed', type=int, default=0, help='seed of the splits and of the surface sampling')
    p.add_argument('--test_fraction', type=float, default=0.2,
                   help='share of each class in the test split, for classes without train/ and test/ folders')
    p.add_argument('--workers', type=int, default=None, help='sampling processes (default: CPU count, at most 8)')
    p.add_argument('--overwrite', action='store_true', help='write into a non-empty --out')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.points < 1:
        raise SystemExit(f'prepare_dataset.py: error: --points {args.points}: expected a positive count')
    try:
        summary = prepare_dataset(args.meshes, args.layout, args.out, args.points, args.seed,
                                  args.test_fraction, args.workers, args.overwrite)
    except DatasetError as e:
        raise SystemExit(f'prepare_dataset.py: error: {e}')
    for _, reason in summary['skipped']:
        print(f'skipped: {reason}', file=sys.stderr)
    counts = summary['counts']
    print(f"{args.out}: {len(summary['classes'])} classes, train {counts['train']}, test {counts['test']} shapes; "
          f"{len(summary['skipped'])} skipped, {len(summary['ignored'])} other files ignored "
          f"(listed in {summary['report']})")
    print(f"dataset config: {summary['config']}")


if __name__ == '__main__':
    main()
