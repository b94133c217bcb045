"""How dataset pickles (the ModelNet ``.dat`` cache, the few-shot ``.pkl`` folds) are written.

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
"""
import pickle
import pickletools

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
