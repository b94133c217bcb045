"""Build the CUDA kernels of the MaskClu point-cloud ops into one module, ``maskclu_ops``.

    python extensions/setup.py build_ext --inplace         # -> extensions/maskclu_ops*.so
    pip install --no-build-isolation ./extensions          # -> site-packages/maskclu_ops*.so

Needs a CUDA build of torch and a CUDA toolkit (nvcc); ``--no-build-isolation`` makes pip use
the installed torch instead of fetching another. Without them there is nothing to build: the
ops run on their PyTorch reference. Set TORCH_CUDA_ARCH_LIST (e.g. "8.0;9.0") to choose the
GPU architectures.
"""
import os
import runpy
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = runpy.run_path(os.path.join(HERE, 'sources.py'))


def cuda_build_problem():
    """Why the kernels cannot be built here, or None when they can."""
    try:
        import torch
        from torch.utils.cpp_extension import CUDA_HOME
    except ImportError:
        return 'torch is not installed (pip: use --no-build-isolation to build against yours)'
    if torch.version.cuda is None:
        return f'torch {torch.__version__} is a CPU build'
    if CUDA_HOME is None:
        return 'no CUDA toolkit found (set CUDA_HOME or put nvcc on PATH)'
    return None


def main():
    problem = cuda_build_problem()
    if problem is not None:
        sys.exit(f'maskclu_ops: nothing built: {problem}. The ops still work: they use their '
                 'PyTorch reference (CPU or GPU), just more slowly on GPU.')
    from setuptools import setup
    from torch.utils.cpp_extension import BuildExtension, CUDAExtension

    os.chdir(HERE)  # so that --inplace puts the module next to this file
    sources = [os.path.relpath(path, HERE) for path in SOURCES['source_files']()]
    extension = CUDAExtension(
        SOURCES['MODULE_NAME'], sources,
        extra_compile_args={'cxx': SOURCES['CXX_FLAGS'] + [SOURCES['hash_define']()],
                            'nvcc': SOURCES['NVCC_FLAGS']})
    setup(name='maskclu-ops', version='1.0', description=__doc__.splitlines()[0],
          ext_modules=[extension], cmdclass={'build_ext': BuildExtension})


if __name__ == '__main__':
    main()
