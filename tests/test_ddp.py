"""DDP on the CPU (gloo): two processes == one process with the same global batch.

Two kinds of checks:

* ``test_two_ranks_match_one_process``: each of 2 processes (started with ``subprocess``
  and torchrun's environment: MASTER_ADDR/PORT, WORLD_SIZE, RANK, LOCAL_RANK) computes the
  MaskClu loss (the paper's config at tiny sizes, and the same with ConClu's global term) on
  its half of a fixed global batch under
  DistributedDataParallel; the mean over ranks of every term, and the DDP-averaged
  gradients, equal a single process on the whole batch.

  What makes per-sample computation independent of the rank it runs on:
  - BatchNorm (patch embedding, ConClu projector/predictor) normalises with the statistics of
    the batch it sees, so in training mode a sample's output depends on which other samples
    share its rank. SyncBatchNorm would fix that but torch supports it only on CUDA, so the
    BatchNorm layers are put in eval mode (running statistics, identical on every rank);
    everything else stays in training mode. This is the known per-rank-BN semantics of DDP,
    not something the check could make equal.
  - Masks and FPS start points are random: FPS starts at point 0 (``fps_random_start:
    false``), ``drop_path_rate: 0``, and the mask function is replaced by the same rule
    as ``rand`` masks with noise fixed per (view, global sample index), so both runs draw
    identical per-sample masks.
  - The global ``conclu`` clustering term's batch Sinkhorn must see the whole global batch
    (``all_gather_cat``); each rank also recomputes the terms with the gather removed
    (per-rank Sinkhorn), and the test checks that this *does* change ``global_clu``, so the
    comparison would catch a missing gather.

* ``test_runner_under_torchrun``: ``main.py --launcher pytorch`` under ``torchrun`` with 2
  processes trains the tiny demo for one epoch; only rank 0 writes checkpoints and metrics.
  ``test_ddp_resume_continues_exactly`` (slow) checks ``--resume`` under DDP.

Run as a script, this file is the worker of those checks (``python tests/test_ddp.py ...``).
"""
import json
import os
import socket
import subprocess
import sys

import pytest
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORLD = 2
GLOBAL_BATCH, NPOINTS = 8, 256
TERMS_ONLY_NEEDING_GATHER = {'conclu/global_clu'}
# The objectives each run computes: the paper's, and the paper's with ConClu's global term (the
# only term whose Sinkhorn couples the samples of a batch).
OBJECTIVES = {'paper': {}, 'conclu': {'losses': {'global': {'type': 'conclu'}}}}


# ----------------------------------------------------------------------- shared computation

def global_batch():
    return torch.rand(GLOBAL_BATCH, NPOINTS, 3, generator=torch.Generator().manual_seed(1)) * 2 - 1


def build_tiny_paper_model(**model):
    """The paper's model config at tiny sizes (``model`` merged over it), without randomness other
    than the masks."""
    from conftest import tiny_model_config
    from models import build_model
    cfg = tiny_model_config(fps_random_start=False, transformer_config={'drop_path_rate': 0.0}, **model)
    torch.manual_seed(0)
    model = build_model(cfg)
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()  # running statistics: a sample's output no longer depends on its rank's batch
    return model


def fixed_masks(views, num_group):
    """A ``make_mask`` with the ``rand`` rule but noise fixed per (view, global sample index)."""
    from models.masking import num_masked
    from utils.dist import get_rank
    noise = torch.rand(views, GLOBAL_BATCH, num_group, generator=torch.Generator().manual_seed(2))

    def make_mask(center, ratio, kind, generator=None):
        rows, G, _ = center.shape
        b = rows // views  # rows are view-major: view v of local sample i is row v * b + i
        first = get_rank() * b
        order = noise[:, first:first + b].reshape(rows, G).argsort(dim=1)
        m = num_masked(ratio, G)
        return order[:, m:].sort(dim=1).values, order[:, :m].sort(dim=1).values
    return make_mask


def loss_and_grads(net, model, points):
    """Forward + backward: ({'loss', term: value}, {param name: grad})."""
    out = net(points)
    out['loss'].backward()
    values = {'loss': out['loss'].detach(), **{k: v.detach() for k, v in out['terms'].items()}}
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return values, grads


def compute(points):
    """Everything a run (one process, or one rank of the DDP group) reports on ``points``."""
    import models.losses.global_contrast as global_contrast
    import models.maskclu as maskclu
    from utils import dist

    out = {'values': {}, 'grads': {}, 'per_rank_sinkhorn': {}}
    for objective, overrides in OBJECTIVES.items():
        model = build_tiny_paper_model(**overrides)
        maskclu.make_mask = fixed_masks(model.views, model.config['num_group'])
        net = torch.nn.parallel.DistributedDataParallel(model) if dist.is_dist() else model
        values, grads = loss_and_grads(net, model, points)
        # The same forward with a per-rank batch Sinkhorn (the gather removed): must differ under DDP.
        gather, rank = global_contrast.all_gather_cat, global_contrast.get_rank
        global_contrast.all_gather_cat, global_contrast.get_rank = (lambda t: t), (lambda: 0)
        with torch.no_grad():
            local = {k: v.detach() for k, v in model(points)['terms'].items()}
        global_contrast.all_gather_cat, global_contrast.get_rank = gather, rank
        for key, part in (('values', values), ('grads', grads), ('per_rank_sinkhorn', local)):
            out[key].update({f'{objective}/{name}': value for name, value in part.items()})
    return out


