"""Extract encoder features of point clouds or meshes with any checkpoint (``models.features``).

    python tools/extract_features.py --ckpts ckpt.pth --input <folder|file> --out feats.npz \\
        [--npoints 1024] [--batch 32] [--device auto] [--patches] [--per_point] [--point_blocks 4,8,12]

Reads npy/txt/xyz/pts point clouds and obj/off/ply/stl meshes (folders recursively; meshes are
sampled on the surface with trimesh, ``--surface_points`` points, seeded by ``--seed`` and the
file name). Each cloud is ``pc_normalize``d and brought to ``--npoints`` by farthest point
sampling. The ``.npz`` holds ``names`` (paths relative to --input), ``global_features``
(n, 2C), with ``--patches`` ``patch_tokens`` (n, G, C) and ``centers`` (n, G, 3), with
``--per_point`` ``points`` (n, npoints, 3) and ``point_features`` (n, npoints, C'), plus
``skipped`` / ``skipped_reasons`` for the files that could not be read (also printed).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402
from tqdm import tqdm  # noqa: E402

from datasets.files import DatasetError  # noqa: E402
from datasets.meshes import SHAPE_EXTS, list_shapes, model_input, shape_rng  # noqa: E402
from models.features import load_encoder  # noqa: E402
from utils.checkpoint import CheckpointError  # noqa: E402
from utils.io import atomic_write  # noqa: E402
from utils.misc import resolve_device  # noqa: E402


class ShapeFiles(Dataset):
    """Item i: (i, cloud (npoints, 3) tensor or None, the reason it could not be read or None)."""

    def __init__(self, root, names, npoints, surface_points=8192, seed=0):
        self.root, self.names = root, names
        self.npoints, self.surface_points, self.seed = npoints, surface_points, seed

    def __len__(self):
        return len(self.names)

    def __getitem__(self, i):
        path = os.path.join(self.root, self.names[i]) if self.root else self.names[i]
        try:
            cloud = model_input(path, self.npoints, self.surface_points, shape_rng(self.seed, self.names[i]))
        except DatasetError as e:
            return i, None, str(e)
        return i, torch.from_numpy(cloud), None


def input_files(path):
    """(root, names): every supported file under a folder, or the one file given."""
    if os.path.isdir(path):
        names = list_shapes(path)
        if not names:
            raise DatasetError(f"--input {path}: no {'/'.join(SHAPE_EXTS)} files in this folder")
        return path, names
    if not os.path.isfile(path):
        raise DatasetError(f"--input {path}: no such file or folder")
    return '', [path]


def shape_loader(path, npoints, batch, workers=0, surface_points=8192, seed=0):
    """A DataLoader of lists of ``ShapeFiles`` items over the files of ``input_files(path)``."""
    root, names = input_files(path)
    return DataLoader(ShapeFiles(root, names, npoints, surface_points, seed), batch_size=batch,
                      num_workers=workers, collate_fn=list)


@torch.inference_mode()
def extract(encoder, loader, device, patches=False, per_point=False, point_blocks=None):
    """Run ``encoder`` over ``loader``; returns (dict of numpy arrays, skipped [(name, reason)])."""
    names = loader.dataset.names
    out = {'names': [], 'global_features': []}
    if patches:
        out.update(patch_tokens=[], centers=[])
    if per_point:
        out.update(points=[], point_features=[])
    skipped = []
    with tqdm(total=len(names), unit='shape', desc='extracting') as bar:
        for items in loader:
            skipped += [(names[i], reason) for i, _, reason in items if reason is not None]
            good = [(i, cloud) for i, cloud, _ in items if cloud is not None]
            bar.update(len(items))
            if not good:
                continue
            points = torch.stack([cloud for _, cloud in good]).to(device)
            feats = encoder(points, per_point=per_point, point_blocks=point_blocks)
            out['names'] += [names[i] for i, _ in good]
            out['global_features'].append(feats.global_feature.float().cpu())
            if patches:
                out['patch_tokens'].append(feats.patch_tokens.float().cpu())
                out['centers'].append(feats.centers.float().cpu())
            if per_point:
                out['points'].append(points.float().cpu())
                out['point_features'].append(feats.point_features.float().cpu())
    arrays = {k: np.array(v) if k == 'names' else torch.cat(v).numpy() for k, v in out.items() if v}
    return arrays, skipped


def save_features(path, arrays, skipped, **meta):
    """Write the npz atomically: ``arrays``, ``skipped`` names and reasons, and ``meta`` strings."""
    arrays = dict(arrays, skipped=np.array([n for n, _ in skipped], dtype=str),
                  skipped_reasons=np.array([r for _, r in skipped], dtype=str),
                  **{k: np.array(str(v)) for k, v in meta.items()})
    with atomic_write(path) as f:
        np.savez(f, **arrays)


def parse_point_blocks(text):
    try:
        return tuple(int(b) for b in text.split(',')) if text else None
    except ValueError:
        raise argparse.ArgumentTypeError(f"--point_blocks {text!r}: expected block counts like 4,8,12") from None


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--ckpts', required=True, help='checkpoint: ours, Point-MAE, Point-BERT or released MaskClu')
    p.add_argument('--input', required=True, help='a point-cloud / mesh file, or a folder of them (recursive)')
    p.add_argument('--out', required=True, help='output .npz')
    p.add_argument('--npoints', type=int, default=1024, help='points per cloud fed to the encoder (FPS)')
    p.add_argument('--batch', type=int, default=32)
    p.add_argument('--device', choices=('auto', 'cpu', 'cuda'), default='auto')
    p.add_argument('--workers', type=int, default=0, help='reader processes (0: read in this process)')
    p.add_argument('--patches', action='store_true', help='also store patch tokens and their centers')
    p.add_argument('--per_point', action='store_true', help='also store per-point features and the points')
    p.add_argument('--point_blocks', type=parse_point_blocks, default=None,
                   help='per-point features from these blocks, concatenated (e.g. 4,8,12); default the last')
    p.add_argument('--num_group', type=int, help='G, when the checkpoint carries no config (default 64)')
    p.add_argument('--group_size', type=int, help='S, when the checkpoint carries no config (default 32)')
    p.add_argument('--num_heads', type=int, help='attention heads, when the checkpoint carries no config (default 6)')
    p.add_argument('--surface_points', type=int, default=8192, help='points sampled on each mesh before FPS')
    p.add_argument('--seed', type=int, default=0, help='seed of the mesh surface sampling')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        device = resolve_device(args.device)
        encoder = load_encoder(args.ckpts, num_group=args.num_group, group_size=args.group_size,
                               num_heads=args.num_heads, device=device)
        loader = shape_loader(args.input, args.npoints, args.batch, args.workers, args.surface_points, args.seed)
        arrays, skipped = extract(encoder, loader, device, args.patches, args.per_point, args.point_blocks)
    except (CheckpointError, DatasetError, ValueError) as e:
        raise SystemExit(f'extract_features.py: error: {e}')
    for name, reason in skipped:
        print(f'skipped {name}: {reason}', file=sys.stderr)
    if 'global_features' not in arrays:
        raise SystemExit(f'extract_features.py: error: none of the {len(skipped)} input files could be read')
    save_features(args.out, arrays, skipped, checkpoint=args.ckpts, npoints=args.npoints,
                  encoder=encoder.spec.describe())
    shapes = ', '.join(f'{k} {v.shape}' for k, v in arrays.items() if k != 'names')
    print(f"{args.out}: {len(arrays['names'])} shapes ({shapes}); {len(skipped)} skipped")


if __name__ == '__main__':
    main()
