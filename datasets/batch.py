"""Collated batches of every dataset kind -> one named tuple, ``Batch(points, label, parts)``.

The kinds (a dataset class's ``KIND``) and their collated items:

* ``shapes`` (ShapeNet-55 pre-training): ``(taxonomy_ids, model_ids, points (B, N, C))``;
* ``classification`` (ModelNet, its few-shot folds, ScanObjectNN): Point-MAE's
  ``(names, 'sample' strings, (points (B, N, C), labels (B,) or (B, 1)))``, or a plain
  ``(points, labels)`` pair;
* ``partseg`` (ShapeNetPart): ``(points (B, N, C), category (B,), parts (B, N))``.

``unpack_batch(batch, kind)`` unpacks by the kind given (``EpochLoader.kind``); without one the
kind is read from the structure, and a batch that fits none is an error saying what was found.
"""
from typing import NamedTuple, Optional

import torch

from datasets.files import DatasetError

KINDS = ('shapes', 'classification', 'partseg')


class Batch(NamedTuple):
    """points (B, N, C) float; label (B,) int64 (class, or ShapeNetPart's object category) or None;
    parts (B, N) int64 part labels or None."""
    points: torch.Tensor
    label: Optional[torch.Tensor] = None
    parts: Optional[torch.Tensor] = None


def _is_tensor(x, dim=None):
    return isinstance(x, torch.Tensor) and (dim is None or x.dim() == dim)


def _describe(batch):
    if isinstance(batch, (list, tuple)):
        return f"a {len(batch)}-tuple of ({', '.join(_describe_item(x) for x in batch)})"
    return _describe_item(batch)


def _describe_item(x):
    if isinstance(x, torch.Tensor):
        return f'tensor{tuple(x.shape)}'
    if isinstance(x, (list, tuple)):
        return f'{len(x)}-tuple'
    return type(x).__name__


def _bad(batch, kind, expected):
    return DatasetError(f"unpack_batch: a '{kind}' batch must be {expected}; got {_describe(batch)}")


def unpack_shapes(batch):
    """(taxonomy_ids, model_ids, points) -> Batch(points)."""
    if not (isinstance(batch, (list, tuple)) and len(batch) == 3 and _is_tensor(batch[2], 3)):
        raise _bad(batch, 'shapes', '(taxonomy_ids, model_ids, points (B,N,C))')
    return Batch(batch[2])


def unpack_classification(batch):
    """(names, 'sample', (points, labels)) or (points, labels) -> Batch(points, labels (B,))."""
    pair = batch
    if isinstance(batch, (list, tuple)) and len(batch) == 3 and isinstance(batch[2], (list, tuple)):
        pair = batch[2]
    if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and _is_tensor(pair[0], 3) and _is_tensor(pair[1])):
        raise _bad(batch, 'classification', "(names, 'sample', (points (B,N,C), labels (B,))) or (points, labels)")
    return Batch(pair[0], pair[1].reshape(-1))


def unpack_partseg(batch):
    """(points, category, parts) -> Batch(points, category (B,), parts (B, N))."""
    if not (isinstance(batch, (list, tuple)) and len(batch) == 3 and _is_tensor(batch[0], 3)
            and _is_tensor(batch[1]) and _is_tensor(batch[2], 2)):
        raise _bad(batch, 'partseg', '(points (B,N,C), category (B,), parts (B,N))')
    return Batch(batch[0], batch[1].reshape(-1), batch[2])


UNPACKERS = {'shapes': unpack_shapes, 'classification': unpack_classification, 'partseg': unpack_partseg}


def batch_kind(batch):
    """The kind a collated batch's structure says it is (see the module docstring)."""
    if isinstance(batch, (list, tuple)):
        if len(batch) == 2:
            return 'classification'
        if len(batch) == 3 and isinstance(batch[2], (list, tuple)):
            return 'classification'
        if len(batch) == 3 and _is_tensor(batch[0], 3):
            return 'partseg'
        if len(batch) == 3 and _is_tensor(batch[2], 3):
            return 'shapes'
    raise DatasetError(f"unpack_batch: {_describe(batch)} is no known batch layout; expected "
                       f"(taxonomy_ids, model_ids, points), (names, 'sample', (points, labels)), "
                       f"(points, labels) or (points, category, parts)")


def unpack_batch(batch, kind=None):
    """A collated batch -> ``Batch(points, label, parts)``; ``kind`` one of ``KINDS`` (the dataset's
    ``KIND``, ``EpochLoader.kind``), or None to read it from the batch's structure."""
    if kind is None:
        kind = batch_kind(batch)
    if kind not in UNPACKERS:
        raise ValueError(f"unpack_batch: kind must be one of {KINDS}, got {kind!r}")
    return UNPACKERS[kind](batch)
