"""``python scripts/benchmark.py partseg``: the part-segmentation training step at full size
(B=16, 2048 points, G=128).

    python scripts/benchmark.py partseg --device cpu [--types full frozen] [--batch 16] [--repeats 3] [--warmup 1] \
        [--json out.json]

For each model ``type`` (the model section of ``cfgs/partseg.yaml`` with ``type`` set: ``full``
fine-tuning, ``frozen`` backbone) it times a whole training step — forward (log-probabilities),
NLL over all points, backward, AdamW — on synthetic unit-sphere clouds with random categories
and valid part labels. Timing, phases and peak memory are scripts/benchmark.py's
(``interleaved_times``: the types round-robin, the median reported with its ratio to the first
type; ``PhaseTimer``: patchify, embedding, encoder, propagation, heads, backward, optimizer;
``peak_memory_mb``: CUDA max allocated, or on CPU the peak resident set of a child process that
builds the model and runs the steps alone). On CUDA the types are also run under bf16 autocast.
"""
import json
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import scripts.benchmark as base  # noqa: E402
from models import build_model  # noqa: E402
from models.partseg import nll_loss  # noqa: E402
from tools.optim import build_optimizer  # noqa: E402
from utils.config import load_config  # noqa: E402

CONFIG = os.path.join(ROOT, 'cfgs', 'partseg.yaml')
PHASES = ('patchify', 'embedding', 'encoder', 'propagation', 'heads', 'backward', 'optimizer')


def synthetic_parts(batch, npoints, points, seed=0):
    """Random categories (B,) and part labels (B, N) valid for them: the category's parts cut
    along the points' height (y), so labels are spatially coherent like real parts."""
    from datasets.shapenetpart_labels import PART_COUNTS
    counts = torch.tensor(PART_COUNTS)
    first = torch.cumsum(counts, 0) - counts
    category = torch.randint(len(counts), (batch,), generator=torch.Generator().manual_seed(seed))
    rank = points[..., 1].cpu().argsort(dim=1).argsort(dim=1)
    parts = first[category][:, None] + rank * counts[category][:, None] // npoints
    return category.to(points.device), parts.to(points.device)


class PartSegBench(base.StepBench):
    """One model type's model + AdamW and a ``step()`` doing forward, NLL, backward, optimizer;
    ``timed()`` and ``phases()`` are scripts/benchmark.py's (its ``PhaseTimer`` also stands in for
    the ``base.record_function`` ranges of ``step``)."""

    def __init__(self, model_type, batch, device, amp=False, config=CONFIG):
        # not StepBench.__init__, which builds a pre-training config by name
        cfg = load_config(config)
        self.name, self.device, self.amp, self.config = model_type, device, amp, config
        torch.manual_seed(0)
        self.model = build_model({**cfg.model.to_dict(), 'type': model_type}).to(device).train()
        self.optimizer = build_optimizer(self.model, {'type': 'AdamW', 'kwargs': {
            'lr': cfg.learning_rate, 'weight_decay': cfg.weight_decay}})
        self.points = base.synthetic_clouds(batch, cfg.npoint, device)
        self.category, self.parts = synthetic_parts(batch, cfg.npoint, self.points)

    def spawn_args(self, batch):
        return PartSegBench, (self.name, batch, torch.device('cpu'), False, self.config)

    def step(self):
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            log_probs = self.model(self.points, self.category)
        loss = nll_loss(log_probs, self.parts)
        with base.record_function('phase/backward'):
            loss.backward()
        with base.record_function('phase/optimizer'):
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        return loss


def bench_partseg(types=('full', 'frozen'), batch=16, device=torch.device('cpu'), repeats=5, warmup=1, amp=False,
                  config=CONFIG):
    """Rows {type, batch, amp_bf16, device, step_ms (median), step_ms_all, samples_per_s, phases_ms,
    peak_mem_mb, ratio_to_first} for each model type, timed interleaved (``config``: a part-segmentation
    config whose model section, npoint, learning_rate and weight_decay are used)."""
    rows = base.step_rows([PartSegBench(t, batch, device, amp, config) for t in types], batch, device, repeats,
                          warmup, amp, 'type', phase_steps=1, memory_steps=1)
    for row in rows:
        row['ratio_to_first'] = row['step_ms'] / rows[0]['step_ms']
    return rows


def print_table(rows):
    head = f"{'type':<8}{'batch':>6}{'step ms':>10}{'ratio':>7}{'samples/s':>11}{'peak MB':>9}  phases ms"
    print(head)
    print('-' * len(head))
    for r in rows:
        share = ' '.join(f"{k}={r['phases_ms'][k]:.0f}" for k in PHASES if k in r['phases_ms'])
        print(f"{r['type']:<8}{r['batch']:>6}{r['step_ms']:>10.1f}{r['ratio_to_first']:>7.2f}"
              f"{r['samples_per_s']:>11.2f}{r['peak_mem_mb']:>9.0f}  {share}")


def main_partseg(args, device):
    """scripts/benchmark.py's ``partseg`` subcommand (``args``: its parsed flags)."""
    print(f'device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}; '
          f'cfgs/partseg.yaml model, 2048 points, G=128')
    rows = bench_partseg(args.types, args.batch, device, args.repeats, args.warmup)
    if device.type == 'cuda':
        rows += bench_partseg(args.types, args.batch, device, args.repeats, args.warmup, amp=True)
    print_table(rows)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=2)
    return rows
