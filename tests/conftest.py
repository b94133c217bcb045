"""Shared fixtures: the tiny demo data and a tiny pre-training config written to a tmp folder.

The tiny config is the paper's default (``cfgs/pretrain.yaml``) with the model and the
schedule shrunk so that an epoch on the tiny demo data (29 ShapeNet clouds) takes well
under a second on a 2-core CPU.
"""
import contextlib
import copy
import os

import pytest
import torch
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Tiny sizes shared by the pre-training model and the downstream classifier.
TINY_BACKBONE = {'num_group': 16, 'group_size': 8, 'trans_dim': 32, 'depth': 2, 'num_heads': 2}
TINY_MODEL = {
    'num_group': TINY_BACKBONE['num_group'],
    'group_size': TINY_BACKBONE['group_size'],
    'transformer_config': {'trans_dim': 32, 'encoder_dims': 32, 'depth': 2, 'num_heads': 2,
                           'decoder_depth': 1, 'decoder_num_heads': 2},
    'losses': {'assign': {'P': 8, 'hidden': 32},
               'global': {'J': 8, 'proj_hidden': 64, 'proj_dim': 32, 'pred_hidden': 64}},
}
TINY_TOP = {'npoints': 256, 'total_bs': 8, 'max_epoch': 2, 'log_freq': 2, 'ckpt_save_freq': 1,
            'svm_probe': {'freq': 0, 'C': 0.01},
            'scheduler': {'type': 'CosLR', 'kwargs': {'epochs': 4, 'initial_epochs': 1}}}


def deep_merge(base, override):
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
            else copy.deepcopy(value)
    return out


def tiny_model_config(**model):
    """The paper's model config (cfgs/pretrain.yaml) at the tiny sizes, merged with ``model``."""
    from utils.config import load_config
    paper = load_config(os.path.join(ROOT, 'cfgs', 'pretrain.yaml')).to_dict()['model']
    return deep_merge(deep_merge(paper, TINY_MODEL), model)


def shapenet_entry(data_root, subset, npoints):
    return {'NAME': 'ShapeNet', 'DATA_PATH': os.path.join(data_root, 'ShapeNet55-34', 'ShapeNet-55'),
            'PC_PATH': os.path.join(data_root, 'ShapeNet55-34', 'shapenet_pc'), 'N_POINTS': 8192,
            'subset': subset, 'npoints': npoints}


@pytest.fixture(scope='session')
def demo_root(tmp_path_factory):
    """The tiny demo data (seed 0); only the ShapeNet-55 layout, which pre-training reads."""
    from datasets.demo.generate import SIZES, make_shapenet
    out = str(tmp_path_factory.mktemp('demo_data'))
    make_shapenet(out, 0, SIZES['tiny'])
    return out


def write_tiny_config(folder, data_root, model=None, **top):
    """Write ``<folder>/cfgs/pretrain_tiny.yaml``: the paper's config (cfgs/pretrain.yaml) at the
    tiny sizes, ``top``/``model`` merged over it; returns its path. The experiment folder of a
    run with ``--exp E --exp_name N`` is ``E/pretrain_tiny/cfgs/N``."""
    from utils.config import load_config
    paper = load_config(os.path.join(ROOT, 'cfgs', 'pretrain.yaml')).to_dict()
    cfg = deep_merge({k: v for k, v in paper.items() if k not in ('dataset', 'model')}, TINY_TOP)
    cfg = deep_merge(cfg, top)
    cfg['model'] = tiny_model_config(**(model or {}))
    cfg['dataset'] = {'train': shapenet_entry(data_root, 'train', cfg['npoints']), **cfg.get('dataset', {})}
    path = os.path.join(folder, 'cfgs', 'pretrain_tiny.yaml')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    return path


@pytest.fixture
def tiny_config(tmp_path, demo_root):
    """Factory: ``tiny_config(model=None, **top)`` -> path of a tiny config under tmp_path."""
    return lambda model=None, **top: write_tiny_config(str(tmp_path), demo_root, model, **top)


@contextlib.contextmanager
def torch_settings():
    """One intra-op thread (tiny ops gain nothing from two, and spin-waiting threads are very
    slow on a busy 2-core box); afterwards undo what ``main.main`` sets process-wide:
    deterministic algorithms and the RNG state."""
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    rng = torch.get_rng_state()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.set_rng_state(rng)


@pytest.fixture
def torch_globals():
    with torch_settings():
        yield
