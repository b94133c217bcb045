"""The run context every runner receives: what the command line and the launcher decided.

``main.py`` (and ``trainpartseg.py``) build one ``RunContext`` after parsing the flags and
starting the process group; runners and tasks read it and never see an argparse Namespace.
It is frozen: a runner that needs another value makes a copy (``dataclasses.replace``).
"""
import dataclasses
import os
from typing import Optional

import torch

from utils import dist


@dataclasses.dataclass(frozen=True)
class RunContext:
    """Where and how a run happens.

    ``device``: this rank's torch device; ``experiment_path``: the run's folder (config.yaml,
    log.txt, metrics.jsonl, checkpoints, results.json); ``mode``: pretrain, finetune, test,
    fewshot or svm (main.py), partseg, partseg_test or dense_probe (trainpartseg.py); ``seed``: the base seed (each rank seeds ``seed + rank``); ``rank`` /
    ``world_size`` / ``local_rank``: the process group (0 / 1 / 0 without DDP). The flags:
    ``resume`` (continue from ``ckpt-last.pth``), ``val_freq`` (evaluate every N epochs),
    ``vote`` (voting evaluation while fine-tuning), ``ckpts`` (checkpoint to fine-tune, test or
    probe), ``start_ckpts`` (initial weights), ``partial_load`` (``--partial_load``: let shape
    mismatches of ``start_ckpts`` load partially), ``scratch`` (``--scratch_model``),
    ``num_workers``, ``deterministic``, ``sync_bn``, few-shot ``way``/``shot``/``fold``
    (-1 / -1 / -2 when not few-shot).
    """
    device: torch.device
    experiment_path: str
    mode: str = 'pretrain'
    seed: int = 0
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    resume: bool = False
    val_freq: int = 1
    vote: bool = False
    ckpts: Optional[str] = None
    start_ckpts: Optional[str] = None
    partial_load: bool = False
    scratch: bool = False
    num_workers: int = 4
    deterministic: bool = False
    sync_bn: bool = False
    way: int = -1
    shot: int = -1
    fold: int = -2

    @property
    def is_main(self):
        """True on the process that writes files (rank 0)."""
        return self.rank == 0

    @property
    def pin_memory(self):
        """Pinned host memory for the loaders: the copies to a GPU then do not block."""
        return self.device.type == 'cuda'

    def path(self, name):
        """``<experiment_path>/<name>``."""
        return os.path.join(self.experiment_path, name)

    @classmethod
    def from_args(cls, args, device, local_rank=0):
        """The context of parsed ``main.py`` flags (``utils.parser.parse_args``) on ``device``
        (a torch.device), after the process group was started."""
        return cls(device=torch.device(device), experiment_path=args.experiment_path, mode=args.mode,
                   seed=args.seed, rank=dist.get_rank(), world_size=dist.get_world_size(),
                   local_rank=local_rank, resume=args.resume, val_freq=args.val_freq, vote=args.vote,
                   ckpts=args.ckpts, start_ckpts=args.start_ckpts,
                   partial_load=args.partial_load, scratch=args.scratch_model,
                   num_workers=args.num_workers, deterministic=args.deterministic, sync_bn=args.sync_bn,
                   way=args.way, shot=args.shot, fold=args.fold)
