"""Dataset registry, config checking, and the epoch-aware (DDP-ready) data loader.

Batch-size rule: ``total_bs`` is the global batch, summed over ranks; each rank loads
``total_bs // world_size`` items per step, and ``total_bs`` must be divisible by the
world size. Shuffling order and worker seeds depend only on (seed, epoch, rank), so a
resumed run sees the same batches as an uninterrupted one.
"""
import re

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from datasets.files import DatasetError
from utils import dist
from utils.config import ConfigDict, ConfigError, check_keys, merge
from utils.misc import seed_worker
from utils.registry import Registry

DATASETS = Registry('dataset')


def check_dataset_config(entry, where='dataset'):
    """Check one split entry against its NAME's ``CONFIG_KEYS``; return it with defaults filled.

    An unflattened ``{..., others: {...}}`` entry is flattened first. Unknown NAMEs and
    keys raise ConfigError listing what is accepted.
    """
    if not isinstance(entry, dict) or 'NAME' not in entry:
        raise ConfigError(f"{where}: expected a dataset entry with a NAME; accepted NAMEs: "
                          f"{', '.join(DATASETS.names())}")
    if isinstance(entry.get('others'), dict):
        entry = merge({k: v for k, v in entry.items() if k != 'others'}, entry['others'])
    try:
        cls = DATASETS.get(entry['NAME'])
    except KeyError as e:
        raise ConfigError(f"{where}.NAME: {e.args[0]}") from None
    return ConfigDict(check_keys(dict(entry), cls.CONFIG_KEYS, where))


def build_dataset(entry, where='dataset'):
    """The dataset an entry describes (``{NAME, DATA_PATH, subset, npoints, ...}``)."""
    cfg = check_dataset_config(entry, where)
    return DATASETS.get(cfg.NAME)(cfg)


def per_rank_batch_size(total_bs, world_size):
    """``total_bs`` split evenly over ranks; an error if it does not divide."""
    if total_bs < world_size or total_bs % world_size:
        raise ConfigError(f"total_bs={total_bs} is not divisible by the world size {world_size}; "
                          f"use a multiple of {world_size}")
    return total_bs // world_size


class EpochLoader:
    """A DataLoader iterated one epoch at a time, reproducible per (seed, epoch, rank).

    Each ``iter()`` runs one epoch and then advances the epoch counter; ``set_epoch(e)``
    jumps to epoch ``e`` (resume). Attributes: ``dataset``, ``sampler``, ``loader``,
    ``batch_size`` (per rank), ``kind`` (the dataset's ``KIND``, for ``unpack_batch``).
    ``len()`` is the number of batches per epoch on this rank.
    Workers seed numpy/python from their torch seed (``seed_worker``); with ``num_workers=0``
    items draw from the main process's RNGs (seeded by the runner, saved in checkpoints).
    """

    def __init__(self, dataset, *, train, batch_size, seed, num_workers, pin_memory=False):
        self.dataset, self.seed, self.epoch = dataset, seed, 0
        self.batch_size, self.drop_last = batch_size, train
        self.kind = getattr(dataset, 'KIND', None)
        self.rank = dist.get_rank()
        self.sampler = DistributedSampler(dataset, num_replicas=dist.get_world_size(), rank=self.rank,
                                          shuffle=train, seed=seed, drop_last=False)
        self.generator = torch.Generator()
        self.loader = DataLoader(dataset, batch_size=batch_size, sampler=self.sampler,
                                 num_workers=num_workers, worker_init_fn=seed_worker,
                                 generator=self.generator, drop_last=train, pin_memory=pin_memory)

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __iter__(self):
        self.sampler.set_epoch(self.epoch)
        words = np.random.SeedSequence([self.seed, self.epoch, self.rank]).generate_state(2)
        self.generator.manual_seed(int(words[0]) << 32 | int(words[1]))
        self.epoch += 1
        return one_line_errors(iter(self.loader))

    def __len__(self):
        return len(self.loader)

    def sample_indices(self):
        """Dataset indices (M,) int64 of the items the next ``iter()`` yields on this rank, in order
        (under DDP a DistributedSampler pads the ranks with repeated items: see
        ``utils.dist.gather_by_index``)."""
        self.sampler.set_epoch(self.epoch)
        indices = torch.tensor(list(iter(self.sampler)), dtype=torch.int64)
        return indices[:len(self) * self.batch_size] if self.drop_last else indices


WORKER_ERROR = re.compile(r'^[\w.]*(?:DatasetError|ConfigError): (.*)$')


def one_line_errors(batches):
    """Yield from ``batches``; a ``DatasetError``/``ConfigError`` that a DataLoader worker raised
    (torch re-raises it with the worker's whole traceback as its message) is raised again with the
    original one-line message, as the main process would show it."""
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (DatasetError, ConfigError) as e:
            raise type(e)(worker_message(str(e))) from None
        yield batch


def worker_message(text):
    """The original message inside torch's "Caught X in DataLoader worker process k. Original
    Traceback ..." text (the text itself when it is not one)."""
    if 'Original Traceback' not in text:
        return text
    for line in reversed(text.strip().splitlines()):
        match = WORKER_ERROR.match(line.strip())
        if match:
            return match.group(1)
    return text.strip().splitlines()[-1]


def build_dataloader(entry, *, train, total_bs, seed, num_workers, pin_memory=False, where='dataset'):
    """An ``EpochLoader`` over ``build_dataset(entry)``; ``total_bs`` is the global batch.

    Training shuffles (per epoch) and drops the last incomplete batch; evaluation keeps
    order and every batch, each cloud's stored point order (``shuffle_points`` off: the
    features of a train split extracted for a probe do not depend on the RNG), and its items draw
    their other randomness from ``item_rng(index)`` seeded by ``seed`` (the same items whatever the
    workers, ranks or epoch). Under DDP each rank gets ``len / world_size`` items (torch's
    DistributedSampler pads the last rank's share with repeated items: ``EpochLoader.sample_indices``,
    ``utils.dist.gather_by_index``). An empty split is a
    ``DatasetError`` naming its list files.
    """
    dataset = build_dataset(entry, where)
    if len(dataset) == 0:
        files = ', '.join(getattr(dataset, 'list_files', ())) or f"DATA_PATH {entry.get('DATA_PATH')}"
        raise DatasetError(f"{where}: the {entry.get('subset')} split of {entry.get('NAME')} is empty "
                           f"(no item in {files})")
    if not train:
        dataset.shuffle_points = False
    dataset.item_seed = None if train else seed  # evaluation items: independent of workers and ranks
    batch_size = per_rank_batch_size(total_bs, dist.get_world_size())
    loader = EpochLoader(dataset, train=train, batch_size=batch_size, seed=seed,
                         num_workers=num_workers, pin_memory=pin_memory)
    if len(loader) == 0:
        raise ConfigError(f"{where}: {len(dataset)} items give no full batch of {batch_size} per rank "
                          f"(total_bs={total_bs}); lower total_bs")
    return loader
