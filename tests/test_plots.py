"""tools/plots.py, tools/report.py and tools/visualize.py: non-empty pictures, HTML holding the data,
Markdown reports with their tables and links, every --kind of the command on tiny checkpoints."""
import json
import os
import re

import numpy as np
import pytest
import trimesh
from matplotlib.image import imread

from test_analysis import one_view_maskclu, point_mae, save
from test_features import ours_pretrain
from tools import plots
from tools.report import markdown_table, results_table, write_report
from tools.visualize import main as visualize_cli

rng = np.random.default_rng(0)
CLOUD = rng.normal(size=(300, 3))


@pytest.fixture(autouse=True)
def _torch(torch_globals):
    yield


def colours_in(image):
    """Number of distinct RGB colours of a decoded image (H, W, 3 or 4) in [0, 1]."""
    return len(np.unique((image[..., :3] * 255).round().astype(int).reshape(-1, 3), axis=0))


def assert_png(path, min_colours=3):
    """A PNG file that decodes and is not blank."""
    with open(path, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    assert colours_in(imread(path)) >= min_colours, f'{path} looks blank'


def test_colours_and_pca():
    colours = plots.label_colors(np.arange(10))
    assert len({tuple(c) for c in colours}) == 10
    features = np.concatenate([CLOUD[:, :1] * 5, rng.normal(scale=0.01, size=(300, 7))], axis=1)
    rgb = plots.pca_rgb(features)
    assert rgb.shape == (300, 3) and rgb.min() >= 0 and rgb.max() <= 1
    assert abs(np.corrcoef(rgb[:, 0], CLOUD[:, 0])[0, 1]) > 0.999  # the leading direction drives channel 0
    batch = plots.pca_rgb(np.stack([features, features + 1]))  # two clouds share one basis
    assert batch.shape == (2, 300, 3) and not np.allclose(batch[0], batch[1])


def test_cloud_figures_png_and_html(tmp_path):
    labels = (CLOUD[:, 0] > 0).astype(int) + 2 * (CLOUD[:, 1] > 0)
    kinds = {
        'clusters': plots.cluster_panels(CLOUD, labels, rng.normal(size=(4, 3)), masked=np.arange(8) < 3),
        'pca': plots.pca_panels(CLOUD, rng.normal(size=(300, 16))),
        'parts': plots.parts_panels(CLOUD, labels, np.where(np.arange(300) < 30, 0, labels)),
        'reconstruction': plots.reconstruction_panels(CLOUD[:64].reshape(2, 32, 3), CLOUD[64:160].reshape(3, 32, 3),
                                                      CLOUD[64:160].reshape(3, 32, 3) + 0.01, chamfer=0.002),
    }
    for kind, panels in kinds.items():
        assert_png(plots.save_png(panels, tmp_path / f'{kind}.png', title=kind))
    assert kinds['parts'][2].title.startswith('errors: ')
    html = plots.save_html(kinds['clusters'], tmp_path / 'clusters.html', title='clusters view')
    text = open(html).read()
    assert '<script src="http' not in text and len(text) > 1_000_000  # plotly.js inlined: works offline
    assert 'clusters view' in text and 'cluster centers' in text
    assert f'{np.round(CLOUD[0, 0], 4)}' in text and text.count('scatter3d') >= 2


def write_metrics(path):
    lines = []
    for epoch in (1, 2, 3):
        lines.append({'tag': 'train', 'step': epoch * 3, 'loss': 5.0 / epoch, 'assign': 2.0 / epoch, 'lr': 1e-3})
        lines.append({'tag': 'epoch', 'step': epoch, 'epoch': epoch, 'loss': 5.0 / epoch, 'assign': 2.0 / epoch,
                      'val_loss': 6.0 / epoch, 'lr': 1e-3, 'epoch_time_s': 1.0, 'svm_acc': 50.0 + epoch})
    lines.append({'tag': 'epoch', 'step': 3, 'epoch': 3, 'loss': 1.0, 'assign': 0.5})  # resumed: last wins
    with open(path, 'w') as f:
        f.write('\n'.join(json.dumps(r) for r in lines) + '\n')


def test_loss_curves_from_metrics_jsonl(tmp_path):
    write_metrics(tmp_path / 'metrics.jsonl')
    records = plots.read_metrics(tmp_path)
    epoch3 = [r for r in records if r['tag'] == 'epoch' and r['step'] == 3]
    assert len(epoch3) == 1 and epoch3[0]['loss'] == 1.0
    assert_png(plots.plot_loss_curves(tmp_path, tmp_path / 'loss.png', title='tiny'))
    (tmp_path / 'bad').mkdir()
    (tmp_path / 'bad' / 'metrics.jsonl').write_text('{"tag": "train"\n')
    with pytest.raises(ValueError, match='metrics.jsonl:1: not a JSON object'):
        plots.read_metrics(tmp_path / 'bad')


def test_tsne_png_and_html(tmp_path):
    features = np.concatenate([rng.normal(size=(10, 8)), rng.normal(size=(10, 8)) + 10])
    labels = ['chair'] * 10 + ['table'] * 10
    embedding = plots.tsne_embedding(features)
    assert embedding.shape == (20, 2)
    assert_png(plots.plot_tsne(embedding, labels, tmp_path / 't.png'))
    text = open(plots.save_tsne_html(embedding, labels, [f'shape{i}' for i in range(20)], tmp_path / 't.html')).read()
    assert 'shape13' in text and 'table' in text


def test_report_markdown(tmp_path):
    write_metrics(tmp_path / 'metrics.jsonl')
    figure = plots.plot_loss_curves(tmp_path, tmp_path / 'figs' / 'loss.png')
    header, rows = results_table({'MaskClu': {'ModelNet40 (%)': '92.1 ± 0.2', 'SVM (%)': 88.123456},
                                  'Point-MAE': {'ModelNet40 (%)': '91.0 ± 0.3'}}, row_header='encoder')
    assert header == ['encoder', 'ModelNet40 (%)', 'SVM (%)']
    path = write_report(tmp_path, 'Demo | evaluation', tables=[('Classification', header, rows)],
                        figures=[('Loss curves', figure), ('Missing', tmp_path / 'nope.png')],
                        notes=['demo data, not benchmark numbers'])
    text = open(path).read()
    assert text.startswith('# Demo | evaluation\n')
    assert '| MaskClu | 92.1 ± 0.2 | 88.12 |' in text and '| Point-MAE | 91.0 ± 0.3 | — |' in text
    assert '![Loss curves](figs/loss.png)' in text
    assert '**figure missing**: `nope.png`' in text and '- demo data, not benchmark numbers' in text
    assert markdown_table(['a'], [['x|y\nz']]).endswith('| x\\|y<br>z |')
    with pytest.raises(ValueError, match='row 0 has 2 cells, the header 1'):
        markdown_table(['a'], [[1, 2]])


@pytest.fixture
def clouds(tmp_path):
    """Two classes of shape files and a part-labelled text cloud with a prediction file."""
    root = tmp_path / 'shapes'
    for label, make in (('box', trimesh.creation.box), ('ball', trimesh.creation.icosphere)):
        os.makedirs(root / label)
        for i in range(3):
            mesh = make()
            mesh.apply_scale(1 + 0.2 * i)
            mesh.export(root / label / f'{label}{i}.off')
    (root / 'box' / 'broken.off').write_text('OFF\n3 1 0\n0 0 0\n1 0\n')
    parts = (CLOUD[:, 1] > 0).astype(int)
    np.savetxt(tmp_path / 'shape.txt', np.concatenate([CLOUD, CLOUD, parts[:, None]], axis=1))
    np.save(tmp_path / 'pred.npy', np.where(np.arange(300) < 50, 1 - parts, parts))
    return tmp_path


def run_cli(*argv):
    visualize_cli(['--device', 'cpu', '--npoints', '128', *map(str, argv)])


def test_visualize_every_kind(tmp_path, clouds, capsys):
    maskclu = save(tmp_path, *one_view_maskclu(), name='maskclu.pth')
    pointmae = save(tmp_path, *point_mae(), name='pointmae.pth')
    box = clouds / 'shapes' / 'box' / 'box0.off'
    run_cli('--kind', 'clusters', '--ckpts', maskclu, '--input', box, '--out', tmp_path / 'c.png', '--html')
    run_cli('--kind', 'pca', '--ckpts', maskclu, '--input', clouds / 'shapes', '--out', tmp_path / 'p.png',
            '--point_blocks', '1,2')
    run_cli('--kind', 'reconstruction', '--ckpts', pointmae, '--input', box, '--out', tmp_path / 'r.png')
    run_cli('--kind', 'parts', '--input', clouds / 'shape.txt', '--pred', clouds / 'pred.npy', '--out', tmp_path / 's.png')
    run_cli('--kind', 'tsne', '--ckpts', maskclu, '--input', clouds / 'shapes', '--out', tmp_path / 't.png', '--html')
    for name in ('c', 'p', 'r', 's', 't'):
        assert_png(tmp_path / f'{name}.png')
    assert os.path.getsize(tmp_path / 'c.html') > 1_000_000 and 'box2.off' in open(tmp_path / 't.html').read()
    out = capsys.readouterr()
    assert 'broken.off' in out.err and str(tmp_path / 'c.html') in out.out
    with pytest.raises(SystemExit, match='no cluster head'):
        run_cli('--kind', 'clusters', '--ckpts', pointmae, '--input', box, '--out', tmp_path / 'x.png')
    with pytest.raises(SystemExit, match='--kind parts needs --pred'):
        run_cli('--kind', 'parts', '--input', clouds / 'shape.txt', '--out', tmp_path / 'x.png')


def test_visualize_tsne_on_a_dataset_config(tmp_path, demo_root):
    ckpt, _, _ = ours_pretrain(tmp_path)
    config = tmp_path / 'shapenet.yaml'
    config.write_text(f"NAME: ShapeNet\nDATA_PATH: {demo_root}/ShapeNet55-34/ShapeNet-55\n"
                      f"PC_PATH: {demo_root}/ShapeNet55-34/shapenet_pc\nN_POINTS: 8192\n")
    run_cli('--kind', 'tsne', '--ckpts', ckpt, '--input', config, '--subset', 'train', '--out', tmp_path / 't.png')
    assert_png(tmp_path / 't.png')


def test_report_with_plots_from_a_tiny_run(tmp_path, tiny_config):
    """A 1-epoch tiny pre-training run, then its loss curves and cluster view in a report."""
    import main
    main.main(['--config', tiny_config(max_epoch=1), '--exp', str(tmp_path / 'exps'), '--exp_name', 'tiny',
               '--device', 'cpu', '--num_workers', '0'])
    run = tmp_path / 'exps' / 'pretrain_tiny' / 'cfgs' / 'tiny'
    cloud = tmp_path / 'cloud.npy'
    np.save(cloud, CLOUD)
    curves = plots.plot_loss_curves(run, run / 'loss.png')
    visualize_cli(['--kind', 'clusters', '--ckpts', str(run / 'ckpt-last.pth'), '--input', str(cloud),
                   '--out', str(run / 'clusters.png'), '--device', 'cpu'])
    report = write_report(run, 'Tiny run', figures=[('Loss curves', curves), ('Clusters', run / 'clusters.png')])
    text = open(report).read()
    assert re.search(r'!\[Loss curves\]\(loss.png\)', text) and '![Clusters](clusters.png)' in text
    assert_png(run / 'clusters.png')
