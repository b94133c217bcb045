"""torchrun-native distributed helpers: state from the environment, NCCL on GPU, gloo on CPU."""
import gc
import os

import torch
import torch.distributed as dist


def is_dist():
    return dist.is_available() and dist.is_initialized()


def get_rank():
    return dist.get_rank() if is_dist() else 0


def get_world_size():
    return dist.get_world_size() if is_dist() else 1


def is_main_process():
    return get_rank() == 0


class LauncherError(RuntimeError):
    """``--launcher pytorch`` outside torchrun (its environment variables are missing)."""


def init_distributed(launcher, device_type):
    """Start the process group for ``--launcher pytorch`` from torchrun's env variables.

    Reads LOCAL_RANK, RANK and WORLD_SIZE (no ``--local_rank`` flag). Uses NCCL when
    ``device_type`` is 'cuda', gloo otherwise. Returns the local rank (0 without DDP).
    """
    if launcher == 'none':
        return 0
    missing = [k for k in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK') if k not in os.environ]
    if missing:
        raise LauncherError(f"--launcher pytorch needs torchrun's environment ({', '.join(missing)} not set); "
                           f"start with: torchrun --nproc_per_node=N main.py --launcher pytorch ...")
    local_rank = int(os.environ['LOCAL_RANK'])
    backend = 'nccl' if device_type == 'cuda' else 'gloo'
    if device_type == 'cuda':
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend)
    return local_rank


def barrier():
    """Wait for every rank (no-op without DDP)."""
    if is_dist():
        dist.barrier()


def cleanup_distributed():
    """Free what still holds the process group (a DDP reducer, pending work) while the
    interpreter is fully alive, then destroy the group: gloo threads outliving interpreter
    finalisation abort the process."""
    if is_dist():
        gc.collect()
        dist.destroy_process_group()


def _all_reduce(tensor, op):
    """``op`` over ranks into a new tensor (the input is untouched); identity without DDP."""
    if not is_dist():
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out, op=op)
    return out


def all_reduce_mean(tensor):
    """Mean of ``tensor`` over ranks."""
    return _all_reduce(tensor, dist.ReduceOp.SUM) / get_world_size()


def all_reduce_sum(tensor):
    """Sum of ``tensor`` over ranks."""
    return _all_reduce(tensor, dist.ReduceOp.SUM)


def all_reduce_max(tensor):
    """Maximum of ``tensor`` over ranks (the non-finite flag of the training step)."""
    return _all_reduce(tensor, dist.ReduceOp.MAX)


def all_gather_cat(tensor):
    """Concatenate ``tensor`` along dim 0 over ranks, keeping the gradient of the local part.

    Shapes: (b, ...) per rank -> (b * world_size, ...). Every rank must pass the same b.
    """
    if not is_dist():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(get_world_size())]
    dist.all_gather(parts, tensor.detach().contiguous())
    parts[get_rank()] = tensor
    return torch.cat(parts, dim=0)


def gather_rows(state):
    """All-gather a dict of tensors with the same row count M_r on this rank, (M_r, ...), over ranks
    whose M_r may differ: each rank pads to the largest count, gathers, and drops the padding.
    Returns {key: (sum of M_r, ...)} in rank order; the identity without DDP. Call it on every rank."""
    if not is_dist():
        return dict(state)
    first = next(iter(state.values()))
    count = torch.tensor([len(first)], device=first.device)
    counts = all_gather_cat(count)
    most = int(counts.max())
    keep = torch.cat([torch.arange(most, device=counts.device) < c for c in counts])
    out = {}
    for key, value in state.items():
        padded = torch.cat([value, value.new_zeros((most - len(value),) + value.shape[1:])])
        out[key] = all_gather_cat(padded)[keep.to(value.device)]
    return out


def first_occurrences(index):
    """index (M,) int64 -> positions (U,) of the first occurrence of every distinct value, in
    increasing index order."""
    order = torch.sort(index, stable=True).indices
    sorted_index = index[order]
    keep = torch.ones_like(sorted_index, dtype=torch.bool)
    keep[1:] = sorted_index[1:] != sorted_index[:-1]
    return order[keep]


def gather_by_index(index, values):
    """Per-sample results of every rank, each dataset item exactly once.

    ``index`` (M_r,) int64: the dataset index of each row on this rank (``EpochLoader.sample_indices``);
    ``values``: {name: (M_r, ...) tensor}. A DistributedSampler pads the ranks with repeated items,
    so after the all-gather an index may appear twice: only its first row is kept. Returns
    ``(index (U,), {name: (U, ...)})`` sorted by index, U the number of distinct items. Without DDP
    the duplicates (if any) are dropped the same way. Call it on every rank.
    """
    if 'index' in values:
        raise ValueError("gather_by_index: 'index' is reserved for the indices; rename that value")
    device = next(iter(values.values())).device if values else index.device
    gathered = gather_rows({'index': index.to(device=device, dtype=torch.int64), **values})
    all_index = gathered.pop('index')
    keep = first_occurrences(all_index)
    return all_index[keep], {name: value[keep.to(value.device)] for name, value in gathered.items()}
