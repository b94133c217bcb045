"""Benchmarks of whole training steps, in one run so the numbers compare.

    python scripts/benchmark.py pretrain --configs pretrain pretrain_released pretrain_pointmae \
        --batch 16 --device cpu [--amp off|bf16] [--repeats 10] [--json out.json]

For each config (``cfgs/<name>.yaml``; the model section only) it times a full training
step — forward, backward, optimizer — on synthetic unit-sphere clouds: the configs are
interleaved round-robin so machine noise hits them alike, and the median is reported
with its ratio to the baseline config (``--baseline``, default pretrain_pointmae). Three
more steps per config give the per-phase breakdown (the model's ``phase/*`` ranges plus
backward and optimizer).
Phases are timed by wall clock with the device synchronised at each range boundary
(``PhaseTimer``). Peak memory: CUDA max allocated, or on CPU the peak resident set
(VmHWM) of a child process that builds the model and runs the steps alone. ``--amp bf16`` runs
the steps under bf16 autocast (default off); on CUDA it also runs batch 128 in bf16.
"""
import argparse
import contextlib
import json
import multiprocessing as mp
import os
import resource
import statistics
import sys
import time

import torch
from torch.profiler import record_function

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from models import build_model  # noqa: E402
from tools.config_check import validate_config  # noqa: E402
from tools.optim import build_optimizer  # noqa: E402
from utils.config import load_config  # noqa: E402

PHASES = ('augment', 'patchify', 'embedding', 'encoder', 'target', 'decoder', 'heads', 'sinkhorn', 'backward',
          'optimizer')


def synthetic_clouds(batch, npoints, device, seed=0):
    """(B,N,3) points on unit spheres with random anisotropic scaling: cheap, shape-like input."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, npoints, 3, generator=g)
    x = x / x.norm(dim=-1, keepdim=True) * (0.5 + torch.rand(batch, 1, 3, generator=g))
    return x.to(device)


class StepBench:
    """One config's model + optimizer and a ``step()`` that does forward, backward, optimizer."""

    def __init__(self, name, batch, device, amp):
        path = os.path.join('cfgs', f'{name}.yaml')
        self.config = validate_config(load_config(path), path)
        self.name, self.device = name, device
        torch.manual_seed(0)
        self.model = build_model(self.config.model).to(device).train()
        self.optimizer = build_optimizer(self.model, self.config.optimizer)
        self.points = synthetic_clouds(batch, self.config.npoints, device)
        self.amp = amp

    def step(self):
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            out = self.model(self.points)
        with record_function('phase/backward'):
            out['loss'].backward()
        with record_function('phase/optimizer'):
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        return out

    def timed(self):
        sync(self.device)
        start = time.perf_counter()
        self.step()
        sync(self.device)
        return time.perf_counter() - start

    def phases(self, steps=3):
        """Median wall milliseconds per phase over ``steps`` steps (see ``PhaseTimer``)."""
        timer = PhaseTimer(self.device)
        with timer.installed():
            per_step = []
            for _ in range(steps):
                timer.totals.clear()
                self.step()
                per_step.append(dict(timer.totals))
        return {k: 1e3 * statistics.median(d.get(k, 0.0) for d in per_step) for k in per_step[0]}


