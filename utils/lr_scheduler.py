"""Per-step learning-rate schedule: linear warm-up, then cosine decay (timm's CosLR, per step)."""
import math


class CosineWarmupLR:
    """Sets every param group's lr at each optimizer step.

    Time is measured in epochs with fractional steps: t = step / steps_per_epoch.
    For t < warmup_epochs: lr = warmup_lr_init + (base_lr - warmup_lr_init) * t / warmup_epochs.
    Then lr = min_lr + (base_lr - min_lr) * (1 + cos(pi * (t - warmup) / (epochs - warmup))) / 2.
    ``base_lr`` is each group's lr at construction (kept as ``initial_lr``).
    """

    def __init__(self, optimizer, epochs, steps_per_epoch, warmup_epochs=0,
                 warmup_lr_init=1e-6, min_lr=1e-6):
        if epochs <= warmup_epochs:
            raise ValueError(f'scheduler: epochs ({epochs}) must exceed the warm-up epochs ({warmup_epochs})')
        if steps_per_epoch < 1:
            raise ValueError('scheduler: the training set yields no batch per epoch (dataset smaller than total_bs?)')
        self.optimizer = optimizer
        self.epochs, self.warmup_epochs = epochs, warmup_epochs
        self.steps_per_epoch = steps_per_epoch
        self.warmup_lr_init, self.min_lr = warmup_lr_init, min_lr
        for group in optimizer.param_groups:
            group.setdefault('initial_lr', group['lr'])
        self.step_count = 0
        self._apply()

    def lr_at(self, base_lr, t):
        if t < self.warmup_epochs:
            return self.warmup_lr_init + (base_lr - self.warmup_lr_init) * t / self.warmup_epochs
        progress = min(1.0, (t - self.warmup_epochs) / (self.epochs - self.warmup_epochs))
        return self.min_lr + 0.5 * (base_lr - self.min_lr) * (1 + math.cos(math.pi * progress))

    def _apply(self):
        t = self.step_count / self.steps_per_epoch
        for group in self.optimizer.param_groups:
            group['lr'] = self.lr_at(group['initial_lr'], t)

    def step(self):
        """Advance one optimizer step."""
        self.step_count += 1
        self._apply()

    def get_last_lr(self):
        return [group['lr'] for group in self.optimizer.param_groups]

    def state_dict(self):
        return {'step_count': self.step_count}

    def load_state_dict(self, state):
        self.step_count = state['step_count']
        self._apply()
