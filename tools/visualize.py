"""Look at what an encoder learned: figures (PNG) and interactive 3-D views (self-contained HTML).

    python tools/visualize.py --kind clusters --ckpts <pretrain.pth> --input <cloud or mesh> --out c.png [--html]
    python tools/visualize.py --kind pca --ckpts <any.pth> --input <cloud, mesh or folder> --out p.png
    python tools/visualize.py --kind reconstruction --ckpts <pointmae.pth> --input <cloud> --out r.png
    python tools/visualize.py --kind parts --input <shape.txt: x y z [nx ny nz] part> --pred <labels> --out s.png
    python tools/visualize.py --kind tsne --ckpts <any.pth> --input <folder | dataset.yaml> --out t.png

Kinds: ``clusters`` — every point coloured by the cluster the dense head assigns its patch (MaskClu
pre-training checkpoints), beside the soft cluster centers; ``pca`` — a 3-component PCA of the
per-point features (patch features propagated to the points) as RGB, shared by all the clouds of
a folder (the paper's Figure 5; any checkpoint kind); ``reconstruction`` — masked patches and
their prediction (Point-MAE baseline, or any objective with a reconstruction term); ``parts`` —
predicted vs true part labels; ``tsne`` — global features of a folder (class = first sub-folder)
or of a dataset config (``--subset``), coloured by class. ``--html`` also writes the interactive
view next to the PNG (same name, .html). Clouds are ``pc_normalize``d and brought to
``--npoints`` by FPS (default: the checkpoint's training ``npoints``, else 1024); masks and mesh
sampling are drawn from ``--seed``.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from datasets.files import DatasetError, read_lines, read_npy, read_text_array  # noqa: E402
from datasets.meshes import SHAPE_EXTS, list_shapes, model_input, shape_rng  # noqa: E402
from models.analysis import cluster_assignment, load_pretraining_model, masked_reconstruction  # noqa: E402
from models.features import load_encoder  # noqa: E402
from tools import plots  # noqa: E402
from utils.checkpoint import CheckpointError, load_checkpoint  # noqa: E402
from utils.config import ConfigError  # noqa: E402
from utils.misc import resolve_device  # noqa: E402
from utils.transforms import fps_downsample  # noqa: E402

KINDS = ('clusters', 'pca', 'parts', 'reconstruction', 'tsne')
DEFAULTS = {'html': False, 'npoints': None, 'seed': 0, 'mask_ratio': None, 'point_blocks': None, 'num_group': None,
            'group_size': None, 'num_heads': None, 'pred': None, 'subset': 'test', 'max_shapes': 1000,
            'max_clouds': 4, 'batch': 32, 'device': 'cpu'}


def visualize(kind, ckpts, input, out, **options):
    """Make the ``kind`` figure of checkpoint ``ckpts`` (a path; unused for ``parts``) on ``input``
    into the PNG ``out`` (and ``out`` with .html when ``html``); returns the paths written.
    ``options``: the keys of ``DEFAULTS`` (the command-line flags)."""
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"visualize: unknown options {sorted(unknown)}; accepted: {sorted(DEFAULTS)}")
    opts = {**DEFAULTS, **options}
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}; accepted: {', '.join(KINDS)}")
    if kind != 'parts' and not ckpts:
        raise ValueError(f"--kind {kind} needs --ckpts")
    ckpt = load_checkpoint(ckpts) if kind != 'parts' else None
    opts['source'] = ckpts
    if kind == 'tsne':
        return tsne_figure(ckpt, ckpts, input, out, opts)
    panels, title = PANELS[kind](ckpt, input, opts)
    written = [plots.save_png(panels, out, title=title)]
    if opts['html']:
        written.append(plots.save_html(panels, os.path.splitext(out)[0] + '.html', title=title))
    return written


def training_npoints(ckpt, opts):
    """``--npoints``, else the ``npoints`` the checkpoint was trained with, else 1024."""
    config = ckpt.get('config') if isinstance(ckpt, dict) else None
    stored = config.get('npoints') if isinstance(config, dict) else None
    return opts['npoints'] or stored or 1024


def pretraining_model(ckpt, opts):
    return load_pretraining_model(ckpt, opts['device'], num_group=opts['num_group'], num_heads=opts['num_heads'],
                                  source=opts['source'])


def feature_encoder(ckpt, opts):
    return load_encoder(ckpt, num_group=opts['num_group'], group_size=opts['group_size'], num_heads=opts['num_heads'],
                        device=opts['device'], source=opts['source'])


def read_cloud_input(path, npoints, seed):
    """One file -> points (1, npoints, 3) (normalised, FPS) and its display name."""
    if os.path.isdir(path):
        raise DatasetError(f"--input {path} is a folder; this kind takes one cloud or mesh file")
    cloud = model_input(path, npoints, rng=shape_rng(seed, os.path.basename(path)))
    return torch.from_numpy(cloud)[None], os.path.basename(path)


def cluster_panels(ckpt, input, opts):
    model, config = pretraining_model(ckpt, opts)
    points, name = read_cloud_input(input, training_npoints(ckpt, opts), opts['seed'])
    view = cluster_assignment(model, config, points.to(opts['device']), opts['mask_ratio'], opts['seed'])
    masked = view.masked[0].cpu().numpy()
    panels = plots.cluster_panels(points[0].numpy(), view.point_labels[0].cpu().numpy(),
                                  view.cluster_centers[0].cpu().numpy(), masked if masked.any() else None)
    return panels, f"{name}: cluster assignment of the dense head (P={view.assignment.shape[-1]})"


def pca_panels(ckpt, input, opts):
    encoder = feature_encoder(ckpt, opts)
    npoints = training_npoints(ckpt, opts)
    if os.path.isdir(input):
        clouds, _, names = folder_clouds(input, npoints, {**opts, 'max_shapes': None}, limit=opts['max_clouds'])
        points, paths = torch.stack(clouds), names
    else:
        points, paths = read_cloud_input(input, npoints, opts['seed'])[0], [input]
    with torch.inference_mode():
        feats = encoder(points.to(opts['device']), point_blocks=opts['point_blocks']).point_features
    panels = plots.pca_panels(points.numpy(), feats.float().cpu().numpy())
    panels = [p._replace(title=os.path.basename(path)) for p, path in zip(panels, paths)]
    blocks = f"blocks {','.join(map(str, opts['point_blocks']))}" if opts['point_blocks'] else 'last block'
    return panels, f"PCA of per-point features ({blocks}, {feats.shape[-1]} channels) as RGB"


def reconstruction_panels(ckpt, input, opts):
    model, config = pretraining_model(ckpt, opts)
    points, name = read_cloud_input(input, training_npoints(ckpt, opts), opts['seed'])
    view = masked_reconstruction(model, config, points.to(opts['device']), opts['mask_ratio'], opts['seed'])
    arrays = [t[0].cpu().numpy() for t in (view.visible, view.target, view.predicted)]
    return plots.reconstruction_panels(*arrays, view.chamfer[0]), f'{name}: masked patches and their reconstruction'


def read_labels(path, what):
    """Integer labels of a .npy or text file (one per point, or the last column of rows)."""
    array = read_npy(path) if path.endswith('.npy') else read_text_array(path, what=what)
    array = np.asarray(array)
    return (array[:, -1] if array.ndim == 2 else array).astype(np.int64), array


def parts_panels(ckpt, input, opts):
    if not opts['pred']:
        raise ValueError('--kind parts needs --pred: the predicted part label of every point of --input')
    true, rows = read_labels(input, 'rows x y z [nx ny nz] part_label')
    if rows.ndim != 2 or rows.shape[1] < 4:
        raise DatasetError(f"{input}: expected rows x y z [nx ny nz] part_label, got shape {rows.shape}")
    pred, _ = read_labels(opts['pred'], 'predicted part labels, one per point')
    points = rows[:, :3] - rows[:, :3].mean(0)
    points /= max(np.linalg.norm(points, axis=1).max(), 1e-12)
    return plots.parts_panels(points, pred, true), f"{os.path.basename(input)}: predicted vs true parts"


PANELS = {'clusters': cluster_panels, 'pca': pca_panels, 'reconstruction': reconstruction_panels,
          'parts': parts_panels}


def tsne_figure(ckpt, ckpts, input, out, opts):
    encoder = feature_encoder(ckpt, opts)
    npoints = training_npoints(ckpt, opts)
    clouds, labels, names = (dataset_clouds(input, opts) if input.endswith(('.yaml', '.yml'))
                             else folder_clouds(input, npoints, opts))
    feats = []
    with torch.inference_mode():
        for start in range(0, len(clouds), opts['batch']):
            batch = torch.stack(clouds[start:start + opts['batch']]).to(opts['device'])
            feats.append(encoder(fps_downsample(batch, npoints), per_point=False).global_feature.float().cpu())
    embedding = plots.tsne_embedding(torch.cat(feats).numpy(), opts['seed'])
    title = f't-SNE of global features ({os.path.basename(ckpts)})'
    written = [plots.plot_tsne(embedding, labels, out, title=title)]
    if opts['html']:
        written.append(plots.save_tsne_html(embedding, labels, names, os.path.splitext(out)[0] + '.html', title))
    return written


def folder_clouds(folder, npoints, opts, limit=None):
    """(clouds, classes, names) of the files under ``folder``: a seeded subset of at most
    ``max_shapes`` (all when None), or the first ``limit`` readable ones. The class of a file is
    its first sub-folder ('.' for files directly in ``folder``). Unreadable files are printed
    and skipped."""
    if not os.path.isdir(folder):
        raise DatasetError(f"--input {folder}: t-SNE takes a folder of shapes or a dataset config (.yaml)")
    names = list_shapes(folder)
    if opts['max_shapes'] is not None and len(names) > opts['max_shapes']:
        keep = np.random.default_rng(opts['seed']).choice(len(names), opts['max_shapes'], replace=False)
        names = [names[i] for i in sorted(keep)]
    clouds, labels, kept = [], [], []
    for name in names:
        if limit is not None and len(clouds) == limit:
            break
        try:
            cloud = model_input(os.path.join(folder, name), npoints, rng=shape_rng(opts['seed'], name))
        except DatasetError as e:
            print(f'skipped: {e}', file=sys.stderr)
            continue
        clouds.append(torch.from_numpy(cloud))
        labels.append(name.split(os.sep)[0] if os.sep in name else '.')
        kept.append(name)
    if not clouds:
        raise DatasetError(f"--input {folder}: no readable {'/'.join(SHAPE_EXTS)} file")
    return clouds, labels, kept


def dataset_clouds(config_path, opts):
    """Clouds and class names of split ``subset`` of a dataset config (a seeded subset of at
    most ``max_shapes`` items), through the real loaders."""
    from datasets import build_dataset
    from utils.config import load_config
    entry = {**load_config(config_path).to_dict(), 'subset': opts['subset']}
    dataset = build_dataset({**entry, 'npoints': entry.get('npoints') or opts['npoints'] or 1024})
    order = np.arange(len(dataset))
    if len(order) > opts['max_shapes']:
        order = np.sort(np.random.default_rng(opts['seed']).choice(len(order), opts['max_shapes'], replace=False))
    names = class_names(entry)
    clouds, labels, ids = [], [], []
    for i in order:
        item = dataset[int(i)]
        if isinstance(item[2], (list, tuple)):  # classification sets: (name, 'sample', (points, label))
            points, label = item[2]
            labels.append(names[label] if names else str(label))
        else:  # ShapeNet: (taxonomy_id, model_id, points)
            points, label = item[2], item[0]
            labels.append(label)
        clouds.append(points[:, :3].float())
        ids.append(f'{labels[-1]} #{i}')
    return clouds, labels, ids


def class_names(entry):
    """Class names of a ModelNet-layout dataset (its shape_names file), else None."""
    names_file = os.path.join(str(entry.get('DATA_PATH', '')), f"modelnet{entry.get('NUM_CATEGORY', 40)}_shape_names.txt")
    return read_lines(names_file) if os.path.isfile(names_file) else None


def parse_blocks(text):
    try:
        return tuple(int(b) for b in text.split(','))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected block counts like 4,8,12") from None


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--kind', required=True, choices=KINDS)
    p.add_argument('--ckpts', help='checkpoint (not needed for --kind parts)')
    p.add_argument('--input', required=True, help='cloud or mesh file; a folder (pca, tsne) or dataset yaml (tsne)')
    p.add_argument('--out', required=True, help='output PNG')
    p.add_argument('--html', action='store_true', help='also write an interactive, self-contained HTML view')
    p.add_argument('--npoints', type=int, help="points fed to the model (default: the checkpoint's npoints, else 1024)")
    p.add_argument('--seed', type=int, default=0, help='masks and mesh sampling')
    p.add_argument('--mask_ratio', type=float, help='clusters / reconstruction: masking (default: as trained; 0: none)')
    p.add_argument('--point_blocks', type=parse_blocks, help='pca: per-point features of these blocks (e.g. 4,8,12)')
    p.add_argument('--pred', help='parts: predicted labels, one per point (.npy or text)')
    p.add_argument('--subset', default='test', help='tsne with a dataset config: the split (default test)')
    p.add_argument('--max_shapes', type=int, default=1000, help='tsne: at most this many shapes (seeded subset)')
    p.add_argument('--max_clouds', type=int, default=4, help='pca with a folder: the first N shapes side by side')
    p.add_argument('--num_group', type=int, help='G, for checkpoints without a config (default 64)')
    p.add_argument('--group_size', type=int, help='S, for checkpoints without a config (default 32)')
    p.add_argument('--num_heads', type=int, help='attention heads, for checkpoints without a config (default 6)')
    p.add_argument('--device', choices=('auto', 'cpu', 'cuda'), default='auto')
    return p.parse_args(argv)


def main(argv=None):
    args = vars(parse_args(argv))
    kind, ckpts, input, out = (args.pop(k) for k in ('kind', 'ckpts', 'input', 'out'))
    try:
        args['device'] = resolve_device(args['device'])
        written = visualize(kind, ckpts, input, out, **args)
    except (CheckpointError, ConfigError, DatasetError, ValueError) as e:
        raise SystemExit(f'visualize.py: error: {e}')
    print('\n'.join(written))


if __name__ == '__main__':
    main()