class PhaseTimer:
    """Wall-clock time of the model's ``phase/*`` ranges, with the device synchronised at each
    boundary. It stands in for ``torch.profiler.record_function`` in the model modules while
    installed: the profiler's per-operator overhead would swamp phases made of many small
    operators (Sinkhorn's iterations), a plain timer does not. Nested ranges count in both.
    """

    def __init__(self, device):
        self.device, self.totals = device, {}

    @contextlib.contextmanager
    def range(self, name):
        sync(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            sync(self.device)
            key = name[len('phase/'):] if name.startswith('phase/') else name
            self.totals[key] = self.totals.get(key, 0.0) + time.perf_counter() - start

    @contextlib.contextmanager
    def installed(self):
        modules = [m for name, m in list(sys.modules.items())
                   if name.startswith('models') and hasattr(m, 'record_function')]
        saved = [m.record_function for m in modules]
        global record_function
        outer = record_function
        try:
            for m in modules:
                m.record_function = self.range
            record_function = self.range
            yield self
        finally:
            for m, original in zip(modules, saved):
                m.record_function = original
            record_function = outer


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def peak_rss_mb():
    """This process's peak resident set (MB): VmHWM (reset by exec, unlike ru_maxrss on Linux)."""
    try:
        with open('/proc/self/status') as f:
            line = next(l for l in f if l.startswith('VmHWM:'))
        return int(line.split()[1]) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child_peak_rss(name, batch, steps, amp, queue):
    bench = StepBench(name, batch, torch.device('cpu'), amp=amp)
    for _ in range(steps):
        bench.step()
    queue.put(peak_rss_mb())


def peak_memory_mb(bench, batch, steps=2):
    """CUDA: max allocated during ``steps`` steps. CPU: peak RSS (MB) of a child doing the same."""
    if bench.device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(bench.device)
        for _ in range(steps):
            bench.step()
        return torch.cuda.max_memory_allocated(bench.device) / 2**20
    ctx = mp.get_context('spawn')
    queue = ctx.Queue()
    proc = ctx.Process(target=_child_peak_rss, args=(bench.name, batch, steps, bench.amp, queue))
    proc.start()
    proc.join()
    return queue.get() if proc.exitcode == 0 else float('nan')


def bench_pretrain(names, batch, device, repeats, warmup, amp):
    benches = [StepBench(n, batch, device, amp) for n in names]
    for bench in benches:
        for _ in range(warmup):
            bench.step()
    times = {b.name: [] for b in benches}
    for _ in range(repeats):
        for bench in benches:
            times[bench.name].append(bench.timed())
    rows = []
    for bench in benches:
        median = statistics.median(times[bench.name])
        rows.append({'config': bench.name, 'batch': batch, 'amp_bf16': amp, 'device': str(device),
                     'step_ms': 1e3 * median, 'samples_per_s': batch / median,
                     'phases_ms': bench.phases(), 'peak_mem_mb': peak_memory_mb(bench, batch)})
    return rows


def add_ratios(rows, baseline):
    """Each row's step time over the baseline config's at the same batch (ratio 1.0 = baseline)."""
    for row in rows:
        base = [r for r in rows if r['config'] == baseline and r['batch'] == row['batch']]
        row['ratio_to_baseline'] = row['step_ms'] / base[0]['step_ms'] if base else float('nan')


def print_table(rows):
    head = f"{'config':<22}{'batch':>6}{'step ms':>10}{'ratio':>7}{'samples/s':>11}{'peak MB':>9}  phases ms"
    print(head)
    print('-' * len(head))
    for r in rows:
        ph = r['phases_ms']
        share = ' '.join(f"{k}={ph[k]:.1f}" for k in PHASES if k in ph)
        print(f"{r['config']:<22}{r['batch']:>6}{r['step_ms']:>10.1f}{r['ratio_to_baseline']:>7.2f}"
              f"{r['samples_per_s']:>11.1f}{r['peak_mem_mb']:>9.0f}  {share}")
    for r in rows:
        ph, step = r['phases_ms'], r['step_ms']
        dense = ph.get('heads', 0.0)
        print(f"{r['config']}: heads+sinkhorn {dense:.1f} ms = {100 * dense / step:.1f}% of the step "
              f"(sinkhorn alone {ph.get('sinkhorn', 0.0):.2f} ms)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('what', choices=['pretrain'])
    parser.add_argument('--configs', nargs='+', default=['pretrain', 'pretrain_released', 'pretrain_pointmae'])
    parser.add_argument('--baseline', default='pretrain_pointmae', help='config the ratio column divides by')
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--amp', default='off', choices=['off', 'bf16'], help='bf16 autocast of the forward')
    parser.add_argument('--json', default=None, help='write the numbers to this file')
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f'device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}')
    rows = bench_pretrain(args.configs, args.batch, device, args.repeats, args.warmup, amp=args.amp == 'bf16')
    if device.type == 'cuda':
        rows += bench_pretrain(args.configs, 128, device, args.repeats, args.warmup, amp=True)
    add_ratios(rows, args.baseline if args.baseline in args.configs else args.configs[0])
    print_table(rows)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=2)


if __name__ == '__main__':
    main()
