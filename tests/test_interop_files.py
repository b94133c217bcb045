"""Dataset files and configs as Point-MAE / Point-BERT / the released MaskClu code write them load
here, and the pickles we write load under numpy 1.x (no ``numpy._core``) as well as 2.x.

The peer formats are written out from their documented layouts: ModelNet caches as
``pickle.dump([points, labels])`` with int32 (1,) labels; few-shot folds as Point-MAE's
generator stores them (the new label a python int, the original one numpy int32); the released
dataset yamls (ScanObjectNN with ``ROOT`` and ``N_POINTS: 8192``); the released
part-segmentation root (the parent of ``shapenet_part_seg_hdf5_data``); the released
pre-training config schema and the ``ptimizer`` typo of its ScanObjectNN fine-tuning config.
"""
import io
import os
import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from datasets import build_dataset
from datasets.files import write_pickle
from datasets.modelnet_cache import build_cache, read_cache
from datasets.modelnet_fewshot import write_fewshot_folds
from datasets.pickles import global_names
from models import build_model, check_model_config
from test_datasets import cloud, write_modelnet_raw, write_partseg_h5, write_partseg_text, write_scan, write_shapenet
from tools.config_check import validate_config
from tools.config_translate import RELEASED_MODEL_KEYS, translate_released
from utils.config import PROJECT_ROOT, ConfigError, load_config

# ------------------------------------------------------------------ 9. ShapeNet-55 whole


def test_shapenet_whole_lists_the_test_clouds_first_like_point_mae(tmp_path):
    entry = write_shapenet(tmp_path, n_train=3, n_test=2)
    order = [build_dataset({**entry, 'whole': True})[i][1] for i in range(5)]
    assert order == ['model100', 'model101', 'model000', 'model001', 'model002']


# ------------------------------------------------------------------- 10. one label dtype

def labels_of(ds):
    return default_collate([ds[i] for i in range(len(ds))])[2][1]


@pytest.mark.parametrize('stored', [lambda i: np.array([i], dtype=np.int32),  # Point-BERT's / Point-MAE's cache
                                    lambda i: np.int64(i), lambda i: i])
def test_modelnet_labels_are_int64_whatever_the_cache_stores(tmp_path, stored):
    with open(tmp_path / 'modelnet40_test_16pts_fps.dat', 'wb') as f:
        pickle.dump([[cloud(16, i, 6) for i in range(4)], [stored(i % 3) for i in range(4)]], f)
    ds = build_dataset({'NAME': 'ModelNet', 'DATA_PATH': str(tmp_path), 'N_POINTS': 16, 'subset': 'test'})
    assert ds.labels.dtype == np.int64 and ds.labels.tolist() == [0, 1, 2, 0]
    assert labels_of(ds).dtype == torch.int64


def test_fewshot_labels_are_int64_from_a_point_mae_written_fold(tmp_path):
    (tmp_path / '5way_10shot').mkdir()
    fold = {split: [(cloud(16, 9 * k + i, 6), i % 5, np.int32(30 + i % 5)) for i in range(10)]
            for k, split in enumerate(('train', 'test'))}
    with open(tmp_path / '5way_10shot' / '0.pkl', 'wb') as f:
        pickle.dump(fold, f)
    ds = build_dataset({'NAME': 'ModelNetFewShot', 'DATA_PATH': str(tmp_path), 'N_POINTS': 16, 'way': 5,
                        'shot': 10, 'fold': 0, 'subset': 'test'})
    assert ds.labels.dtype == np.int64 and labels_of(ds).dtype == torch.int64


# ---------------------------------------------------- 6. pickles readable by numpy < 1.26

class OldNumpyUnpickler(pickle.Unpickler):
    """Unpickles as numpy < 1.26 does: it has ``numpy.core`` and no ``numpy._core``."""

    def find_class(self, module, name):
        if module == 'numpy._core' or module.startswith('numpy._core.'):
            raise ModuleNotFoundError(f"No module named '{module}'")
        return super().find_class(module, name)


def old_numpy_load(data):
    return OldNumpyUnpickler(io.BytesIO(data)).load()


def test_the_old_numpy_unpickler_refuses_what_numpy_2_pickles_by_default():
    with pytest.raises(ModuleNotFoundError, match='numpy._core'):
        old_numpy_load(pickle.dumps(np.zeros(2, np.float32), protocol=4))


def test_our_cache_and_fewshot_pickles_round_trip_through_the_old_numpy_name(tmp_path):
    root = write_modelnet_raw(tmp_path / 'mn', per_class=3, rows=24)['DATA_PATH']
    caches = {s: read_cache(build_cache(root, 40, s, 16, workers=1), 16, 40) for s in ('train', 'test')}
    paths = write_fewshot_folds(caches['train'], caches['test'], str(tmp_path / 'fs'), ways=(2,), shots=(2,),
                                folds=1, n_query=2)
    for path in [os.path.join(root, f'modelnet40_{s}_16pts_fps.dat') for s in ('train', 'test')] + paths:
        with open(path, 'rb') as f:
            data = f.read()
        names = global_names(data)
        assert 'numpy.core.multiarray._reconstruct' in names
        assert not any(n.startswith('numpy._core') for n in names), names
        old, new = old_numpy_load(data), pickle.loads(data)
        assert pickle.dumps(old, protocol=4) == pickle.dumps(new, protocol=4)
    with open(os.path.join(root, 'modelnet40_train_16pts_fps.dat'), 'rb') as f:
        points, labels = old_numpy_load(f.read())
    assert points[0].dtype == np.float32 and labels[0].dtype == np.int32 and labels[0].shape == (1,)


