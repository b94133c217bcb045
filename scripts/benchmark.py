"""Benchmarks of whole training steps, in one run so the numbers compare.

    python scripts/benchmark.py pretrain --configs pretrain pretrain_released pretrain_pointmae \
        --batch 16 --device cpu [--amp off|bf16] [--repeats 10] [--json out.json]
    python scripts/benchmark.py finetune --device cpu [--batch 32] [--repeats 5] [--vote_clouds 32] [--json out.json]
    python scripts/benchmark.py partseg --device cpu [--batch 16] [--types full frozen] [--repeats 3] [--json out.json]

``finetune`` (``bench_finetune``): the full-size fine-tuning step of ``cfgs/finetune_modelnet.yaml``
(B=32, 8192-point synthetic clouds through the training data path: FPS to 1200, a random 1024,
scale-and-translate; G=64; forward, cross-entropy, backward, AdamW with clipping) for each
protocol (full, linear, mlp3), interleaved; and the voting test's throughput (test clouds per
second, V=10 votes each) done the project's way (FPS to 1200 once per cloud, cached:
``tools.classification.VotingTest``) beside the naive way (FPS recomputed from the 8192 points
for every vote, as Point-MAE does), the two interleaved repeat by repeat.

``partseg``: the part-segmentation step at full size (B=16, 2048 points, G=128), see
``scripts/benchmark_partseg.py``; it shares this module's timing (``interleaved_times``,
``StepBench.timed`` / ``phases``) and peak memory (``peak_memory_mb``).

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
from utils.transforms import fps_downsample  # noqa: E402

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

    def spawn_args(self, batch):
        """(class, args) that rebuild this bench on the CPU in a child process (peak memory)."""
        return StepBench, (self.name, batch, torch.device('cpu'), self.amp)

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


def _child_peak_rss(cls, args, steps, queue):
    bench = cls(*args)
    for _ in range(steps):
        bench.step()
    queue.put(peak_rss_mb())


def peak_memory_mb(bench, batch, steps=2):
    """CUDA: max allocated during ``steps`` steps. CPU: peak RSS (MB) of a child that rebuilds the
    bench (``bench.spawn_args(batch)``) and does the same."""
    if bench.device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(bench.device)
        for _ in range(steps):
            bench.step()
        return torch.cuda.max_memory_allocated(bench.device) / 2**20
    ctx = mp.get_context('spawn')
    queue = ctx.Queue()
    proc = ctx.Process(target=_child_peak_rss, args=(*bench.spawn_args(batch), steps, queue))
    proc.start()
    result = queue.get()   # before join: a child blocked on a full pipe would never exit
    proc.join()
    return result if proc.exitcode == 0 else float('nan')


def interleaved_times(benches, repeats, warmup):
    """``warmup`` untimed steps per bench, then ``repeats`` rounds timing one step of each bench in
    turn (round-robin, so machine noise hits them alike) -> {bench.name: [seconds]}."""
    for bench in benches:
        for _ in range(warmup):
            bench.step()
    times = {b.name: [] for b in benches}
    for _ in range(repeats):
        for bench in benches:
            times[bench.name].append(bench.timed())
    return times


def step_rows(benches, batch, device, repeats, warmup, amp, key, phase_steps=3, memory_steps=None):
    """Time ``benches`` interleaved; one row each: {key: name, batch, amp_bf16, device, step_ms (median),
    step_ms_all, samples_per_s, phases_ms} and, with ``memory_steps``, peak_mem_mb."""
    times = interleaved_times(benches, repeats, warmup)
    rows = []
    for bench in benches:
        median = statistics.median(times[bench.name])
        row = {key: bench.name, 'batch': batch, 'amp_bf16': amp, 'device': str(device), 'step_ms': 1e3 * median,
               'step_ms_all': [1e3 * t for t in times[bench.name]], 'samples_per_s': batch / median,
               'phases_ms': bench.phases(steps=phase_steps)}
        if memory_steps:
            row['peak_mem_mb'] = peak_memory_mb(bench, batch, steps=memory_steps)
        rows.append(row)
    return rows


def bench_pretrain(names, batch, device, repeats, warmup, amp):
    return step_rows([StepBench(n, batch, device, amp) for n in names], batch, device, repeats, warmup, amp,
                     'config', memory_steps=2)


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


FINETUNE_CONFIG = os.path.join('cfgs', 'finetune_modelnet.yaml')


class FinetuneBench(StepBench):
    """One classification protocol's fine-tuning step (data path included) on synthetic clouds."""

    def __init__(self, model_type, batch, device, amp, raw_points=8192):
        # not StepBench.__init__, which builds a pre-training config by name
        from models.encoder import default_open_keys
        from tools.classification import classification_config
        from utils.transforms import build_transforms
        self.config = validate_config(load_config(FINETUNE_CONFIG), FINETUNE_CONFIG)
        self.name, self.device, self.amp = model_type, device, amp
        torch.manual_seed(0)
        model_cfg, _ = default_open_keys({**self.config.model.to_dict(), 'type': model_type})
        self.model = build_model(model_cfg).to(device).train()
        self.optimizer = build_optimizer(self.model, self.config.optimizer)
        self.raw = synthetic_clouds(batch, raw_points, device)
        self.labels = torch.arange(batch, device=device) % model_cfg['cls_dim']
        self.fps_points = classification_config(self.config)['fps_points']
        self.transforms = build_transforms(self.config.train_transforms)

    def step(self):
        from tools.classification import train_points
        with record_function('phase/augment'):
            points = train_points(self.raw, self.config.npoints, self.fps_points, self.transforms)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            logits = self.model(points)
        loss = torch.nn.functional.cross_entropy(logits.float(), self.labels)
        with record_function('phase/backward'):
            loss.backward()
        with record_function('phase/optimizer'):
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_norm_clip)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        return loss


