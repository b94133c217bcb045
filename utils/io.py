"""Atomic file writes: every checkpoint, config, cache and list the project writes goes through here."""
import contextlib
import json
import math
import os
import re
import uuid

# ``.<name>.<8 hex>.tmp``: the temporary file of an ``atomic_write`` of ``<name>``.
TEMP_FILE = re.compile(r'^\..+\.[0-9a-f]{8}\.tmp$')


@contextlib.contextmanager
def atomic_write(path, mode='wb'):
    """Yield a file object for a hidden temporary file next to ``path``; on success flush,
    fsync and rename it over ``path`` (then fsync the folder). Any failure, KeyboardInterrupt
    included, removes the temporary file and leaves a previous ``path`` untouched; an
    ``OSError`` of the write itself (a full disk) is raised again naming ``path``."""
    if mode not in ('wb', 'w'):
        raise ValueError(f"atomic_write: mode must be 'wb' or 'w', got {mode!r}")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f'.{os.path.basename(path)}.{uuid.uuid4().hex[:8]}.tmp')  # TEMP_FILE
    created = False
    try:
        with open(tmp, mode.replace('w', 'x')) as f:
            created = True
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if created:  # never a second error from the clean-up (a read-only or full file system)
            with contextlib.suppress(OSError):
                os.remove(tmp)
        if isinstance(e, OSError) and e.filename is None:  # a failed write/flush/fsync: name the file
            raise OSError(e.errno, e.strerror or str(e), path) from None
        raise
    _fsync_dir(folder)


def _fsync_dir(folder):
    """Persist the rename itself (POSIX); silently skipped where folders cannot be opened."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_json(path, data):
    """Write ``data`` (dicts, lists, numbers, strings, None) as indented strict JSON, atomically;
    non-finite floats become null."""
    def finite(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: finite(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [finite(v) for v in value]
        return value
    with atomic_write(path, 'w') as f:
        json.dump(finite(data), f, indent=2, allow_nan=False)
        f.write('\n')


def remove_stale_temp_files(folder, before):
    """Delete the ``atomic_write`` temporary files (``TEMP_FILE``) in ``folder`` last modified
    before the time ``before`` (what a killed run left; call it while holding the folder's lock).
    Returns the names removed."""
    removed = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        path = os.path.join(folder, name)
        with contextlib.suppress(OSError):
            if TEMP_FILE.match(name) and os.path.isfile(path) and os.path.getmtime(path) < before:
                os.remove(path)
                removed.append(name)
    return removed
