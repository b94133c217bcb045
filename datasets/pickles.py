"""How dataset pickles (the ModelNet ``.dat`` cache, the few-shot ``.pkl`` folds) are written and read.

The files must open wherever Point-MAE / Point-BERT users open theirs, with a plain
``pickle.load``:

* protocol 4 (Python >= 3.4; what ``pickle.dump`` writes by default on Python 3.8+);
* numpy arrays and scalars under numpy's old module name ``numpy.core.multiarray``.
  numpy 2 pickles them as ``numpy._core.multiarray._reconstruct`` / ``.scalar``, a module
  numpy < 1.26 does not have; the old name is what numpy 1.x writes, and numpy 2 keeps
  ``numpy.core.multiarray._reconstruct`` and ``.scalar`` importable, without a warning, for
  exactly this purpose. So one file reads under numpy 1.x and 2.x alike.

``dump(obj, file)`` applies both rules; ``global_names(data)`` lists the globals a pickle
refers to (what an unpickler will import), for checking a file.

Reading (``load(file)``) is restricted: these files are often downloaded from third-party
mirrors, and a plain ``pickle.load`` runs whatever a ``__reduce__`` payload asks for.
``SafeUnpickler`` admits only what the formats contain: lists, tuples, dicts, strings, numbers,
numpy arrays, numpy scalars and dtypes of numeric kinds (bool, int, uint, float, complex),
through numpy's reconstruct helpers under both ``numpy.core`` and ``numpy._core``. Any other
global is refused with ``UnsafePickleError`` naming it; ``MASKCLU_TRUST_PICKLES=1`` in the
environment (for trusted legacy files only) unpickles everything.
"""
import codecs
import os
import pickle
import pickletools

import numpy as np

PROTOCOL = 4
NEW_NUMPY_CORE = 'numpy._core'
OLD_NUMPY_CORE = 'numpy.core'


class LegacyNumpyPickler(pickle._Pickler):
    """A pickler that refers to ``numpy._core.*`` globals by their numpy 1.x names.

    The pure-Python pickler, because only its ``save_global`` can be overridden; the bulk of a
    dataset pickle is array bytes, so it takes about the C pickler's time (0.6-1.1x, measured
    on 500 cached ModelNet shapes).
    """

    def __init__(self, file):
        super().__init__(file, protocol=PROTOCOL)

    def save_global(self, obj, name=None):
        module = getattr(obj, '__module__', None) or ''
        if not module.startswith(NEW_NUMPY_CORE + '.') and module != NEW_NUMPY_CORE:
            return super().save_global(obj, name)
        self.save(OLD_NUMPY_CORE + module[len(NEW_NUMPY_CORE):])
        self.save(name or obj.__qualname__)
        self.write(pickle.STACK_GLOBAL)
        self.memoize(obj)


def dump(obj, file):
    """Pickle ``obj`` to the binary ``file`` by the rules of this module."""
    LegacyNumpyPickler(file).dump(obj)


STRING_OPS = ('SHORT_BINUNICODE', 'BINUNICODE', 'BINUNICODE8', 'UNICODE')
GET_OPS = ('BINGET', 'LONG_BINGET', 'GET')
PUT_OPS = ('BINPUT', 'LONG_BINPUT', 'PUT')


def global_names(data):
    """The ``module.name`` globals a pickle (bytes) refers to, in order of first use, read
    from its opcodes (nothing is imported): what an unpickler of the file will look up."""
    names, pushed, memo, last = [], [], {}, None
    for opcode, arg, _ in pickletools.genops(data):
        kind = opcode.name
        if kind == 'MEMOIZE' or kind in PUT_OPS:  # remembers the last object pushed
            memo[len(memo) if kind == 'MEMOIZE' else arg] = last
            continue
        last = arg if kind in STRING_OPS else memo.get(arg) if kind in GET_OPS else None
        if kind in STRING_OPS or kind in GET_OPS:
            pushed.append(last)
        elif kind == 'STACK_GLOBAL':
            names.append(f'{pushed[-2]}.{pushed[-1]}')
        elif kind == 'GLOBAL':
            names.append(arg.replace(' ', '.'))
    return list(dict.fromkeys(names))


# ------------------------------------------------------------------------------- reading

TRUST_ENV = 'MASKCLU_TRUST_PICKLES'
NUMERIC_KINDS = 'biufc'  # bool, signed/unsigned int, float, complex


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle refers to a global outside ``SAFE_GLOBALS`` or to a non-numeric dtype."""


def _numeric_dtype(*args, **kwargs):
    """``numpy.dtype`` for numeric kinds only (an object dtype would unpickle arbitrary objects)."""
    dtype = np.dtype(*args, **kwargs)
    if dtype.kind not in NUMERIC_KINDS or dtype.fields is not None:
        raise UnsafePickleError(f"refused numpy dtype {dtype!r} (only numeric dtypes are admitted)")
    return dtype


def _latin1_encode(text, encoding='latin1'):
    """``_codecs.encode`` as protocol-2 pickles use it for bytes: latin-1 only."""
    if encoding not in ('latin1', 'latin-1'):
        raise UnsafePickleError(f"refused _codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, 'latin1')


def _safe_globals():
    """``{(module, name): object}`` an unpickler of a dataset pickle may import."""
    core = getattr(np, '_core', None) or np.core
    out = {('numpy', 'ndarray'): np.ndarray, ('numpy', 'dtype'): _numeric_dtype,
           ('_codecs', 'encode'): _latin1_encode}
    for module in (OLD_NUMPY_CORE, NEW_NUMPY_CORE):
        out[(f'{module}.multiarray', '_reconstruct')] = core.multiarray._reconstruct
        out[(f'{module}.multiarray', 'scalar')] = core.multiarray.scalar
        out[(f'{module}.numeric', '_frombuffer')] = core.numeric._frombuffer  # protocol 5
    dtypes = getattr(np, 'dtypes', None)  # numpy >= 1.25: numpy.dtypes.Float32DType, ...
    for name in getattr(dtypes, '__all__', ()):
        cls = getattr(dtypes, name)
        if isinstance(cls, type) and getattr(cls, 'type', None) is not None \
                and np.dtype(cls.type).kind in NUMERIC_KINDS:
            out[('numpy.dtypes', name)] = cls
    return out


SAFE_GLOBALS = _safe_globals()


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that imports only ``SAFE_GLOBALS`` (see the module docstring)."""

    def find_class(self, module, name):
        try:
            return SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"refused global '{module}.{name}'") from None


def trusted():
    """True when ``MASKCLU_TRUST_PICKLES=1``: full unpickling (can run code from the file)."""
    return os.environ.get(TRUST_ENV, '') == '1'


def load(file):
    """Unpickle the binary ``file`` restricted to ``SAFE_GLOBALS``, or fully when ``trusted()``."""
    return pickle.load(file) if trusted() else SafeUnpickler(file).load()
