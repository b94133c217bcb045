"""Config loader: inheritance, dataset flattening, overrides, key checking, saving."""
import os

import pytest
import yaml

from utils.config import ANY, ConfigError, check_keys, load_config, save_config


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data) if isinstance(data, dict) else data)
    return path


def test_base_resolves_relative_to_including_file(tmp_path, monkeypatch):
    write(tmp_path / 'cfgs/dataset_configs/ds.yaml', {'NAME': 'ShapeNet', 'DATA_PATH': 'a', 'N_POINTS': 8192})
    cfg_path = write(tmp_path / 'cfgs/pre.yaml', {
        'dataset': {'train': {'_base_': 'dataset_configs/ds.yaml', 'others': {'subset': 'train', 'npoints': 1024}}},
        'max_epoch': 3})
    monkeypatch.chdir('/')
    cfg = load_config(str(cfg_path))
    assert cfg.dataset.train == {'NAME': 'ShapeNet', 'DATA_PATH': 'a', 'N_POINTS': 8192,
                                 'subset': 'train', 'npoints': 1024}
    assert cfg.max_epoch == 3


def test_base_falls_back_to_working_directory(tmp_path, monkeypatch):
    write(tmp_path / 'cfgs/dataset_configs/ds.yaml', {'NAME': 'ModelNet'})
    cfg_path = write(tmp_path / 'elsewhere/old.yaml', {'dataset': {'val': {'_base_': 'cfgs/dataset_configs/ds.yaml'}}})
    monkeypatch.chdir(tmp_path)
    assert load_config(str(cfg_path)).dataset.val.NAME == 'ModelNet'


def test_top_level_base_and_override_merge(tmp_path):
    write(tmp_path / 'base.yaml', {'model': {'NAME': 'MaskClu', 'num_group': 64, 'group_size': 32}, 'max_epoch': 300})
    child = write(tmp_path / 'child.yaml', {'_base_': 'base.yaml', 'model': {'num_group': 16}, 'max_epoch': 2})
    cfg = load_config(str(child))
    assert cfg.model == {'NAME': 'MaskClu', 'num_group': 16, 'group_size': 32}
    assert cfg.max_epoch == 2


def test_missing_base_and_cycle_are_named(tmp_path):
    bad = write(tmp_path / 'bad.yaml', {'_base_': 'nope.yaml'})
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(str(bad))
    write(tmp_path / 'a.yaml', {'_base_': 'b.yaml'})
    write(tmp_path / 'b.yaml', {'_base_': 'a.yaml'})
    with pytest.raises(ConfigError, match='cycle'):
        load_config(str(tmp_path / 'a.yaml'))


def test_bad_yaml_names_the_file(tmp_path):
    bad = write(tmp_path / 'broken.yaml', 'model: {NAME: [\n')
    with pytest.raises(ConfigError, match='broken.yaml'):
        load_config(str(bad))
    with pytest.raises(ConfigError, match='not found'):
        load_config(str(tmp_path / 'absent.yaml'))


def test_opts_override_and_reject_unknown_sections(tmp_path):
    path = write(tmp_path / 'c.yaml', {'model': {'NAME': 'MaskClu', 'tc': {'mask_ratio': 0.6}}, 'max_epoch': 300})
    cfg = load_config(str(path), ['max_epoch=5', 'model.tc.mask_ratio=0.75', 'model.tags=[a, b]'])
    assert cfg.max_epoch == 5 and cfg.model.tc.mask_ratio == 0.75 and cfg.model.tags == ['a', 'b']
    with pytest.raises(ConfigError, match="'modle' is not a section"):
        load_config(str(path), ['modle.num_group=3'])
    with pytest.raises(ConfigError, match='key.sub=value'):
        load_config(str(path), ['max_epoch'])


def test_check_keys_rejects_misspelling_with_hint_and_fills_defaults():
    schema = {'optimizer': ANY, 'max_epoch': 300, 'svm': {'freq': 0, 'C': 0.01}, 'clip': None}
    with pytest.raises(ConfigError, match=r"unknown key 'ptimizer' \(did you mean 'optimizer'\?\)"):
        check_keys({'ptimizer': {}}, schema, 'x.yaml')
    with pytest.raises(ConfigError, match=r"x.yaml: svm: unknown key 'frq'"):
        check_keys({'svm': {'frq': 1}}, schema, 'x.yaml')
    out = check_keys({'svm': {'freq': 2}}, schema, 'x.yaml')
    assert out == {'svm': {'freq': 2, 'C': 0.01}, 'max_epoch': 300}


def test_attribute_access_and_atomic_save(tmp_path):
    path = write(tmp_path / 'c.yaml', {'model': {'NAME': 'MaskClu'}, 'transforms': [{'NAME': 'Jitter'}]})
    cfg = load_config(str(path))
    assert cfg.model.NAME == 'MaskClu' and cfg.transforms[0].NAME == 'Jitter'
    with pytest.raises(AttributeError, match='no key'):
        _ = cfg.nothing
    out = tmp_path / 'resolved.yaml'
    save_config(cfg, str(out))
    assert yaml.safe_load(out.read_text()) == {'model': {'NAME': 'MaskClu'}, 'transforms': [{'NAME': 'Jitter'}]}
    assert sorted(os.listdir(tmp_path)) == ['c.yaml', 'resolved.yaml']  # no temporary file left
