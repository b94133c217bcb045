"""The CUDA sources compile: every kernel with plain `nvcc -c` (no torch needed), and, in the
slow set, the torch bindings through a syntax-only pass of the host compiler."""
import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

from extensions import sources

NVCC = shutil.which('nvcc')


def _run_all(commands, timeout=600):
    """Run the commands concurrently -> {name: output} of those that failed."""
    jobs = {name: subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True) for name, command in commands.items()}
    outputs = {name: job.communicate(timeout=timeout)[0] for name, job in jobs.items()}
    return {name: outputs[name][-5000:] for name, job in jobs.items() if job.returncode != 0}


@pytest.mark.skipif(NVCC is None, reason='nvcc is not on PATH')
def test_every_kernel_compiles_with_nvcc_alone(tmp_path):
    flags = ['-c', '-std=c++17', '-arch=sm_80', '-Wno-deprecated-gpu-targets',
             '--Werror', 'all-warnings', '-Xcompiler', '-Wall']
    kernels = sources.kernel_files()
    failures = _run_all({path.name: [NVCC, *flags, str(path), '-o', f'{tmp_path / path.name}.o']
                         for path in kernels})
    assert not failures, failures
    assert len(list(tmp_path.glob('*.o'))) == len(kernels) >= 6


def _cuda_include_dir():
    """The toolkit's include folder (nvcc may be a wrapper script outside the toolkit)."""
    homes = [os.environ.get('CUDA_HOME'), os.environ.get('CUDA_PATH'), '/usr/local/cuda',
             os.path.dirname(os.path.dirname(os.path.realpath(NVCC)))]
    found = [Path(h) / 'include' for h in homes
             if h and (Path(h) / 'include' / 'cuda_runtime.h').exists()]
    if not found:
        pytest.skip('CUDA toolkit headers not found (set CUDA_HOME)')
    return found[0]


def _include_dirs(shim):
    from torch.utils.cpp_extension import include_paths
    return [shim, *include_paths(), sysconfig.get_paths()['include'], _cuda_include_dir()]


@pytest.mark.slow
@pytest.mark.skipif(NVCC is None or shutil.which('g++') is None, reason='needs nvcc and g++')
def test_bindings_parse_against_the_installed_torch(tmp_path):
    # CPU wheels of torch ship the c10/cuda headers but not this CMake-generated one.
    shim = tmp_path / 'c10' / 'cuda' / 'impl' / 'cuda_cmake_macros.h'
    shim.parent.mkdir(parents=True)
    shim.write_text('#pragma once\n')
    flags = ['-fsyntax-only', '-std=c++20', '-Wall',
             f'-DTORCH_EXTENSION_NAME={sources.MODULE_NAME}',
             *[f'-I{path}' for path in _include_dirs(tmp_path)]]
    bindings = [p for p in sources.source_files() if p.suffix == '.cpp']
    failures = _run_all({p.name: ['g++', *flags, str(p)] for p in bindings})
    assert not failures, failures


FORBIDDEN = ('torch', 'ATen', 'c10', 'pybind11', 'Python.h')


def test_cuda_sources_include_no_torch_headers():
    for path in sources.kernel_files() + sorted(sources.ROOT.glob('*/src/*.h')) + \
            sorted(sources.ROOT.glob('src/*.cuh')):
        includes = [line for line in path.read_text().splitlines() if line.startswith('#include')]
        assert not [line for line in includes if any(name in line for name in FORBIDDEN)], path