@torch.no_grad()
def naive_vote_logits(model, raw, npoints, fps_points, votes, transforms, generator, batch_size):
    """Point-MAE's voting: every vote recomputes FPS to ``fps_points`` from the raw clouds (n, N, 3),
    then a random ``npoints`` of them, augmented; mean of the V logit vectors (n, K)."""
    from tools.classification import random_subset
    out = []
    for start in range(0, len(raw), batch_size):
        chunk = raw[start:start + batch_size]
        logits = [model(transforms(random_subset(fps_downsample(chunk, fps_points), npoints, generator), generator))
                  for _ in range(votes)]
        out.append(torch.stack(logits).float().mean(0))
    return torch.cat(out)


def bench_voting(n_clouds, device, repeats, amp, batch=32, raw_points=8192):
    """Test clouds per second of one voting pass (V votes each): cached FPS vs FPS per vote, interleaved.
    The cache is built once before timing (its time is reported on its own)."""
    from tools.classification import VotingTest
    bench = FinetuneBench('full', batch, device, amp, raw_points)
    model = bench.model.eval()
    cfg = bench.config.classification
    raw = synthetic_clouds(n_clouds, raw_points, device, seed=1)
    loader = [('ModelNet', 'sample', (raw[i:i + batch], torch.zeros(len(raw[i:i + batch]), dtype=torch.long)))
              for i in range(0, n_clouds, batch)]
    autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)  # noqa: E731
    test = VotingTest(loader, device, npoints=bench.config.npoints, fps_points=cfg.fps_points, votes=cfg.votes,
                      repeats=1, transforms=bench.transforms, num_classes=bench.config.model.cls_dim,
                      batch_size=batch, autocast=autocast)
    sync(device)
    start = time.perf_counter()
    test.cache()
    sync(device)
    cache_s = time.perf_counter() - start
    times = {'cached': [], 'naive': []}
    for r in range(repeats):
        for way in ('cached', 'naive'):
            generator = torch.Generator(device).manual_seed(r)
            sync(device)
            start = time.perf_counter()
            if way == 'cached':
                test(model, seed=r)
            else:
                with autocast():
                    naive_vote_logits(model, raw, bench.config.npoints, cfg.fps_points, cfg.votes, bench.transforms,
                                      generator, batch)
            sync(device)
            times[way].append(time.perf_counter() - start)
    return [{'voting': way, 'clouds': n_clouds, 'votes': cfg.votes, 'device': str(device), 'amp_bf16': amp,
             'pass_s': statistics.median(t), 'clouds_per_s': n_clouds / statistics.median(t),
             'cache_build_s': cache_s if way == 'cached' else None} for way, t in times.items()]


