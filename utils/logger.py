"""Rank-aware text logging and a per-run metrics writer (JSON lines + TensorBoard).

* ``get_logger`` configures one named logger once: rank 0 logs INFO and up to the console
  (through ``tqdm.write``, so progress bars stay intact) and, when given, to a log file
  with timestamps; other ranks log only warnings and errors, to the console. The rank is
  read when each record is emitted, so a logger created before the process group starts
  still behaves correctly afterwards.
* ``MetricsWriter`` appends one JSON object per ``write`` to ``<log_dir>/metrics.jsonl``
  and mirrors the values as TensorBoard scalars.
"""
import json
import logging
import math
import os
import sys
import time
import warnings

import torch

from utils.dist import get_rank, is_main_process

LOG_FORMAT = '%(asctime)s - %(name)s - %(levelname)s - %(rank_tag)s%(message)s'
METRICS_FILE = 'metrics.jsonl'
RESERVED_FIELDS = ('tag', 'step', 'epoch', 'time')


class _RankFilter(logging.Filter):
    """Pass everything on rank 0, warnings and errors elsewhere; tag records with the rank."""

    def __init__(self, main_only=False):
        super().__init__()
        self.main_only = main_only

    def filter(self, record):
        rank = get_rank()
        record.rank_tag = '' if rank == 0 else f'[rank {rank}] '
        if rank == 0:
            return True
        return not self.main_only and record.levelno >= logging.WARNING


class _ConsoleHandler(logging.StreamHandler):
    """Console handler that prints through ``tqdm.write`` so active progress bars survive."""

    def emit(self, record):
        try:
            from tqdm import tqdm
            tqdm.write(self.format(record), file=self.stream)
        except ImportError:
            super().emit(record)
        except Exception:
            self.handleError(record)


def get_logger(name='maskclu', log_file=None):
    """Return the named logger, adding its handlers on the first call only.

    A console handler is added once. ``log_file`` adds a file handler (appending) that only
    rank 0 writes to; a later call with a different file replaces it, the same file is a
    no-op. Child loggers (``maskclu.xxx``) propagate to this one.
    """
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if not any(isinstance(h, _ConsoleHandler) for h in logger.handlers):
        logger.addHandler(_make_handler(_ConsoleHandler(sys.stderr), main_only=False))
    if log_file is not None:
        _set_file_handler(logger, os.path.abspath(log_file))
    return logger


def _make_handler(handler, main_only):
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(_RankFilter(main_only))
    return handler


def _set_file_handler(logger, path):
    """Attach a file handler for ``path``, replacing any other file handler of ``logger``."""
    for handler in [h for h in logger.handlers if isinstance(h, logging.FileHandler)]:
        if handler.baseFilename == path:
            return
        logger.removeHandler(handler)
        handler.close()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # delay=True: the file is opened on the first record, which only rank 0 emits.
    logger.addHandler(_make_handler(logging.FileHandler(path, mode='a', delay=True), main_only=True))


class MetricsWriter:
    """Append scalar metrics to ``<log_dir>/metrics.jsonl`` and TensorBoard.

    Each ``write`` adds one line ``{"tag": prefix, "step": step, "epoch": epoch, "time": unix
    seconds, name: value, ...}`` (``epoch`` only when given) and flushes it, so a crashed run
    keeps its metrics and ``--resume`` continues the same file (after a resume, steps logged
    after the last checkpoint appear twice: keep the last line per (tag, step)). Non-finite
    values are written as ``null`` so every line is strict JSON; TensorBoard gets them as is.

    Pass values already reduced across ranks (and averaged over the logging interval): the
    writer converts tensors to floats with one transfer per device and call, which is a host
    sync, so call it at logging intervals rather than every step. A disabled writer (all
    ranks but the main one, by default) does nothing and forces no sync.
    """

    def __init__(self, log_dir, enabled=None):
        self.enabled = is_main_process() if enabled is None else bool(enabled)
        self.log_dir = log_dir
        self._file = None
        self._tb = None
        if self.enabled:
            os.makedirs(log_dir, exist_ok=True)
            self._file = open(os.path.join(log_dir, METRICS_FILE), 'a', encoding='utf-8')
            self._tb = _open_tensorboard(log_dir)

    def write(self, values, step, prefix='train', epoch=None):
        """Record ``values`` (name -> number or scalar tensor) at ``step`` under ``prefix``."""
        if not self.enabled:
            return
        clash = [k for k in values if k in RESERVED_FIELDS]
        if clash:
            raise ValueError(f"metric names {clash} clash with the reserved fields {list(RESERVED_FIELDS)}")
        scalars = to_floats(values)
        record = {'tag': prefix, 'step': int(step)}
        if epoch is not None:
            record['epoch'] = int(epoch)
        record['time'] = round(time.time(), 3)
        record.update({k: v if math.isfinite(v) else None for k, v in scalars.items()})
        self._file.write(json.dumps(record, allow_nan=False) + '\n')
        self._file.flush()
        if self._tb is not None:
            for name, value in scalars.items():
                self._tb.add_scalar(f'{prefix}/{name}', value, int(step))

    def close(self):
        """Flush and close both outputs; further writes are ignored."""
        if self._file is not None:
            self._file.close()
        if self._tb is not None:
            self._tb.close()
        self._file = self._tb = None
        self.enabled = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_TB_WARNED = []


def _open_tensorboard(log_dir):
    """A ``SummaryWriter`` on ``log_dir``, or None (with one warning) without tensorboard."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        if not _TB_WARNED:
            warnings.warn(f"tensorboard is not installed ({e}); metrics go to {METRICS_FILE} only")
            _TB_WARNED.append(True)
        return None
    return SummaryWriter(log_dir)


def to_floats(values):
    """Convert a dict of numbers / one-element tensors to python floats.

    Tensors are gathered per device into one stacked tensor and copied to the host once.
    """
    out = {}
    by_device = {}
    for name, value in values.items():
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise ValueError(f"metric '{name}' must be a scalar, got a tensor of shape {tuple(value.shape)}")
            by_device.setdefault(value.device, []).append(name)
        else:
            out[name] = float(value)
    for names in by_device.values():
        stacked = torch.stack([values[n].detach().reshape(()).to(torch.float64) for n in names])
        out.update(zip(names, stacked.tolist()))
    return {name: out[name] for name in values}
