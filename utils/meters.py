"""Running statistics for training loops: a windowed display meter and an exact average.

``SmoothedValue`` is for progress display (median/mean over the last few steps) and takes
python numbers. ``AverageMeter`` accumulates weighted sums and may be fed device tensors:
it then never copies to the host until an average is read, so the training step stays free
of host syncs. ``reduce_meter`` sums an ``AverageMeter`` over DDP ranks (sums and count in
one all-reduce) so the global average is exact even with unequal per-rank counts.
"""
import collections
import copy
import statistics

import torch
import torch.distributed

from utils.dist import all_reduce_sum, is_dist


class SmoothedValue:
    """Track a series of floats: median and mean over a window, global mean, last value."""

    def __init__(self, window=20, fmt='{median:.4f} ({global_avg:.4f})'):
        self.values = collections.deque(maxlen=window)
        self.total = 0.0
        self.count = 0
        self.fmt = fmt

    def update(self, value, n=1):
        """Add ``value`` observed ``n`` times (``n`` weights the global mean only)."""
        value = float(value)
        self.values.append(value)
        self.total += value * n
        self.count += n

    @property
    def median(self):
        return statistics.median(self.values) if self.values else float('nan')

    @property
    def avg(self):
        return statistics.fmean(self.values) if self.values else float('nan')

    @property
    def global_avg(self):
        return self.total / self.count if self.count else float('nan')

    @property
    def last(self):
        return self.values[-1] if self.values else float('nan')

    def __str__(self):
        return self.fmt.format(median=self.median, avg=self.avg, global_avg=self.global_avg, last=self.last)


class AverageMeter:
    """Weighted running average of one value, or of several named values sharing one count.

    ``AverageMeter()`` takes ``update(value, n)`` with a number or a scalar tensor;
    ``AverageMeter(['loss', 'acc'])`` takes ``update({'loss': l, 'acc': a}, n)`` and reports
    dicts. ``value`` is the mean over ``n`` samples (it is weighted by ``n``). Tensor values
    are accumulated on their device without a host sync; ``sum`` then holds tensors and
    ``avg`` converts once when read.
    """

    def __init__(self, names=None):
        self.names = None if names is None else list(names)
        self._sums = [0.0] * (1 if names is None else len(self.names))
        self.count = 0

    def update(self, value, n=1):
        values = self._as_list(value)
        for i, v in enumerate(values):
            v = v.detach() if isinstance(v, torch.Tensor) else v
            self._sums[i] = self._sums[i] + v * n
        self.count += n

    def _as_list(self, value):
        if self.names is None:
            return [value]
        missing = [k for k in self.names if k not in value]
        extra = [k for k in value if k not in self.names]
        if missing or extra:
            raise KeyError(f"AverageMeter{self.names}: update is missing {missing}, has unknown {extra}")
        return [value[k] for k in self.names]

    @property
    def sum(self):
        return self._pack(self._sums)

    @property
    def avg(self):
        if not self.count:
            return self._pack([float('nan')] * len(self._sums))
        return self._pack([_to_float(s) / self.count for s in self._sums])

    def _pack(self, items):
        return items[0] if self.names is None else dict(zip(self.names, items))

    def reset(self):
        self._sums = [0.0] * len(self._sums)
        self.count = 0


def _to_float(value):
    return value.item() if isinstance(value, torch.Tensor) else float(value)


def reduce_meter(meter):
    """Return a copy of ``meter`` holding the sums and count over all ranks.

    Sums and count travel in one float64 tensor through ``all_reduce_sum``, so the global
    average is exact. Every rank must call it. Without DDP it returns a plain copy.
    """
    device = _reduce_device(meter._sums)
    packed = torch.stack([torch.as_tensor(s, dtype=torch.float64, device=device).reshape(())
                          for s in meter._sums + [meter.count]])
    totals = all_reduce_sum(packed).tolist()
    out = copy.copy(meter)
    out._sums = totals[:-1]
    out.count = type(meter.count)(totals[-1])
    return out


def _reduce_device(sums):
    """The device for the all-reduce: where the sums live, else what the backend needs."""
    for s in sums:
        if isinstance(s, torch.Tensor):
            return s.device
    if is_dist() and torch.distributed.get_backend() == 'nccl':
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')
