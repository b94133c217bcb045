"""Figures of runs and encoders: PNG with matplotlib (object API on the Agg canvas, so importing
this module changes no global backend) and interactive, self-contained HTML with plotly.

Point-cloud figures are lists of ``Panel(title, points (N, 3), colors (N, 3) RGB in [0, 1])``
drawn side by side; the ``*_panels`` functions build them for each kind of view and
``save_png`` / ``save_html`` draw any list. The vertical axis of every cloud is y (ShapeNet's up).
Other figures: ``plot_loss_curves`` (a run's ``metrics.jsonl``), ``plot_tsne`` (global features).
"""
import json
import os
from typing import NamedTuple

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from utils.io import atomic_write

# Bookkeeping fields of metrics.jsonl that are not curves.
NOT_CURVES = frozenset({'tag', 'step', 'epoch', 'time', 'lr', 'samples_per_s', 'epoch_time_s', 'skipped_steps'})
MASKED_GREY, VISIBLE_BLUE, TARGET_GREEN, PREDICTED_RED = (0.75, 0.75, 0.75), (0.2, 0.4, 0.8), (0.2, 0.7, 0.3), (0.85, 0.2, 0.2)


class Panel(NamedTuple):
    """A cloud to draw: points (N, 3), colors (N, 3) RGB in [0, 1], optional sizes (N,) (marker area
    in the PNG; None: the figure's point size)."""
    title: str
    points: np.ndarray
    colors: np.ndarray
    sizes: np.ndarray = None


# ------------------------------------------------------------------------ colours

def label_colors(labels):
    """Integer labels (N,) -> RGB colours (N, 3): tab20's ten strong colours, then its ten light
    ones, cycled (neighbouring labels never get a colour and its light twin)."""
    colors = np.asarray(matplotlib.colormaps['tab20'].colors)
    table = np.concatenate([colors[0::2], colors[1::2]])
    return table[np.asarray(labels, dtype=np.int64) % len(table)]


def pca_rgb(features):
    """Features (..., C) -> RGB (..., 3): the first 3 principal components, each scaled to [0, 1]
    over all the given points (so clouds passed together share one colour basis)."""
    flat = np.asarray(features, dtype=np.float64).reshape(-1, np.shape(features)[-1])
    centred = flat - flat.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    comps = centred @ vt[:3].T
    comps = np.pad(comps, ((0, 0), (0, 3 - comps.shape[1])))  # fewer than 3 channels
    low, high = comps.min(axis=0), comps.max(axis=0)
    rgb = (comps - low) / np.where(high > low, high - low, 1.0)
    return rgb.reshape(*np.shape(features)[:-1], 3)


def uniform(points, rgb):
    return np.tile(np.asarray(rgb, dtype=np.float64), (len(points), 1))


# ------------------------------------------------------------------------- panels

def cluster_panels(points, labels, cluster_centers=None, masked=None, title='clusters'):
    """A cloud (N, 3) coloured by cluster (N,) and, when given, its patch centers (G, 3) with
    the masked ones (G,) grey and the cluster centers (P, 3) in their cluster's colour."""
    labels = np.asarray(labels)
    panels = [Panel(f'{title} ({len(np.unique(labels))} used)', points, label_colors(labels))]
    if cluster_centers is not None:
        centers = np.asarray(cluster_centers)
        panels.append(Panel('cluster centers', np.concatenate([points, centers]),
                            np.concatenate([uniform(points, MASKED_GREY), label_colors(np.arange(len(centers)))]),
                            np.concatenate([np.full(len(points), 1.0), np.full(len(centers), 40.0)])))
    if masked is not None:
        panels[0] = panels[0]._replace(title=f'{panels[0].title}, {int(np.sum(masked))} patches masked')
    return panels


def pca_panels(points, features, title='PCA of per-point features'):
    """Clouds (K, N, 3) or (N, 3) coloured by a shared 3-component PCA of features (..., N, C)."""
    points, features = np.asarray(points), np.asarray(features)
    if points.ndim == 2:
        points, features = points[None], features[None]
    rgb = pca_rgb(features)
    return [Panel(title if len(points) == 1 else f'{title} #{i}', p, c) for i, (p, c) in enumerate(zip(points, rgb))]


