"""Independent runs side by side (``--jobs`` of tools/evaluate.py and tools/demo.py).

A suite's runs depend on each other only through ``Run.needs``; ``chains`` groups each run with
the runs that need it (transitively), and ``run_chains`` executes up to ``jobs`` chains at once
in a thread pool, each chain's steps in order. Every run is its own process, so the threads only
wait; the CPUs are split between the processes instead: ``thread_env`` gives each run
``OMP_NUM_THREADS = MKL_NUM_THREADS = max(1, CPUs // jobs)`` and ``loader_workers`` its
``--num_workers``. ``tagged`` prefixes a concurrent run's log lines with its name.
``subprocess_runner`` runs one command into its log; ``exit_reason`` reports a failed one.
"""
import argparse
import os
import shlex
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor, wait

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # the project root, where commands run
THREAD_VARS = ('OMP_NUM_THREADS', 'MKL_NUM_THREADS')
_LOG_LOCK = threading.Lock()


def cpu_count():
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def parse_jobs(text):
    """``--jobs`` as argparse reads it: 'auto' or an integer >= 1."""
    if text == 'auto':
        return text
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected 'auto' or an integer >= 1, got '{text}'")
    return int(text)


def add_jobs_argument(parser):
    """``--jobs`` of tools/evaluate.py and tools/demo.py."""
    parser.add_argument('--jobs', type=parse_jobs, default='auto',
                        help='independent runs at once, each with CPUs/jobs threads (OMP_NUM_THREADS, unless '
                             'set); auto: 2 on a CPU with >= 2 cores, else 1 (CUDA, torchrun)')


def resolve_jobs(jobs, device='auto', nproc=1, cpus=None):
    """The number of runs at once: ``jobs`` itself, or for 'auto' 1 on CUDA (device 'cuda', or
    'auto' with a GPU: the runs would share one GPU) and under torchrun (``nproc`` > 1), else 2
    when at least 2 CPUs are available, else 1."""
    if jobs != 'auto':
        if int(jobs) < 1:
            raise ValueError(f'jobs must be >= 1, got {jobs}')
        return int(jobs)
    if nproc > 1 or device == 'cuda':
        return 1
    if device == 'auto':
        import torch
        if torch.cuda.is_available():
            return 1
    return 2 if (cpus or cpu_count()) >= 2 else 1


def thread_env(jobs, cpus=None, environ=None):
    """Environment variables to add for each run: with ``jobs`` > 1, ``THREAD_VARS`` =
    max(1, CPUs // jobs) (a variable already set keeps its value); None with one job or when
    OMP_NUM_THREADS is already set (the user's choice wins)."""
    environ = os.environ if environ is None else environ
    if jobs <= 1 or 'OMP_NUM_THREADS' in environ:
        return None
    threads = str(max(1, (cpus or cpu_count()) // jobs))
    return {name: threads for name in THREAD_VARS if name not in environ}


def loader_workers(num_workers, jobs):
    """``--num_workers`` of each run: the given value; by default (None) 2 with one job and 0
    with more (the CPUs go to the concurrent runs, not to loader processes forked every epoch)."""
    if num_workers is not None:
        return num_workers
    return 2 if jobs <= 1 else 0


def command_text(argv, env=None):
    """A command as a shell line, the added environment in front ('OMP_NUM_THREADS=1 py main.py ...')."""
    return ' '.join([f'{k}={shlex.quote(v)}' for k, v in (env or {}).items()] + [shlex.join(argv)])


def tagged(log, tag, jobs=2):
    """``log`` with each line prefixed '[tag] ' (leading blanks dropped), one line at a time, when
    runs go side by side (``jobs`` > 1); ``log`` itself otherwise."""
    if jobs <= 1:
        return log

    def out(line):
        with _LOG_LOCK:
            log(f'[{tag}] {line.lstrip()}')
    return out


def chains(keys, needs):
    """Group items into chains. ``keys``: the items' hashable keys in order; ``needs``: the key of
    the item each needs, or None. Returns lists of positions (ascending), each an item with every
    item that needs it directly or transitively, ordered by their first position; an item whose
    need is not in ``keys`` stands alone."""
    position = {key: i for i, key in enumerate(keys)}
    root = list(range(len(keys)))

    def find(i):
        while root[i] != i:
            root[i] = root[root[i]]
            i = root[i]
        return i

    for i, need in enumerate(needs):
        if need is not None and need in position:
            root[find(i)] = find(position[need])
    groups = {}
    for i in range(len(keys)):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())   # a group enters the dict at its first (smallest) position


def run_chains(steps, jobs):
    """Run every chain of ``steps`` (lists of zero-argument callables), each chain in order, up to
    ``jobs`` chains at once; with one job in the calling thread, chain after chain. With more, a
    step that raises ends its own chain only: the others run on and the first error (in chain
    order) is raised at the end. An interrupt (Ctrl-C) cancels the chains not started and stops
    the running ones after their current step."""
    if jobs <= 1:
        for chain in steps:
            for step in chain:
                step()
        return
    stop = threading.Event()

    def run(chain):
        for step in chain:
            if stop.is_set():
                return
            step()

    pool = ThreadPoolExecutor(max_workers=jobs)
    futures = [pool.submit(run, chain) for chain in steps]
    try:
        wait(futures)
    except BaseException:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    for future in futures:
        if future.exception() is not None:
            raise future.exception()


def subprocess_runner(argv, log_path, env=None, cwd=ROOT):
    """Run ``argv`` in the project root, stdout and stderr into ``log_path``, ``env`` (a dict or
    None) added to this process's environment; return the exit status."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, 'w') as log:
        return subprocess.run(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, check=False,
                              env={**os.environ, **env} if env else None).returncode


def last_line(path):
    """The last non-empty line of a log (main.py's one-line error), or ''."""
    try:
        with open(path, errors='replace') as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return ''
    return lines[-1][:300] if lines else ''


def exit_reason(rc, log_path, shown=None):
    """'exit status N: <the log's last line> (log: <shown, default log_path>)': what a failed
    command is reported with."""
    return f'exit status {rc}: {last_line(log_path)} (log: {shown or log_path})'