# ------------------------------------------------------------------------------- the workers

def loss_worker(out_dir):
    """One rank: init gloo from the environment, compute on this rank's half of the batch."""
    from utils import dist
    torch.set_num_threads(1)
    dist.init_distributed('pytorch', 'cpu')
    rank, world = dist.get_rank(), dist.get_world_size()
    per_rank = GLOBAL_BATCH // world
    result = compute(global_batch()[rank * per_rank:(rank + 1) * per_rank])
    torch.save(result, os.path.join(out_dir, f'rank{rank}.pt'))
    dist.cleanup_distributed()


def runner_worker(record_dir, argv):
    """One rank of ``main.py --launcher pytorch``, recording which ranks save checkpoints."""
    import main
    import tools.trainer as runner
    from utils import dist
    save = runner.save_checkpoint

    def recording_save(state, path):
        with open(os.path.join(record_dir, f'saves-rank{dist.get_rank()}.txt'), 'a') as f:
            f.write(os.path.basename(path) + '\n')
        save(state, path)
    runner.save_checkpoint = recording_save
    torch.set_num_threads(1)
    main.main(argv)


# ---------------------------------------------------------------------------- test helpers

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def worker_env(**extra):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, HERE]), OMP_NUM_THREADS='1',
               MKL_NUM_THREADS='1', **extra)
    return env


def run_ranks(out_dir, timeout=120):
    """Start WORLD processes of ``loss_worker`` with torchrun's environment variables."""
    return run_ranks_of(__file__, ['loss', out_dir], out_dir, timeout)


def run_ranks_of(script, args, out_dir, timeout=120):
    """Run ``python script *args`` as WORLD ranks with torchrun's environment variables; each rank
    saves ``<out_dir>/rank<r>.pt``; returns those, loaded, by rank."""
    port = str(free_port())
    procs = [subprocess.Popen([sys.executable, script, *args], cwd=ROOT,
                              env=worker_env(MASTER_ADDR='127.0.0.1', MASTER_PORT=port, WORLD_SIZE=str(WORLD),
                                             RANK=str(rank), LOCAL_RANK=str(rank)),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in range(WORLD)]
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=timeout)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for rank, (proc, output) in enumerate(zip(procs, outputs)):
        assert proc.returncode == 0, f'rank {rank} failed:\n{output[-4000:]}'
    return [torch.load(os.path.join(out_dir, f'rank{r}.pt')) for r in range(WORLD)]


@pytest.fixture(scope='module')
def ddp_results(tmp_path_factory):
    return run_ranks(str(tmp_path_factory.mktemp('ddp')))


@pytest.fixture(scope='module')
def single_result():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return compute(global_batch())
    finally:
        torch.set_num_threads(threads)


# ------------------------------------------------------------------------- loss equivalence

def test_two_ranks_match_one_process(ddp_results, single_result):
    expected = single_result['values']
    assert set(expected) == {'paper/loss', 'paper/assign', 'paper/center', 'paper/global_contrast', 'conclu/loss',
                             'conclu/assign', 'conclu/center', 'conclu/global_con', 'conclu/global_clu',
                             'conclu/global_orth'}
    for name, value in expected.items():
        mean = torch.stack([r['values'][name] for r in ddp_results]).mean()
        torch.testing.assert_close(mean, value, rtol=1e-5, atol=1e-5, msg=name)


def test_ddp_gradients_are_the_global_batch_gradients(ddp_results, single_result):
    expected = single_result['grads']
    for rank, result in enumerate(ddp_results):
        assert result['grads'].keys() == expected.keys(), rank
    names = list(expected)
    assert len(names) > 10
    for name in names:  # DDP averaged them: every rank holds the same, global-batch gradient
        torch.testing.assert_close(ddp_results[1]['grads'][name], ddp_results[0]['grads'][name],
                                   rtol=0, atol=0, msg=name)
        torch.testing.assert_close(ddp_results[0]['grads'][name], expected[name], rtol=1e-4, atol=1e-5, msg=name)


