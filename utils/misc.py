"""Seeding and small numeric helpers shared by the runners."""
import random

import numpy as np
import torch


def seed_everything(seed, deterministic=False):
    """Seed python, numpy and torch (all devices); optionally force deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def seed_worker(worker_id):
    """DataLoader ``worker_init_fn``: derive python/numpy seeds from the worker's torch seed.

    torch gives each worker ``base_seed + worker_id`` where base_seed comes from the
    loader's generator, so seeding the generator makes workers reproducible.
    """
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def rng_state():
    """Every RNG stream, for checkpoints: python, numpy, torch CPU and CUDA.

    Held as tensors and plain python data (no numpy objects), so a checkpoint holding it
    loads with a plain ``torch.load(path, weights_only=True)``: the Mersenne-Twister keys of
    python and numpy become int64 tensors, the rest ints, floats and strings.
    """
    version, mt, gauss_next = random.getstate()
    name, key, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return {'python': {'version': version, 'state': torch.tensor(mt, dtype=torch.int64), 'gauss_next': gauss_next},
            'numpy': {'bit_generator': name, 'key': torch.from_numpy(key.astype(np.int64)), 'pos': int(pos),
                      'has_gauss': int(has_gauss), 'cached_gaussian': float(cached)},
            'torch': torch.get_rng_state(),
            'cuda': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def rng_state_all_ranks():
    """``rng_state()`` of this process, or under DDP the list of every rank's (indexed by rank).

    A collective under DDP: every rank must call it. Each rank draws its own masks, FPS
    starts and augmentations, so an exact ``--resume`` needs every rank's streams, not rank 0's.
    """
    state = rng_state()
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return state
    states = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(states, state)
    return states


def set_rng_state(state):
    """Restore what ``rng_state`` returned (CUDA streams only when CUDA is present).

    Also takes the older layout, where ``python`` and ``numpy`` were the tuples of
    ``random.getstate()`` and ``np.random.get_state()``.
    """
    random.setstate(_python_state(state['python']))
    np.random.set_state(_numpy_state(state['numpy']))
    torch.set_rng_state(state['torch'])
    if state.get('cuda') is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def _python_state(s):
    if isinstance(s, dict):
        return s['version'], tuple(int(v) for v in s['state'].tolist()), s['gauss_next']
    version, mt, gauss_next = s
    return version, tuple(mt), gauss_next


def _numpy_state(s):
    if isinstance(s, dict):
        return (s['bit_generator'], np.asarray(s['key'].tolist(), dtype=np.uint32), s['pos'], s['has_gauss'],
                s['cached_gaussian'])
    return s


def resolve_device(flag):
    """``--device`` value -> torch device string: 'auto' is cuda when available, else cpu;
    'cuda' without a CUDA device is a ValueError."""
    if flag == 'cuda' and not torch.cuda.is_available():
        raise ValueError('--device cuda but no CUDA device is available (use --device cpu or auto)')
    if flag == 'auto':
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    return flag
