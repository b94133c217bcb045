"""Which implementation the ops use: the compiled CUDA kernels or the PyTorch reference.

CUDA tensors of a kernel dtype (float32, float64) use the kernels when the compiled module
``maskclu_ops`` can be had: a prebuilt one (``python extensions/setup.py build_ext --inplace``
or ``pip install --no-build-isolation ./extensions``) whose sources match, else one built on
first CUDA use with ``torch.utils.cpp_extension.load``. Everything else, and every call when
the module cannot be had (one warning says why), uses the reference. Nothing is imported or
built before a CUDA tensor reaches an op.

Environment:
    MASKCLU_OPS_REFERENCE=1   always use the reference.
    MASKCLU_OPS_CACHE=DIR     lazy-build folder (default $XDG_CACHE_HOME/maskclu/extensions,
                              i.e. ~/.cache/maskclu/extensions).
    MASKCLU_OPS_VERBOSE=1     show the compiler output of the lazy build.
"""
import functools
import importlib
import logging
import os
import warnings
from pathlib import Path

import torch

from extensions import sources

ENV_REFERENCE = 'MASKCLU_OPS_REFERENCE'
ENV_CACHE = 'MASKCLU_OPS_CACHE'
ENV_VERBOSE = 'MASKCLU_OPS_VERBOSE'
KERNEL_DTYPES = (torch.float32, torch.float64)

log = logging.getLogger(__name__)


def _flag(name):
    return os.environ.get(name, '').strip().lower() not in ('', '0', 'false', 'no')


def reference_forced():
    """True when MASKCLU_OPS_REFERENCE asks for the reference everywhere."""
    return _flag(ENV_REFERENCE)


def cache_dir():
    """Folder of lazily built modules (one subfolder per torch/CUDA version)."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    base = os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache'
    return Path(base) / 'maskclu' / 'extensions'


def _import_prebuilt():
    """(module, origin) of a prebuilt module built from the current sources, or None."""
    for name in (f'extensions.{sources.MODULE_NAME}', sources.MODULE_NAME):
        try:
            module = importlib.import_module(name)
        except (ImportError, OSError):
            continue
        if getattr(module, 'source_hash', None) == sources.source_hash():
            return module, f'prebuilt {module.__file__}'
        log.warning('%s was built from older sources; ignoring it', module.__file__)
    return None


def _build():
    """(module, origin) of the module compiled into cache_dir(); raises when it cannot be."""
    if torch.version.cuda is None:
        raise RuntimeError(f'torch {torch.__version__} is not a CUDA build')
    from torch.utils.cpp_extension import CUDA_HOME, load
    if CUDA_HOME is None:
        raise RuntimeError('no CUDA toolkit found (set CUDA_HOME or put nvcc on PATH)')
    folder = cache_dir() / f'torch{torch.__version__}-cuda{torch.version.cuda}'
    folder.mkdir(parents=True, exist_ok=True)
    log.warning('compiling the CUDA kernels of the point-cloud ops into %s (first use only, '
                'about a minute)', folder)
    module = load(name=sources.MODULE_NAME, sources=[str(p) for p in sources.source_files()],
                  extra_cflags=sources.CXX_FLAGS + [sources.hash_define()],
                  extra_cuda_cflags=sources.NVCC_FLAGS, build_directory=str(folder),
                  verbose=_flag(ENV_VERBOSE))
    return module, f'built in {folder}'


@functools.lru_cache(maxsize=None)
def _load():
    """(module or None, how it was obtained or why not); tried once per process."""
    try:
        return _import_prebuilt() or _build()
    except Exception as error:  # noqa: BLE001 - any build failure falls back to the reference
        warnings.warn(f'point-cloud ops: CUDA kernels unavailable ({error}); using the PyTorch '
                      f'reference. Build them with `python extensions/setup.py build_ext '
                      f'--inplace`, or set {ENV_REFERENCE}=1 to silence this.', RuntimeWarning)
        return None, f'unavailable: {error}'


def compiled():
    """The compiled module, loading or building it on the first call; None if unavailable."""
    return _load()[0]


def use_kernels(tensor):
    """True when an op on `tensor` (its main floating input) should run the CUDA kernels."""
    return (tensor.is_cuda and tensor.dtype in KERNEL_DTYPES and not reference_forced()
            and compiled() is not None)


def backend_info():
    """What the ops use in this process, without loading or building anything.

    Returns a dict: ``cpu`` and ``cuda`` (the implementation tensors on that device get),
    ``kernels`` (state of the compiled module), ``reference_forced``, ``cache_dir``,
    ``kernel_dtypes``.
    """
    forced = reference_forced()
    if not torch.cuda.is_available():
        cuda = 'no CUDA device'
    elif forced:
        cuda = f'reference ({ENV_REFERENCE} set)'
    elif _load.cache_info().currsize:
        cuda = 'kernels' if compiled() is not None else 'reference (kernels unavailable)'
    else:
        cuda = 'kernels if they load or build on first use, else reference'
    kernels = _load()[1] if _load.cache_info().currsize else 'not loaded yet'
    return {'cpu': 'reference', 'cuda': cuda, 'kernels': kernels, 'reference_forced': forced,
            'cache_dir': str(cache_dir()), 'kernel_dtypes': [str(d) for d in KERNEL_DTYPES]}