def test_the_comparison_would_catch_a_per_rank_sinkhorn(ddp_results, single_result):
    """Without the gather, the ranks' mean of ``global_clu`` differs; the other terms do not."""
    expected = single_result['values']
    for name in expected.keys() - {'paper/loss', 'conclu/loss'}:
        mean = torch.stack([r['per_rank_sinkhorn'][name] for r in ddp_results]).mean()
        if name in TERMS_ONLY_NEEDING_GATHER:
            assert (mean - expected[name]).abs() > 1e-3, name
        else:
            torch.testing.assert_close(mean, expected[name], rtol=1e-5, atol=1e-5, msg=name)
    # in a single process the gather is the identity, so removing it changes nothing
    torch.testing.assert_close(single_result['per_rank_sinkhorn']['conclu/global_clu'], expected['conclu/global_clu'],
                               rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------------ the runner

def torchrun(record_dir, config, exp, name, *extra, timeout=300):
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nnodes=1',
           f'--nproc_per_node={WORLD}', __file__, 'runner', record_dir,
           '--launcher', 'pytorch', '--config', config, '--exp', exp, '--exp_name', name,
           '--device', 'cpu', '--num_workers', '0', '--seed', '0', *extra]
    proc = subprocess.run(cmd, cwd=ROOT, env=worker_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return os.path.join(exp, 'pretrain_tiny', 'cfgs', name)


def read_records(folder):
    with open(os.path.join(folder, 'metrics.jsonl')) as f:
        return [json.loads(line) for line in f]


def test_runner_under_torchrun(tmp_path, demo_root):
    from conftest import write_tiny_config
    from utils.checkpoint import load_checkpoint
    config = write_tiny_config(str(tmp_path), demo_root, max_epoch=1)
    path = torchrun(str(tmp_path), config, str(tmp_path / 'exps'), 'ddp')

    assert sorted(os.listdir(tmp_path)) == ['cfgs', 'exps', 'saves-rank0.txt']  # rank 1 saved nothing
    with open(tmp_path / 'saves-rank0.txt') as f:
        assert sorted(f.read().split()) == ['ckpt-epoch-001.pth', 'ckpt-last.pth']
    assert {'ckpt-last.pth', 'ckpt-epoch-001.pth', 'config.yaml', 'log.txt'} <= set(os.listdir(path))
    ckpt = load_checkpoint(os.path.join(path, 'ckpt-last.pth'))
    assert ckpt['epoch'] == 1 and not any(k.startswith('module.') for k in ckpt['base_model'])
    with open(os.path.join(path, 'log.txt')) as f:
        log = f.read()
    assert 'world size: 2' in log and '[rank 1]' not in log
    records = read_records(path)  # written once (rank 0), values already reduced over the ranks
    # per rank: 12 of the 24 clouds in batches of total_bs / 2 = 4 -> 3 steps per epoch
    assert [(r['tag'], r['step']) for r in records] == [('train', 2), ('train', 3), ('epoch', 1)]
    assert all(r['loss'] is not None and r['skipped_steps'] == 0 for r in records if r['tag'] == 'epoch')


def test_a_checkpoint_holds_every_ranks_rng_and_each_rank_takes_its_own():
    from utils.checkpoint import rng_of_this_rank
    from utils.misc import rng_state, rng_state_all_ranks
    state = rng_state()
    assert rng_state_all_ranks().keys() == state.keys()  # without DDP: this process's, as before
    assert rng_of_this_rank(state) is state
    other = {**state, 'torch': torch.zeros_like(state['torch'])}
    assert rng_of_this_rank([state, other]) is state  # rank 0 here
    assert rng_of_this_rank([]) is None  # a rank the checkpoint has no streams for keeps its own


@pytest.mark.slow
def test_ddp_resume_continues_exactly(tmp_path, demo_root):
    """2 ranks: 1 epoch then ``--resume`` to 2 == 2 epochs (each rank's RNG streams restored)."""
    from conftest import write_tiny_config
    from utils.checkpoint import load_checkpoint
    config = write_tiny_config(str(tmp_path), demo_root, max_epoch=2)
    exp = str(tmp_path / 'exps')
    full = torchrun(str(tmp_path), config, exp, 'full', '--deterministic')
    resumed = torchrun(str(tmp_path), config, exp, 'resumed', '--deterministic', '--opts', 'max_epoch=1')
    torchrun(str(tmp_path), config, exp, 'resumed', '--deterministic', '--resume')
    a = load_checkpoint(os.path.join(full, 'ckpt-last.pth'))
    b = load_checkpoint(os.path.join(resumed, 'ckpt-last.pth'))
    assert a['epoch'] == b['epoch'] == 2
    for key, value in a['base_model'].items():
        torch.testing.assert_close(b['base_model'][key], value, rtol=0, atol=1e-6, msg=key)
    assert a['scheduler'] == b['scheduler']


if __name__ == '__main__':
    sys.path[:0] = [ROOT, HERE]
    if sys.argv[1] == 'loss':
        loss_worker(sys.argv[2])
    elif sys.argv[1] == 'runner':
        runner_worker(sys.argv[2], sys.argv[3:])
    else:
        raise SystemExit(f'unknown worker {sys.argv[1]!r}')
