"""Dispatch and build plumbing of the point-cloud ops: importing never builds, the environment
variable forces the reference, stale or failing builds fall back, setup.py explains itself."""
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

import extensions
from extensions import backend, ops, sources

ROOT = Path(__file__).resolve().parents[1]

IMPORT_AND_RUN = """
import sys, torch, extensions
x = torch.rand(2, 64, 3)
extensions.furthest_point_sample(x, 8)
extensions.chamfer_distance(x, x)
extensions.group_points(x, extensions.knn_points(x, x, 4)[1])
extensions.ball_query(x, x, 0.3, 4)
extensions.interpolate_idw(x, x[:, :8], torch.rand(2, 8, 5))
info = extensions.backend_info()
print(info['cpu'], info['kernels'], info['reference_forced'],
      'maskclu_ops' in sys.modules, 'torch.utils.cpp_extension' in sys.modules)
"""


@pytest.mark.parametrize('forced', ['', '1'])
def test_import_runs_on_cpu_without_building(tmp_path, forced):
    env = dict(os.environ, PYTHONPATH=str(ROOT), MASKCLU_OPS_REFERENCE=forced,
               MASKCLU_OPS_CACHE=str(tmp_path / 'cache'), CUDA_VISIBLE_DEVICES='')
    result = subprocess.run([sys.executable, '-c', IMPORT_AND_RUN], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ['reference', 'not', 'loaded', 'yet', str(bool(forced)),
                                     'False', 'False']
    assert not (tmp_path / 'cache').exists()


class FakeTensor(types.SimpleNamespace):
    is_cuda = True
    dtype = torch.float32


@pytest.fixture
def kernels_available(monkeypatch):
    """Pretend a compiled module loaded."""
    monkeypatch.setattr(backend, 'compiled', lambda: object())
    monkeypatch.delenv(backend.ENV_REFERENCE, raising=False)


def test_use_kernels_only_for_cuda_kernel_dtypes(kernels_available):
    assert backend.use_kernels(FakeTensor())
    assert backend.use_kernels(FakeTensor(dtype=torch.float64))
    assert not backend.use_kernels(FakeTensor(dtype=torch.bfloat16))
    assert not backend.use_kernels(FakeTensor(is_cuda=False))


@pytest.mark.parametrize('value,forced', [('1', True), ('true', True), ('0', False), ('', False)])
def test_environment_variable_forces_the_reference(kernels_available, monkeypatch, value, forced):
    monkeypatch.setenv(backend.ENV_REFERENCE, value)
    assert backend.reference_forced() is forced
    assert backend.use_kernels(FakeTensor()) is not forced
    assert backend.backend_info()['reference_forced'] is forced


def test_entries_dispatch_to_the_kernel_module(monkeypatch):
    calls = []

    def record(name):
        return lambda *args: calls.append(name) or name

    fake_pointnet2 = types.SimpleNamespace(knn_points=record('knn'), gather_points=record('gather'))
    fake_chamfer = types.SimpleNamespace(chamfer_distance=record('chamfer'))
    monkeypatch.setattr(ops, 'pointnet2_kernels', fake_pointnet2)
    monkeypatch.setattr(ops, 'chamfer_kernels', fake_chamfer)
    monkeypatch.setattr(backend, 'use_kernels', lambda tensor: True)
    x = torch.rand(1, 8, 3)
    assert ops.knn_points(x, x, 2) == 'knn'
    assert ops.three_nn(x, x) == 'knn'
    assert ops.group_points(x, torch.zeros(1, 2, 2, dtype=torch.long)) == 'gather'
    assert ops.chamfer_distance(x, x) == 'chamfer'
    assert calls == ['knn', 'knn', 'gather', 'chamfer']


@pytest.fixture
def fresh_loader():
    backend._load.cache_clear()
    yield
    backend._load.cache_clear()


def test_failed_build_warns_once_and_falls_back(fresh_loader, monkeypatch):
    def fail():
        raise RuntimeError('no toolkit here')

    monkeypatch.setattr(backend, '_import_prebuilt', lambda: None)
    monkeypatch.setattr(backend, '_build', fail)
    with pytest.warns(RuntimeWarning, match='no toolkit here'):
        assert backend.compiled() is None
    assert backend.compiled() is None  # cached: no second attempt or warning
    assert backend.backend_info()['kernels'] == 'unavailable: no toolkit here'


def test_prebuilt_module_from_other_sources_is_ignored(monkeypatch):
    monkeypatch.setitem(sys.modules, f'extensions.{sources.MODULE_NAME}', None)  # not importable
    stale = types.SimpleNamespace(source_hash=-1, __file__='stale.so')
    monkeypatch.setitem(sys.modules, sources.MODULE_NAME, stale)
    assert backend._import_prebuilt() is None
    current = types.SimpleNamespace(source_hash=sources.source_hash(), __file__='current.so')
    monkeypatch.setitem(sys.modules, sources.MODULE_NAME, current)
    assert backend._import_prebuilt() == (current, 'prebuilt current.so')


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(backend.ENV_CACHE, str(tmp_path))
    assert backend.cache_dir() == tmp_path
    monkeypatch.delenv(backend.ENV_CACHE)
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
    assert backend.cache_dir() == tmp_path / 'maskclu' / 'extensions'


def test_sources_cover_every_kernel_and_binding():
    listed = set(sources.source_files())
    on_disk = set(ROOT.glob('extensions/**/src/*.cu')) | set(ROOT.glob('extensions/**/src/*.cpp'))
    assert listed == on_disk and sources.kernel_files()
    assert sources.source_hash() == sources.source_hash() > 0


@pytest.mark.skipif(torch.version.cuda is not None, reason='torch is a CUDA build')
def test_setup_explains_why_nothing_is_built_on_cpu_torch():
    result = subprocess.run([sys.executable, 'extensions/setup.py', 'build_ext', '--inplace'],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert 'CPU build' in result.stderr and 'reference' in result.stderr
    assert not list(ROOT.glob(f'extensions/{sources.MODULE_NAME}*.so'))


def test_public_api():
    assert set(extensions.__all__) == {
        'backend_info', 'ball_query', 'chamfer_distance', 'furthest_point_sample',
        'gather_points', 'group_points', 'interpolate_idw', 'knn_points', 'three_interpolate',
        'three_nn'}
