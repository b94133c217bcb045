"""The optimizer step shared by every training runner, free of host synchronisation.

``TrainStepper`` owns gradient accumulation (``step_per_update``), autocast, gradient
clipping, the non-finite guard, the optimizer and the per-step schedule. The guard
uses the contract fused optimizers share with ``GradScaler``: the optimizer reads a
``found_inf`` tensor and skips the update on the device when it is non-zero, so a NaN
loss never reaches the weights and no ``.item()`` is needed inside the step (under DDP the
flag is max-reduced over ranks on the device, so every rank skips the same steps). The
streak of skipped steps is read only when the runner logs (``check``).
"""
import contextlib

import torch

from utils.dist import all_reduce_max


class NonFiniteLossError(RuntimeError):
    """Too many optimizer steps in a row had a non-finite loss or gradient."""


def amp_dtype(setting, device):
    """Config ``amp``: 'auto' -> bf16 on CUDA, off on CPU; 'bf16'/true or false explicit.

    CPU stays fp32 under 'auto': on the project's CPU (AMD EPYC with avx512_bf16, torch 2.13 CPU
    build) a bf16 autocast pre-training step took 1.45x the fp32 step (README, Results).

    Only bf16: it needs no loss scaling, so the step stays free of GradScaler's host syncs.
    """
    if setting in (False, None, 'off', 'false'):
        return None
    if setting == 'auto':
        return torch.bfloat16 if device.type == 'cuda' else None
    if setting in (True, 'bf16'):
        return torch.bfloat16
    raise ValueError(f"amp: expected auto, bf16 or false, got {setting!r}")


def autocast(device, dtype):
    """Autocast to ``dtype`` (from ``amp_dtype``) on ``device``'s type; a no-op when ``dtype`` is None."""
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def grad_norm(params, clip=None):
    """Total gradient 2-norm as a device tensor; with ``clip`` the gradients are also scaled to
    at most that norm. Without one nothing is rescaled (no extra pass over the gradients)."""
    if clip:
        return torch.nn.utils.clip_grad_norm_(params, clip, foreach=True)
    grads = [p.grad for p in params if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


class TrainStepper:
    """backward() every micro-batch; every ``accum`` micro-batches one guarded optimizer update."""

    def __init__(self, model, optimizer, scheduler, *, accum=1, grad_clip=None,
                 amp=None, device=torch.device('cpu'), patience=5):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.accum, self.grad_clip, self.patience = accum, grad_clip, patience
        self.device, self.amp = device, amp
        self.micro = 0
        self.streak = torch.zeros((), device=device)
        self.skipped = torch.zeros((), device=device)
        self.last_grad_norm = torch.zeros((), device=device)

    def autocast(self):
        return autocast(self.device, self.amp)

    def start_epoch(self):
        """Drop gradients of micro-batches that did not complete an update: accumulation never
        spans epochs, so steps per epoch is ``len(loader) // accum`` and ``--resume`` is exact."""
        self.optimizer.zero_grad(set_to_none=True)
        self.micro = 0

    def sync_context(self):
        """DDP: skip the gradient all-reduce on micro-batches that do not end an update."""
        last = (self.micro + 1) % self.accum == 0
        no_sync = getattr(self.model, 'no_sync', None)
        return contextlib.nullcontext() if last or no_sync is None else no_sync()

    def backward(self, loss):
        """Backward of ``loss / accum``; returns True when this call made an optimizer update."""
        (loss / self.accum).backward()
        self.micro += 1
        if self.micro % self.accum:
            return False
        self._update(loss)
        return True

    def _update(self, loss):
        norm = grad_norm(self.params, self.grad_clip)
        found = all_reduce_max((~(torch.isfinite(norm) & torch.isfinite(loss.detach()))).float())
        self.optimizer.grad_scale, self.optimizer.found_inf = None, found
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.streak = (self.streak + found) * found
        self.skipped += found
        self.last_grad_norm = norm.detach()

    def check(self):
        """Host-side look at the guard (one sync): raise after ``patience`` skipped steps in a row."""
        streak = int(self.streak.item())
        if streak >= self.patience:
            raise NonFiniteLossError(
                f'{streak} optimizer steps in a row had a non-finite loss or gradient and were skipped; '
                f'stopping. Lower the learning rate (optimizer.kwargs.lr), set grad_norm_clip, or '
                f'disable amp; the last checkpoint is intact.')
        return int(self.skipped.item())
