"""Opening an experiment folder for a run (``main.py`` and ``trainpartseg.py``): the steps that must
happen, in this order, before anything is built or written.

1. Lock the folder for the whole run (``utils.lock.ExperimentLock``; a second run is refused
   naming the holder's PID and start time, a killed run's lock is taken over).
2. The entry point's own check (``check``: no overwriting a finished run, no resuming a missing one).
3. On ``--resume``: compare the new resolved config with the saved one (``utils.run_config``).
4. Remove the temporary files a killed run left (older than the lock, ``utils.io``).
5. Only then write the resolved config (``config.yaml``, or ``config-resume-K.yaml`` beside it).

Every refusal is a ``SystemExit`` with one line starting with ``<prog>: error:``.
"""
from utils import dist
from utils.config import ConfigError
from utils.io import remove_stale_temp_files
from utils.lock import ExperimentLock, ExperimentLockedError, describe
from utils.run_config import check_resume_config, write_run_config


def open_experiment(path, config, stack, *, resume=False, allow_changes=(), check=None, prog='main.py'):
    """Steps 1-5 on the main process (the other ranks return at once); ``stack`` (an
    ``contextlib.ExitStack``) holds the lock until the run ends. Returns the lines to log."""
    if not dist.is_main_process():
        return []
    try:
        lock = stack.enter_context(ExperimentLock(path))
    except ExperimentLockedError as e:
        raise SystemExit(f'{prog}: error: {e}') from None
    except OSError as e:  # the folder under a plain file, a read-only folder, a full disk
        raise SystemExit(f'{prog}: error: cannot use the experiment folder {path}: {e.strerror or e} '
                         f'({e.filename})') from None
    if check is not None:
        check()
    try:
        changes = check_resume_config(path, config, allow_changes) if resume else None
        notes = [f'took over the lock of a run that did not finish ({describe(lock.stale)})'] if lock.stale else []
        removed = remove_stale_temp_files(path, lock.started)
        notes += [f'removed temporary files of an interrupted run: {", ".join(removed)}'] if removed else []
        notes += [f'--resume with changed {key}: {old!r} -> {new!r}' for key, old, new in changes or []]
        written = write_run_config(path, config, changes)
    except ConfigError as e:
        raise SystemExit(f'{prog}: error: {e}') from None
    except OSError as e:
        raise SystemExit(f'{prog}: error: cannot write in the experiment folder: {e}') from None
    return notes + ([f'config saved as {written}'] if written and changes else [])
