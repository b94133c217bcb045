"""Time the point-cloud ops at the sizes the models use: the PyTorch reference, and the CUDA
kernels when the device is CUDA and the compiled module is available.

    python scripts/benchmark_ops.py [--device cpu|cuda] [--repeats 5] [--json out.json]
                                    [--only NAME] [--threads T] [--fpsample]

Each op runs through its public entry in `extensions`, with MASKCLU_OPS_REFERENCE=1 for the
reference row; a time is the median over --repeats calls after one warm-up call. Also timed, at
the pre-training sizes (B=16): the Sinkhorn of `assign` (the paper default's 100 fixed pairs on
both views; the released tolerance rule on one view) and the graph head's kNN affinity. These have
no kernel: on CUDA both columns time the same code. --fpsample
adds CPU farthest point sampling by the `fpsample` package (one call per cloud), for
dataset-cache building, and whether it picks the same points as the reference.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import extensions as ops  # noqa: E402
from extensions import backend  # noqa: E402
from models.losses.assign import knn_affinity  # noqa: E402
from models.sinkhorn import sinkhorn  # noqa: E402


def _backward(outputs):
    """Backpropagate the sum of every floating output that has a graph."""
    torch.autograd.backward([o.sum() for o in outputs if o.requires_grad])


def cases(device):
    """[(name, sizes, make_inputs(generator) -> tuple, run(*inputs))] at the models' sizes."""
    def cloud(g, *shape):
        return torch.rand(*shape, generator=g).to(device)

    def grad_cloud(g, *shape):
        return cloud(g, *shape).requires_grad_()

    def assign_scores(g, rows, clusters):
        """-||X_i - c_p||^2 / tau_s (tau_s = 0.5) of 64 patch centers and ``clusters`` centroids."""
        x, c = cloud(g, rows, 64, 3), cloud(g, rows, clusters, 3)
        return (-(x.unsqueeze(2) - c.unsqueeze(1)).square().sum(-1) / 0.5,)

    return [
        ('furthest_point_sample', 'B=32 N=8192 -> 1200', lambda g: (cloud(g, 32, 8192, 3),),
         lambda x: ops.furthest_point_sample(x, 1200)),
        ('furthest_point_sample', 'B=128 N=1024 -> 64', lambda g: (cloud(g, 128, 1024, 3),),
         lambda x: ops.furthest_point_sample(x, 64)),
        ('furthest_point_sample', 'B=16 N=2048 -> 128', lambda g: (cloud(g, 16, 2048, 3),),
         lambda x: ops.furthest_point_sample(x, 128)),
        ('knn_points', 'B=128 G=64 N=1024 k=32',
         lambda g: (cloud(g, 128, 64, 3), cloud(g, 128, 1024, 3)),
         lambda q, r: ops.knn_points(q, r, 32)),
        ('group_points', 'B=128 N=1024 C=3 -> G=64 S=32',
         lambda g: (cloud(g, 128, 1024, 3), torch.randint(0, 1024, (128, 64, 32), generator=g)
                    .to(device)),
         ops.group_points),
        ('ball_query', 'B=16 G=128 N=2048 r=0.2 S=32',
         lambda g: (cloud(g, 16, 128, 3), cloud(g, 16, 2048, 3)),
         lambda c, x: ops.ball_query(c, x, 0.2, 32)),
        ('chamfer_distance', 'B=4864 n=m=32',
         lambda g: (cloud(g, 4864, 32, 3), cloud(g, 4864, 32, 3)), ops.chamfer_distance),
        ('chamfer_distance fwd+bwd', 'B=4864 n=m=32',
         lambda g: (grad_cloud(g, 4864, 32, 3), grad_cloud(g, 4864, 32, 3)),
         lambda x, y: _backward(ops.chamfer_distance(x, y)[:2])),
        ('chamfer_distance', 'B=32 n=m=2048',
         lambda g: (cloud(g, 32, 2048, 3), cloud(g, 32, 2048, 3)), ops.chamfer_distance),
        ('interpolate_idw', 'B=16 n=2048 m=128 C=384',
         lambda g: (cloud(g, 16, 2048, 3), cloud(g, 16, 128, 3), cloud(g, 16, 128, 384)),
         ops.interpolate_idw),
        ('interpolate_idw fwd+bwd', 'B=16 n=2048 m=128 C=384',
         lambda g: (cloud(g, 16, 2048, 3), cloud(g, 16, 128, 3), grad_cloud(g, 16, 128, 384)),
         lambda u, k, f: _backward([ops.interpolate_idw(u, k, f)])),
        ('sinkhorn', '2B=32 G=64 K=24 eps=0.01 100', lambda g: assign_scores(g, 32, 24),
         lambda s: sinkhorn(s, 0.01, 100)),
        ('sinkhorn tol columns', 'B=16 G=64 K=16 tol=0.01 <=100', lambda g: assign_scores(g, 16, 16),
         lambda s: sinkhorn(s, 0.01, 100, tol=0.01, normalise='columns')),
        ('knn_affinity', '2B=32 G=64 C=384 k=12', lambda g: (cloud(g, 32, 64, 3), cloud(g, 32, 64, 384)),
         lambda x, h: knn_affinity(x, h, 12)),
    ]


