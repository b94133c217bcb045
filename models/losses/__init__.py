"""Pre-training loss terms, one module each; every term returns unweighted scalars."""
from models.losses.assign import AssignLoss, ClusterHead, soft_centers  # noqa: F401
from models.losses.center import CenterLoss  # noqa: F401
from models.losses.global_contrast import ConCluGlobalLoss, PaperGlobalLoss, ReleasedGlobalLoss  # noqa: F401
from models.losses.reconstruction import ReconstructionLoss  # noqa: F401