def test_numpy_scalars_round_trip_too(tmp_path):
    obj = {'train': [(np.zeros((2, 6), np.float32), 1, np.int32(7))], 'x': np.float64(2.5)}
    write_pickle(tmp_path / 'f.pkl', obj)
    data = (tmp_path / 'f.pkl').read_bytes()
    assert 'numpy.core.multiarray.scalar' in global_names(data)
    out = old_numpy_load(data)
    assert out['x'] == 2.5 and out['train'][0][2] == np.int32(7) and out['train'][0][2].dtype == np.int32


# ------------------------------------------------- 7. released ScanObjectNN yamls (N_POINTS)

def test_a_released_scanobjectnn_yaml_with_n_points_loads(tmp_path):
    write_scan(tmp_path / 'h5_files' / 'main_split', n_points=2048)
    (tmp_path / 'ScanObjectNN_objectbg.yaml').write_text(
        f"NAME: ScanObjectNN\nROOT: {tmp_path / 'h5_files' / 'main_split'}\nN_POINTS: 8192\n")
    (tmp_path / 'cfg.yaml').write_text("dataset : {\n  train : { _base_: ScanObjectNN_objectbg.yaml,\n"
                                       "            others: {subset: 'train'}}}\n")
    ds = build_dataset(load_config(str(tmp_path / 'cfg.yaml')).dataset.train)
    assert ds[0][2][0].shape == (2048, 3)  # N_POINTS (8192 in the released yamls) is ignored


# ------------------------------------------------ 8. ShapeNetPart root given as the parent

def test_shapenetpart_root_may_be_the_parent_of_the_released_folders(tmp_path):
    write_partseg_h5(tmp_path / 'h5data' / 'shapenet_part_seg_hdf5_data')
    ds = build_dataset({'NAME': 'ShapeNetPart', 'DATA_PATH': str(tmp_path / 'h5data'), 'subset': 'trainval',
                        'npoints': 256})
    assert (ds.layout, len(ds), ds.root) == ('h5', 3, str(tmp_path / 'h5data' / 'shapenet_part_seg_hdf5_data'))
    write_partseg_text(tmp_path / 'txtdata' / 'shapenetcore_partanno_segmentation_benchmark_v0_normal')
    ds = build_dataset({'NAME': 'ShapeNetPart', 'DATA_PATH': str(tmp_path / 'txtdata'), 'subset': 'test',
                        'LAYOUT': 'txt'})
    assert (ds.layout, len(ds)) == ('txt', 1)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='shapenet_part_seg_hdf5_data'):
        build_dataset({'NAME': 'ShapeNetPart', 'DATA_PATH': str(tmp_path / 'empty'), 'subset': 'test'})


# ------------------------------------------------------------- 11. released configs

RELEASED_PRETRAIN = """optimizer : {
  type: AdamW,
  kwargs: {
  lr : 0.001,
  weight_decay : 0.05
}}

scheduler: {
  type: CosLR,
  kwargs: {
    epochs: 300,
    initial_epochs : 10
}}

dataset : {
  train : { _base_: cfgs/dataset_configs/ShapeNet-55.yaml,
            others: {subset: 'train', npoints: 1024}},
  val : { _base_: cfgs/dataset_configs/ShapeNet-55.yaml,
            others: {subset: 'test', npoints: 1024}},
  test : { _base_: cfgs/dataset_configs/ShapeNet-55.yaml,
            others: {subset: 'test', npoints: 1024}}}

model : {
  NAME: Point_MAE,
  group_size: 32,
  num_group: 64,
  loss: cdl2,
  n_neighs: %(n_neighs)s,
  tau: 0.1,%(extra)s
  transformer_config: {
    mask_ratio: 0.6,
    mask_type: 'rand',
    trans_dim: 384,
    encoder_dims: 384,
    depth: 12,
    drop_path_rate: 0.1,
    num_heads: 6,
    decoder_depth: 4,
    decoder_num_heads: 6,
    decoder_num_clusters: %(clusters)s,
    proj_dim: 128,
  },
  }

npoints: 1024
total_bs : 128
step_per_update : 1
max_epoch : 300
"""


def released_objective():
    return load_config(os.path.join(PROJECT_ROOT, 'cfgs', 'pretrain_released.yaml')).to_dict()