def parts_panels(points, pred, true):
    """Ground truth, prediction and errors (wrong points red) of a part segmentation of (N, 3)."""
    pred, true = np.asarray(pred), np.asarray(true)
    if not len(pred) == len(true) == len(points):
        raise ValueError(f"points {len(points)}, pred {len(pred)} and true {len(true)} labels must have one length")
    wrong = pred != true
    errors = np.where(wrong[:, None], PREDICTED_RED, MASKED_GREY)
    return [Panel('true parts', points, label_colors(true)), Panel('predicted parts', points, label_colors(pred)),
            Panel(f'errors: {wrong.mean():.1%} of points wrong', points, errors)]


def reconstruction_panels(visible, target, predicted, chamfer=None):
    """Masked-patch reconstruction: visible (V, S, 3), target and predicted (M, S, 3) patches."""
    vis, tgt, pred = (np.asarray(a).reshape(-1, 3) for a in (visible, target, predicted))
    score = '' if chamfer is None else f' (Chamfer-L2 {float(chamfer):.4f})'
    return [Panel('input', np.concatenate([vis, tgt]),
                  np.concatenate([uniform(vis, VISIBLE_BLUE), uniform(tgt, VISIBLE_BLUE)])),
            Panel(f'visible ({len(visible)} patches)', vis, uniform(vis, VISIBLE_BLUE)),
            Panel(f'reconstruction of {len(target)} masked patches{score}', np.concatenate([vis, pred]),
                  np.concatenate([uniform(vis, MASKED_GREY), uniform(pred, PREDICTED_RED)])),
            Panel('masked patches (truth)', np.concatenate([vis, tgt]),
                  np.concatenate([uniform(vis, MASKED_GREY), uniform(tgt, TARGET_GREEN)]))]


# ------------------------------------------------------------------------- output

def save_figure(fig, out):
    """Write a matplotlib ``Figure`` as PNG, atomically; returns ``out``."""
    FigureCanvasAgg(fig)
    with atomic_write(out) as f:
        fig.savefig(f, format='png', dpi=120, bbox_inches='tight')
    return out