def median_ms(run, inputs, repeats, device):
    """Median wall time of run(*inputs) in milliseconds, after one warm-up call."""
    def once():
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        run(*inputs)
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        return (time.perf_counter() - start) * 1e3

    once()
    return statistics.median(once() for _ in range(repeats))


def implementations(device):
    """{label: value of MASKCLU_OPS_REFERENCE} to time on this device."""
    probe = torch.zeros(1, device=device)
    os.environ.pop(backend.ENV_REFERENCE, None)
    if device.type == 'cuda' and backend.use_kernels(probe):
        return {'reference': '1', 'kernel': ''}
    return {'reference': '1'}


def describe(device):
    if device.type == 'cuda':
        return f'{torch.cuda.get_device_name(device)} (torch {torch.__version__})'
    return (f'CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} '
            f'threads (torch {torch.__version__})')


def measure(device, repeats, only=None):
    """Rows {op, sizes, <implementation>_ms...} for every case (whose name contains `only`)."""
    impls = implementations(device)
    rows = []
    for name, sizes, make_inputs, run in cases(device):
        if only and only not in name:
            continue
        row = {'op': name, 'sizes': sizes}
        for label, forced in impls.items():
            os.environ[backend.ENV_REFERENCE] = forced
            inputs = make_inputs(torch.Generator().manual_seed(0))
            row[f'{label}_ms'] = median_ms(run, inputs, repeats, device)
        rows.append(row)
        print_row(row, impls)
    return rows


def print_row(row, impls):
    times = ''.join(f'{row[f"{label}_ms"]:>13.2f}' for label in impls)
    speedup = (f'{row["reference_ms"] / row["kernel_ms"]:>9.1f}x' if 'kernel' in impls else '')
    print(f'{row["op"]:<26}{row["sizes"]:<32}{times}{speedup}', flush=True)


def fpsample_rows(repeats):
    """Rows {sizes, method, ms, same_as_reference} comparing CPU FPS implementations."""
    import fpsample
    import numpy as np

    def per_cloud(sample, arr, npoint, **kwargs):
        return lambda: np.stack([sample(p, npoint, start_idx=0, **kwargs) for p in arr])

    cpu = torch.device('cpu')
    rows = []
    for B, N, npoint in [(1, 10000, 1200), (32, 10000, 1200), (128, 1024, 64)]:
        xyz = torch.rand(B, N, 3, generator=torch.Generator().manual_seed(0))
        arr = xyz.numpy()
        expected = ops.furthest_point_sample(xyz, npoint).numpy()
        methods = {
            'extensions (torch reference)': lambda: ops.furthest_point_sample(xyz, npoint),
            'fpsample.fps_sampling': per_cloud(fpsample.fps_sampling, arr, npoint),
            'fpsample.bucket_fps_kdline_sampling h=7':
                per_cloud(fpsample.bucket_fps_kdline_sampling, arr, npoint, h=7),
        }
        for method, run in methods.items():
            row = {'sizes': f'B={B} N={N} -> {npoint}', 'method': method,
                   'ms': median_ms(run, (), repeats, cpu),
                   'same_as_reference': bool(np.array_equal(np.asarray(run()), expected))}
            print(f'{row["sizes"]:<24}{method:<42}{row["ms"]:>10.1f}'
                  f'{"yes" if row["same_as_reference"] else "no":>6}', flush=True)
            rows.append(row)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', choices=['cpu', 'cuda'],
                        default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--json', type=Path, help='write the numbers to this file')
    parser.add_argument('--only', help='time only the ops whose name contains this')
    parser.add_argument('--threads', type=int, help='CPU threads for torch (default: its own)')
    parser.add_argument('--fpsample', action='store_true',
                        help='also compare CPU FPS with the fpsample package')
    args = parser.parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device')
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f'device: {describe(device)}; median of {args.repeats} runs, milliseconds')
    header = ''.join(f'{label + " ms":>13}' for label in implementations(device))
    print(f'{"op":<26}{"sizes":<32}{header}' + (' speed-up' if 'kernel ms' in header else ''))
    report = {'device': describe(device), 'repeats': args.repeats,
              'backend': ops.backend_info(), 'rows': measure(device, args.repeats, args.only)}
    if args.fpsample:
        print(f'\nCPU FPS, {describe(torch.device("cpu"))}; ms; same picks as the reference')
        report['fpsample'] = fpsample_rows(args.repeats)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == '__main__':
    main()