def released_pretrain(tmp_path, n_neighs=12, clusters=16, extra=''):
    path = tmp_path / 'pretrain.yaml'
    path.write_text(RELEASED_PRETRAIN % {'n_neighs': n_neighs, 'clusters': clusters, 'extra': extra})
    return str(path)


def test_a_released_pretraining_config_becomes_the_released_objective(tmp_path):
    path = released_pretrain(tmp_path, n_neighs=8, clusters=8, extra='\n  radius : 0.2,')
    cfg, lines = translate_released(load_config(path), path)
    ours = released_objective()
    assert cfg['model']['NAME'] == 'MaskClu' and cfg['train_transforms'] == ours['train_transforms']
    assigned = cfg['model']['losses']['assign']
    assert (assigned['graph_k'], assigned['P'], assigned['tau'], assigned['hidden']) == (8, 8, 0.1, 128)
    assert {k: v for k, v in cfg['model'].items() if k != 'losses'} == \
        {k: v for k, v in ours['model'].items() if k != 'losses'}
    assert cfg['dataset']['train']['whole'] is True and 'whole' not in cfg['dataset']['val']
    text = '\n'.join(lines)
    for expected in ('model.NAME: Point_MAE -> MaskClu', 'model.n_neighs: 8 -> model.losses.assign.graph_k: 8',
                     'model.transformer_config.decoder_num_clusters: 8 -> model.losses.assign.P: 8',
                     'model.radius: 0.2 -> dropped', 'model.loss: cdl2 -> dropped', 'dataset.train.whole'):
        assert expected in text
    checked = validate_config(load_config(path), path)
    build_model({**checked.model, 'transformer_config': {**checked.model.transformer_config, 'depth': 1,
                                                          'decoder_depth': 1}})


def test_every_translation_target_exists_in_the_released_objective():
    model = check_model_config(released_objective()['model'])
    for ours in filter(None, RELEASED_MODEL_KEYS.values()):
        node = model
        for part in ours.split('.'):
            assert part in node, ours
            node = node[part]


def test_a_foreign_key_without_counterpart_stops_naming_it_and_the_config(tmp_path):
    path = released_pretrain(tmp_path, extra='\n  use_lra: true,\n  knn_mode: ball,')
    with pytest.raises(ConfigError, match=r'model\.use_lra, model\.knn_mode of the released MaskClu schema have no '
                                          r'counterpart here; remove them or start from cfgs/pretrain_released\.yaml'):
        validate_config(load_config(path), path)


def test_point_maes_own_config_is_not_translated(tmp_path):
    path = tmp_path / 'pm.yaml'
    path.write_text(RELEASED_PRETRAIN.replace('  n_neighs: %(n_neighs)s,\n  tau: 0.1,%(extra)s\n', '')
                    .replace('    decoder_num_clusters: %(clusters)s,\n    proj_dim: 128,\n', ''))
    cfg = validate_config(load_config(str(path)), str(path))
    assert cfg.model.NAME == 'Point_MAE' and cfg.dataset.train.whole is False


def test_the_released_ptimizer_typo_is_translated(tmp_path):
    (tmp_path / 'ft.yaml').write_text(
        "ptimizer : {\n  type: AdamW,\n  kwargs: {\n  lr : 0.0005,\n  weight_decay : 0.05\n}}\n\n"
        "scheduler: {\n  type: CosLR,\n  kwargs: {\n    epochs: 300,\n    initial_epochs : 10\n}}\n\n"
        "dataset : {\n  train : { _base_: cfgs/dataset_configs/ScanObjectNN_objectonly.yaml,\n"
        "            others: {subset: 'train'}}}\n"
        "model : {\n  NAME: PointTransformer,\n  trans_dim: 384,\n  depth: 12,\n  drop_path_rate: 0.1,\n"
        "  cls_dim: 15,\n  num_heads: 6,\n  group_size: 32,\n  num_group: 128,\n  encoder_dims: 384,\n}\n\n"
        "npoints: 2048\ntotal_bs : 32\nstep_per_update : 1\nmax_epoch : 300\ngrad_norm_clip : 10\n")
    path = str(tmp_path / 'ft.yaml')
    assert validate_config(load_config(path), path).optimizer.kwargs.lr == 0.0005
    both = load_config(path)
    both['optimizer'] = both['ptimizer']
    with pytest.raises(ConfigError, match="both 'ptimizer'"):
        validate_config(both, path)


# ----------------------------------------- 3. 3-channel pre-training for Point-MAE's fine-tuning

@pytest.mark.parametrize('name, base', [('pretrain_pc3', 'pretrain'), ('pretrain_released_pc3', 'pretrain_released')])
def test_three_channel_pretraining_configs_change_only_point_channels(name, base):
    def checked(stem):
        path = os.path.join(PROJECT_ROOT, 'cfgs', f'{stem}.yaml')
        return validate_config(load_config(path), path).to_dict()
    ours, theirs = checked(name), checked(base)
    assert (ours['model'].pop('point_channels'), theirs['model'].pop('point_channels')) == (3, 4)
    assert ours == theirs
