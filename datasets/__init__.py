"""Dataset loaders (one module per on-disk format), transforms and the data-loader builder.

Public API: ``DATASETS`` (registry of NAMEs), ``check_dataset_config(entry, where)``,
``build_dataset(entry)``, ``build_dataloader(entry, *, train, total_bs, seed, num_workers)``,
``unpack_batch(batch, kind) -> Batch(points, label, parts)``, ``DatasetError``; transforms in
``utils.transforms``.
"""
from datasets.batch import KINDS, Batch, unpack_batch  # noqa: F401
from datasets.build import (DATASETS, EpochLoader, build_dataloader, build_dataset,  # noqa: F401
                            check_dataset_config)
from datasets.files import DatasetError  # noqa: F401
from datasets import modelnet, modelnet_fewshot, scanobjectnn, shapenet55, shapenetpart  # noqa: F401  (register NAMEs)
