"""Reading dataset files with errors that name the file; writes go through ``utils.io.atomic_write``.

Every problem with a dataset file or folder raises ``DatasetError`` (a ``ValueError``)
whose message names the file (or the config key and folder) and what was expected.
"""
import json
import os

import h5py
import numpy as np

from datasets import pickles
from utils.io import atomic_write

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_HINT = ("synthetic demo data in every supported layout is made by "
             "`python tools/make_demo_data.py` (writes data/demo/; configs in cfgs/demo/)")


class DatasetError(ValueError):
    """A dataset folder or file is missing, unreadable or holds unexpected content."""


def resolve_path(path):
    """A relative ``path`` is taken from the working directory, else from the project root."""
    path = os.path.expanduser(str(path))
    if os.path.isabs(path) or os.path.exists(path):
        return path
    in_project = os.path.join(PROJECT_ROOT, path)
    return in_project if os.path.exists(in_project) else path


def require_dir(path, key, layout):
    """Return the resolved folder ``path``; if missing, say which key, what layout, and the demo."""
    if path is None:
        raise DatasetError(f"config key {key} is not set; expected a folder holding {layout}")
    found = resolve_path(path)
    if not os.path.isdir(found):
        raise DatasetError(f"{key}={path!r}: folder not found (looked in {os.path.abspath(found)}). "
                           f"Expected {layout}. No dataset at hand? {DEMO_HINT}")
    return found


def require_file(path, what):
    """Raise if ``path`` is not a file; ``what`` says what the file should hold."""
    if not os.path.isfile(path):
        raise DatasetError(f"{path}: file not found (expected {what})")
    return path


def _read(path, what, reader):
    """Run ``reader(path)``; any failure becomes a DatasetError naming the file."""
    require_file(path, what)
    try:
        return reader(path)
    except DatasetError:
        raise
    except Exception as e:  # every parser has its own exception types
        raise DatasetError(f"{path}: cannot read {what} (truncated or corrupt?): "
                           f"{type(e).__name__}: {e}") from None


def read_lines(path, what='a list of names'):
    """Non-empty stripped lines of a text file."""
    def reader(p):
        with open(p) as f:
            return [line.strip() for line in f if line.strip()]
    return _read(path, what, reader)


def read_npy(path, what='a .npy point array'):
    return _read(path, what, lambda p: np.load(p, allow_pickle=False))


def read_text_array(path, delimiter=None, what='rows of numbers'):
    """A text table as a 2-D float32 array (n, C); a ragged or non-numeric row is an error."""
    array = _read(path, what, lambda p: np.loadtxt(p, delimiter=delimiter, dtype=np.float32, ndmin=2))
    if array.size == 0:
        raise DatasetError(f"{path}: no rows found (expected {what})")
    return array


def read_pickle(path, what='a pickle'):
    """Unpickle a dataset file with ``datasets.pickles.load`` (restricted to numeric data unless
    ``MASKCLU_TRUST_PICKLES=1``); a refused global is an error naming the file and the global."""
    def reader(p):
        with open(p, 'rb') as f:
            try:
                return pickles.load(f)
            except pickles.UnsafePickleError as e:
                raise DatasetError(
                    f"{p}: {e}: a dataset pickle holds only lists, tuples, dicts, numpy arrays and numeric "
                    f"scalars, and loading other objects can run code from the file. Only if you trust "
                    f"the file, set {pickles.TRUST_ENV}=1 to unpickle it fully") from None
    return _read(path, what, reader)


def read_json(path, what='JSON'):
    def reader(p):
        with open(p) as f:
            return json.load(f)
    return _read(path, what, reader)


def read_h5(path, keys, what='an HDF5 file'):
    """Arrays ``{key: array}`` from an HDF5 file opened read-only; a missing key names the file."""
    def reader(p):
        with h5py.File(p, 'r') as f:
            missing = [k for k in keys if k not in f]
            if missing:
                raise DatasetError(f"{p}: missing key(s) {', '.join(missing)}; found {', '.join(sorted(f))}")
            return {k: f[k][()] for k in keys}
    return _read(path, what, reader)


def check_shape(array, expected, path, what):
    """``expected`` is a tuple of ints, None meaning any size; the error shows the shape found."""
    shape = np.shape(array)
    ok = len(shape) == len(expected) and all(e is None or e == s for e, s in zip(expected, shape))
    if not ok:
        want = '(' + ', '.join('n' if e is None else str(e) for e in expected) + ')'
        raise DatasetError(f"{path}: {what} has shape {tuple(shape)}, expected {want}")


def check_finite(array, path, what='coordinates'):
    """Raise if ``array`` holds NaN or inf; names the file and the first bad row (axis 0)."""
    bad = ~np.isfinite(array)
    if bad.any():
        first = int(np.argwhere(bad)[0][0])
        raise DatasetError(f"{path}: {what} contain NaN or inf ({int(bad.sum())} values; first at index {first})")


def write_text_rows(path, array, row_format):
    """Write a 2-D array as text, one ``row_format % tuple(row)`` line per row (fast, one call)."""
    array = np.asarray(array)
    text = ((row_format + '\n') * len(array)) % tuple(array.ravel().tolist())
    with atomic_write(path, 'w') as f:
        f.write(text)


def write_pickle(path, obj):
    """Pickle ``obj`` to ``path`` atomically, readable by old and new numpy (``datasets.pickles``)."""
    with atomic_write(path) as f:
        pickles.dump(obj, f)
