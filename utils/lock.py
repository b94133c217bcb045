"""Exclusive lock on an experiment folder for the whole run: ``<exp>/.lock``.

A second run into the same folder (started while the first still runs) is refused with one line
naming the holder's PID, host and start time, before it writes anything. The lock is an
``fcntl.flock`` on ``<exp>/.lock``, which the kernel releases when the holder exits in any way
(SIGKILL included), so a killed run never blocks the folder; the file also holds the holder's
``{"pid", "host", "started"}`` (JSON). A clean exit empties the file (it is never deleted: a
deleted lock file lets two runs lock two different files). A non-empty file whose lock is free is
what a killed run left behind: the new run takes it over and says whose it was
(``ExperimentLock.stale``). Where a file system has no ``flock`` (some network mounts), the PID in
the file decides, on the same host: a live process holds the folder, a dead one left it stale.
"""
import contextlib
import errno
import json
import os
import socket
import time

try:
    import fcntl
except ImportError:  # not POSIX: the PID fallback only
    fcntl = None

LOCK_NAME = '.lock'


class ExperimentLockedError(RuntimeError):
    """Another live run holds the experiment folder; the message names its PID and start time."""


def describe(holder):
    """``PID 123 on host, started 2026-01-01 10:00:00 UTC`` from a lock file's content."""
    started = holder.get('started')
    when = time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(started)) if isinstance(started, (int, float)) else '?'
    return f"PID {holder.get('pid', '?')} on {holder.get('host', '?')}, started {when}"


class ExperimentLock:
    """``with ExperimentLock(folder) as lock:`` holds ``<folder>/.lock`` (the folder is created).

    Raises ``ExperimentLockedError`` when a live run holds it. ``lock.started`` is the time
    (``time.time()``) it was taken; ``lock.stale`` the holder record of a killed run that was
    taken over (else None).
    """

    def __init__(self, folder):
        self.folder = os.fspath(folder)
        self.path = os.path.join(self.folder, LOCK_NAME)
        self.fd, self.started, self.stale = None, None, None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()

    def acquire(self):
        os.makedirs(self.folder, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not self._lock(fd):
                raise ExperimentLockedError(
                    f"{self.folder} is in use by another run ({describe(self._holder(fd))}); wait for it to "
                    f"finish or use another --exp_name (its lock: {self.path})")
            self.stale = self._read(fd) or None
            self.started = time.time()
            self._write(fd, {'pid': os.getpid(), 'host': socket.gethostname(), 'started': self.started})
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def release(self):
        """Empty the lock file and unlock it (the kernel unlocks on any exit anyway)."""
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self.fd, 0)
        os.close(self.fd)  # closing the only descriptor releases the flock
        self.fd = None

    def _lock(self, fd):
        """True when this process now holds the lock (``flock``, else the PID in the file)."""
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except OSError as e:
                if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    return False
                # no flock on this file system: fall through to the PID check
        return not holder_alive(self._read(fd))

    def _holder(self, fd):
        """The holder's record; it may be a moment from being written (it locks, then writes)."""
        for _ in range(20):
            holder = self._read(fd)
            if holder:
                return holder
            time.sleep(0.05)
        return {}

    @staticmethod
    def _read(fd):
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 4096).decode(errors='replace').strip()
        if not text:
            return {}
        try:
            holder = json.loads(text)
        except ValueError:
            return {'pid': '?', 'note': text[:80]}
        return holder if isinstance(holder, dict) else {}

    @staticmethod
    def _write(fd, holder):
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(holder) + '\n').encode())
        os.fsync(fd)


def holder_alive(holder):
    """Whether the process of a lock record still runs (only checkable on the same host;
    a record from another host counts as alive)."""
    pid = holder.get('pid')
    if not isinstance(pid, int) or pid <= 0:
        return False
    if holder.get('host') not in (None, socket.gethostname()):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
