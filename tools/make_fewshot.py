"""Write ModelNet40 few-shot folds in the standard layout, for users who lack Point-BERT's files.

    python tools/make_fewshot.py --modelnet data/ModelNet/modelnet40_normal_resampled \\
        --out data/ModelNetFewshot [--points 8192] [--seed 0] [--ways 5 10] [--shots 10 20] \\
        [--folds 10] [--queries 20] [--num_category 40]

Reads the ModelNet FPS caches ``modelnet{K}_{train,test}_{points}pts_fps.dat`` under --modelnet
(built from the raw layout there when missing) and writes ``<out>/{way}way_{shot}shot/{fold}.pkl``,
each ``{'train': [...], 'test': [...]}`` of ``(points (points, 6) float32, label in [0, way),
ModelNet label)``: ``way`` classes drawn at random, ``shot`` training and ``queries`` test shapes
of each (from ModelNet's train and test splits). Fold f of a setting is drawn from
``numpy.random.default_rng([seed, way, shot, f])``, so a seed reproduces every file byte for byte
and the settings do not depend on each other. Files are written atomically. The result reads with
``cfgs/dataset_configs/ModelNet40FewShot.yaml`` (DATA_PATH = --out, N_POINTS = --points).
Note: these are NOT Point-BERT's published folds; numbers on them compare only among themselves.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from datasets.files import DatasetError, require_dir  # noqa: E402
from datasets.modelnet_cache import ensure_cache, read_cache  # noqa: E402
from datasets.modelnet_fewshot import write_fewshot_folds  # noqa: E402
from datasets.modelnet_raw import LAYOUT  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--modelnet', required=True, help='ModelNet folder (FPS caches or raw layout)')
    p.add_argument('--out', required=True, help='output folder of the {way}way_{shot}shot/ sub-folders')
    p.add_argument('--points', type=int, default=8192, help='points per shape: the cache to read (default 8192)')
    p.add_argument('--num_category', type=int, default=40, choices=(10, 40))
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--ways', type=int, nargs='+', default=[5, 10])
    p.add_argument('--shots', type=int, nargs='+', default=[10, 20])
    p.add_argument('--folds', type=int, default=10)
    p.add_argument('--queries', type=int, default=20, help='test shapes per class (default 20)')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        root = require_dir(args.modelnet, '--modelnet', LAYOUT)
        caches = {split: read_cache(ensure_cache(root, args.num_category, split, args.points), args.points,
                                    args.num_category) for split in ('train', 'test')}
        paths = write_fewshot_folds(caches['train'], caches['test'], args.out, args.seed, tuple(args.ways),
                                    tuple(args.shots), args.folds, args.queries)
    except DatasetError as e:
        raise SystemExit(f'make_fewshot.py: error: {e}') from None
    print(f"wrote {len(paths)} fold files under {args.out} (ways {args.ways}, shots {args.shots}, "
          f"{args.folds} folds, {args.queries} queries per class, seed {args.seed})")
    return paths


if __name__ == '__main__':
    main()
