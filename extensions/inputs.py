"""Input checks shared by the op entries: shapes, batch and device agreement, dtypes."""
import functools

import torch


def check_tensor(tensor, name, dim, last=None):
    """Raise ValueError unless `tensor` is a `dim`-D tensor (with last size `last`, if given)."""
    if not isinstance(tensor, torch.Tensor) or tensor.dim() != dim:
        shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        raise ValueError(f'{name} must be a {dim}-D tensor, got {shape}')
    if last is not None and tensor.shape[-1] != last:
        raise ValueError(f'{name} must end in a dimension of {last}, got {tuple(tensor.shape)}')


def check_pair(first, first_name, other, other_name):
    """Raise ValueError unless `other` has the batch size and device of `first`."""
    if other.shape[0] != first.shape[0] or other.device != first.device:
        raise ValueError(f'{other_name} {tuple(other.shape)} on {other.device} does not match '
                         f'{first_name} {tuple(first.shape)} on {first.device} (batch, device)')


def floats(*named, floor=torch.float32):
    """Check (tensor, name) pairs (first one's batch and device for all) and cast them to one
    floating dtype, at least `floor`."""
    for tensor, name in named:
        if not tensor.is_floating_point():
            raise TypeError(f'{name} must be a floating tensor, got {tensor.dtype}')
        check_pair(*named[0], tensor, name)
    dtype = functools.reduce(torch.promote_types, [t.dtype for t, _ in named], floor)
    return [tensor.to(dtype) for tensor, _ in named]


def clouds(*named):
    """Check (B,N,3) clouds given as (tensor, name) pairs and cast them to one dtype."""
    for tensor, name in named:
        check_tensor(tensor, name, 3, last=3)
    return floats(*named)


def index(idx, name, like, dim=None):
    """Check an integer index tensor of `like`'s batch and device; return it as int64."""
    if not isinstance(idx, torch.Tensor) or idx.dim() < 1 or (dim and idx.dim() != dim):
        raise ValueError(f'{name} must be a {f"{dim}-D" if dim else "(B,...)"} index tensor')
    if idx.is_floating_point() or idx.is_complex() or idx.dtype == torch.bool:
        raise TypeError(f'{name} must be an integer tensor, got {idx.dtype}')
    check_pair(like, 'the data', idx, name)
    return idx.long()


def check_count(name, value, low, high):
    """Raise ValueError unless low <= value <= high."""
    if not low <= value <= high:
        raise ValueError(f'{name} must be in [{low}, {high}], got {value}')


def start_indices(start_idx, B, N, device):
    """start_idx int or (B,)/scalar integer tensor -> (B,) int64 on device.

    An int is range-checked; a tensor is not (reading its values would be a host read, a
    device sync on GPU, inside every training step): out-of-range values fail in the op.
    """
    if isinstance(start_idx, int):
        if not 0 <= start_idx < N:
            raise ValueError(f'start_idx must be in [0, {N}), got {start_idx}')
        return torch.full((B,), start_idx, dtype=torch.long, device=device)
    start = torch.as_tensor(start_idx)
    if start.is_floating_point() or start.dim() > 1 or start.numel() not in (1, B):
        raise ValueError(f'start_idx must be an int or a ({B},) integer tensor, '
                         f'got {start_idx!r}')
    return start.to(device=device, dtype=torch.long).expand(B).contiguous()