def save_png(panels, out, point_size=2.0, title=None):
    """Draw the panels side by side (3-D scatter, y up, equal axes) into a PNG."""
    fig = Figure(figsize=(4 * len(panels), 4.2))
    for i, panel in enumerate(panels, start=1):
        ax = fig.add_subplot(1, len(panels), i, projection='3d')
        p = np.asarray(panel.points, dtype=np.float64)
        sizes = point_size if panel.sizes is None else panel.sizes
        ax.scatter(p[:, 0], p[:, 2], p[:, 1], c=np.clip(panel.colors, 0, 1), s=sizes, depthshade=False,
                   linewidths=0)
        middle, half = (p.max(0) + p.min(0)) / 2, max((p.max(0) - p.min(0)).max() / 2, 1e-6)
        ax.set_xlim(middle[0] - half, middle[0] + half)
        ax.set_ylim(middle[2] - half, middle[2] + half)
        ax.set_zlim(middle[1] - half, middle[1] + half)
        ax.set_box_aspect((1, 1, 1))
        ax.view_init(elev=20, azim=-60)
        ax.set_axis_off()
        ax.set_title(panel.title, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    return save_figure(fig, out)


def save_html(panels, out, title=''):
    """The panels as one interactive, self-contained HTML page (plotly.js inlined, works offline)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
    fig = make_subplots(rows=1, cols=len(panels), specs=[[{'type': 'scene'}] * len(panels)],
                        subplot_titles=[p.title for p in panels])
    for i, panel in enumerate(panels, start=1):
        p = np.round(np.asarray(panel.points, dtype=np.float64), 4)
        rgb = (np.clip(panel.colors, 0, 1) * 255).round().astype(int)
        fig.add_trace(go.Scatter3d(x=p[:, 0].tolist(), y=p[:, 2].tolist(), z=p[:, 1].tolist(), mode='markers',
                                   name=panel.title, marker={'size': 2 if panel.sizes is None else np.clip(
                                       np.sqrt(panel.sizes) * 1.5, 2, 10).round(1).tolist(),
                                       'color': [f'rgb({r},{g},{b})' for r, g, b in rgb]}),
                      row=1, col=i)
    fig.update_scenes(aspectmode='data', xaxis_title='x', yaxis_title='z', zaxis_title='y (up)')
    fig.update_layout(title=title, showlegend=False, height=600, width=max(600, 500 * len(panels)))
    with atomic_write(out, 'w') as f:
        f.write(fig.to_html(include_plotlyjs=True, full_html=True))
    return out


# --------------------------------------------------------------------- run curves

def read_metrics(path):
    """Records of a run's ``metrics.jsonl`` (a file or the run folder); after a resume the last
    record of each (tag, step) wins, as the writer documents."""
    if os.path.isdir(path):
        path = os.path.join(path, 'metrics.jsonl')
    records = {}
    with open(path) as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{number}: not a JSON object ({e})") from None
                records[(record.get('tag'), record.get('step'))] = record
    return sorted(records.values(), key=lambda r: (r.get('tag', ''), r.get('step', 0)))


def plot_loss_curves(metrics, out, title=None):
    """One panel per metric of a run (each loss term, ``loss``, probes like ``svm_acc``): the
    per-epoch train means and the ``val_`` values by epoch; a run without epoch records
    (stopped in its first epoch) shows the logged train steps instead. Returns ``out``."""
    records = read_metrics(metrics)
    epochs = [r for r in records if r.get('tag') == 'epoch']
    rows, x_name = (epochs, 'epoch') if epochs else ([r for r in records if r.get('tag') == 'train'], 'step')
    names = []
    for r in rows:
        names += [k.removeprefix('val_') for k in r if k not in NOT_CURVES and k.removeprefix('val_') not in names]
    names.sort(key=lambda n: n != 'loss')
    if not names:
        raise ValueError(f"{metrics}: no metric to plot")
    cols = min(3, len(names))
    fig = Figure(figsize=(4.2 * cols, 3.2 * ((len(names) + cols - 1) // cols)))
    for i, name in enumerate(names, start=1):
        ax = fig.add_subplot((len(names) + cols - 1) // cols, cols, i)
        for key, label, style in ((name, 'train', '-'), (f'val_{name}', 'val', '--')):
            xy = [(r[x_name], r[key]) for r in rows if r.get(key) is not None]
            if xy:
                ax.plot(*zip(*xy), style, marker='.' if len(xy) < 40 else None, label=label)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(x_name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, out)


def tsne_embedding(features, seed=0):
    """2-D t-SNE (scikit-learn, PCA init, seeded) of features (n, D) -> (n, 2)."""
    from sklearn.manifold import TSNE
    features = np.asarray(features, dtype=np.float64)
    if len(features) < 3:
        raise ValueError(f"t-SNE needs at least 3 shapes, got {len(features)}")
    return TSNE(2, perplexity=min(30.0, (len(features) - 1) / 3), init='pca', random_state=seed).fit_transform(features)


def plot_tsne(embedding, labels, out, title='t-SNE of global features'):
    """Scatter of a 2-D embedding (n, 2) coloured by class name (n,) (legend up to 20 classes)."""
    labels = np.asarray(labels).astype(str)
    classes = sorted(set(labels))
    fig = Figure(figsize=(6.5, 5.5))
    ax = fig.add_subplot(1, 1, 1)
    for i, name in enumerate(classes):
        pick = labels == name
        ax.scatter(embedding[pick, 0], embedding[pick, 1], s=10, color=label_colors([i])[0], label=name)
    if len(classes) <= 20:
        ax.legend(fontsize=7, markerscale=1.5, loc='center left', bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.set_title(f'{title} ({len(labels)} shapes, {len(classes)} classes)', fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    return save_figure(fig, out)


def save_tsne_html(embedding, labels, names, out, title='t-SNE of global features'):
    """The embedding as an interactive page: one trace per class, each point's name on hover."""
    import plotly.graph_objects as go
    labels, names = np.asarray(labels).astype(str), np.asarray(names).astype(str)
    fig = go.Figure()
    for i, name in enumerate(sorted(set(labels))):
        pick = labels == name
        r, g, b = (label_colors([i])[0] * 255).round().astype(int)
        fig.add_trace(go.Scatter(x=np.round(embedding[pick, 0], 4).tolist(), y=np.round(embedding[pick, 1], 4).tolist(),
                                 mode='markers', name=name, text=names[pick].tolist(),
                                 marker={'size': 6, 'color': f'rgb({r},{g},{b})'}))
    fig.update_layout(title=title, height=700, width=900)
    with atomic_write(out, 'w') as f:
        f.write(fig.to_html(include_plotlyjs=True, full_html=True))
    return out