def bench_finetune(batch, device, repeats, warmup, amp, types=('full', 'linear', 'mlp3')):
    """Rows {type, batch, amp_bf16, device, step_ms (median), samples_per_s, phases_ms} per protocol, interleaved."""
    return step_rows([FinetuneBench(t, batch, device, amp) for t in types], batch, device, repeats, warmup, amp,
                     'type', phase_steps=1)


def print_finetune(step_rows, vote_rows):
    head = f"{'type':<8}{'batch':>6}{'bf16':>6}{'step ms':>10}{'samples/s':>11}  phases ms"
    print(head)
    print('-' * len(head))
    for r in step_rows:
        share = ' '.join(f"{k}={r['phases_ms'][k]:.0f}" for k in PHASES if k in r['phases_ms'])
        print(f"{r['type']:<8}{r['batch']:>6}{str(r['amp_bf16']):>6}{r['step_ms']:>10.1f}{r['samples_per_s']:>11.1f}"
              f"  {share}")
    print(f"\n{'voting':<8}{'clouds':>7}{'votes':>6}{'bf16':>6}{'pass s':>9}{'clouds/s':>10}{'cache s':>9}")
    for r in vote_rows:
        cache = f"{r['cache_build_s']:.2f}" if r['cache_build_s'] is not None else '-'
        print(f"{r['voting']:<8}{r['clouds']:>7}{r['votes']:>6}{str(r['amp_bf16']):>6}{r['pass_s']:>9.2f}"
              f"{r['clouds_per_s']:>10.1f}{cache:>9}")


def main_finetune(args, device):
    print(f'device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}; '
          f'{FINETUNE_CONFIG} model (auto keys: 384 wide, 12 blocks, 4 channels), 1024 of 8192 points, G=64')
    amps = [False] + ([True] if device.type == 'cuda' else [])
    steps = [row for amp in amps for row in bench_finetune(args.batch, device, args.repeats, args.warmup, amp)]
    votes = [row for amp in amps for row in bench_voting(args.vote_clouds, device, args.repeats, amp)]
    print_finetune(steps, votes)
    return {'finetune_step': steps, 'voting': votes}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('what', choices=['pretrain', 'finetune', 'partseg'])
    parser.add_argument('--types', nargs='+', default=['full', 'frozen'], choices=['full', 'frozen'],
                        help='partseg: model types (full fine-tuning, frozen backbone)')
    parser.add_argument('--configs', nargs='+', default=['pretrain', 'pretrain_released', 'pretrain_pointmae'])
    parser.add_argument('--baseline', default='pretrain_pointmae', help='config the ratio column divides by')
    parser.add_argument('--batch', type=int, default=None, help='default 16 (pretrain, partseg), 32 (finetune)')
    parser.add_argument('--vote_clouds', type=int, default=32, help='finetune: test clouds of the voting benchmark')
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--amp', default='off', choices=['off', 'bf16'], help='bf16 autocast of the forward')
    parser.add_argument('--json', default=None, help='write the numbers to this file')
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.what == 'finetune':
        args.batch = args.batch or 32
        result = main_finetune(args, device)
        if args.json:
            with open(args.json, 'w') as f:
                json.dump(result, f, indent=2)
        return
    args.batch = args.batch or 16
    if args.what == 'partseg':
        from scripts.benchmark_partseg import main_partseg
        return main_partseg(args, device)
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
