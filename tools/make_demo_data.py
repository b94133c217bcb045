"""Write the synthetic demo data sets in the real on-disk layouts.

    python tools/make_demo_data.py --out data/demo [--seed 0] [--size tiny|small|full] [--workers 2]

Same seed and size -> byte-identical files, whatever --workers. Layouts written under --out:
ShapeNet55-34/ (ShapeNet-55), ModelNet/modelnet40_normal_resampled/ (raw txt + FPS caches),
ModelNetFewshot/ (5/10-way x 10/20-shot x 10 folds), shapenetcore_partanno_segmentation_benchmark_v0_normal/
(ShapeNetPart text layout, all 16 categories), ScanObjectNN/main_split{,_nobg}/ (OBJ_BG, PB_T50_RS,
OBJ_ONLY h5 files). Categories per layout: datasets/demo/categories.py; points per cloud:
datasets/demo/generate.py (the demo dataset configs in cfgs/demo/dataset_configs/ agree).
How hard the data is: tools/demo_difficulty.py.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from datasets.demo.categories import CATEGORIES  # noqa: E402
from datasets.demo.generate import SIZES, make_demo_data  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='data/demo', help='output folder (default data/demo)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--size', choices=sorted(SIZES), default='small', help='tiny: for tests; small: default demo')
    parser.add_argument('--workers', type=int, default=min(4, os.cpu_count() or 1),
                        help='processes writing the four layouts side by side (default: min(4, CPUs)); '
                             'the files do not depend on it')
    return parser.parse_args(argv)


def folder_size_mb(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files) / 2 ** 20


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    counts = make_demo_data(args.out, args.seed, args.size, args.workers)
    print(f"demo data ({args.size}, seed {args.seed}) in {args.out}: {len(CATEGORIES)} categories "
          f"({', '.join(c.name for c in CATEGORIES)})")
    for layout, splits in counts.items():
        print(f"  {layout:13s} " + ', '.join(f'{k} {v}' for k, v in splits.items()))
    print(f"  {folder_size_mb(args.out):.0f} MiB on disk, written in {time.perf_counter() - start:.1f} s")


if __name__ == '__main__':
    main()
