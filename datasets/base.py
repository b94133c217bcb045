"""What every dataset class shares: the generic per-split config keys and the subset logic."""
import numpy as np
from torch.utils.data import Dataset

from datasets.files import DatasetError
from utils.config import ConfigError

# Keys every split entry may carry (Point-MAE's ``others``): ``subset`` names the split,
# ``npoints`` the points per item (loaders that return every stored point only check
# that enough are stored), ``bs`` is read by runners, ``whole`` loads every split at once.
SPLIT_KEYS = {'NAME': None, 'subset': None, 'npoints': None, 'bs': None, 'whole': False}


class PointCloudDataset(Dataset):
    """Base of the loaders: ``cfg`` is a checked, flattened split entry (a ConfigDict).

    ``SUBSETS`` are the split names of the format; ``ALIASES`` map a name to several
    (ShapeNetPart's ``trainval``). ``KIND`` is the item layout (``datasets.batch.KINDS``), which
    ``unpack_batch`` reads. Loaders that return every stored point shuffle their order when
    ``shuffle_points`` (default: ``subset == 'train'``; evaluation loaders turn it off, see
    ``datasets.build.build_dataloader``).
    """
    SUBSETS = ('train', 'test')
    ALIASES = {}
    CONFIG_KEYS = SPLIT_KEYS
    KIND = None

    def __init__(self, cfg):
        self.cfg = cfg
        self.subset = cfg.get('subset')
        self.npoints = cfg.get('npoints')
        self.shuffle_points = self.subset == 'train'
        accepted = self.SUBSETS + tuple(self.ALIASES)
        if self.subset not in accepted:
            raise ConfigError(f"{cfg.get('NAME')}: subset={self.subset!r}; accepted: {', '.join(accepted)}")

    # Set by ``build_dataloader`` for an evaluation loader: its items draw their randomness (point
    # subsets, point order) from ``item_rng(index)``, seeded by (item_seed, index), so validation and
    # probes do not depend on the worker count, the ranks or the epoch. None: numpy's global RNG.
    item_seed = None
    list_files = ()  # the files that list the split's items (named when the split is empty)

    @property
    def train(self):
        return self.subset == 'train'

    def item_rng(self, index):
        """A ``np.random.Generator`` for item ``index`` (evaluation loaders), or None (global RNG)."""
        return None if self.item_seed is None else np.random.default_rng([self.item_seed, int(index)])

    def subsets(self):
        """The split names to load: every one with ``whole: True``, else ``subset`` (expanded)."""
        if self.cfg.get('whole'):
            return self.SUBSETS
        return self.ALIASES.get(self.subset, (self.subset,))

    def check_stored_points(self, n_stored, path):
        """Loaders returning every stored point: ``npoints``, when set, must not exceed them."""
        if self.npoints and n_stored < self.npoints:
            raise DatasetError(f"{path}: clouds hold {n_stored} points, fewer than the "
                               f"{self.npoints} requested (npoints)")
