"""What the compiled module is built from, and how (shared by setup.py and the lazy build).

Importable without torch: setup.py loads this file by path.
"""
import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent
MODULE_NAME = 'maskclu_ops'
# Optimisation only: the C++ standard is the one torch.utils.cpp_extension picks for the
# installed torch (its headers need it); the kernels themselves compile as C++17 or later.
CXX_FLAGS = ['-O3']
NVCC_FLAGS = ['-O3']


def kernel_files():
    """The CUDA-runtime-only kernel sources (*.cu), sorted."""
    return sorted(ROOT.glob('*/src/*.cu'))


def source_files():
    """Every file compiled into the module: bindings (*.cpp) then kernels (*.cu), sorted."""
    return sorted(ROOT.glob('src/*.cpp')) + sorted(ROOT.glob('*/src/*.cpp')) + kernel_files()


def source_hash():
    """63-bit hash of every source and header, so a stale prebuilt module can be detected."""
    digest = hashlib.sha256()
    for path in sorted(ROOT.glob('src/*')) + sorted(ROOT.glob('*/src/*')):
        digest.update(path.relative_to(ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    return int(digest.hexdigest()[:15], 16)


def hash_define():
    """Compiler flag that stamps the module with source_hash()."""
    return f'-DMASKCLU_OPS_SOURCE_HASH={source_hash()}'
