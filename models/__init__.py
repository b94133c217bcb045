"""Models: the shared point-cloud ViT backbone, MaskClu pre-training, fine-tuning heads.

Importing this package registers every model in ``MODELS``; ``check_model_config(cfg.model)``
validates a config section and ``build_model(cfg.model)`` builds it.
"""
from models.build import MODELS, build_model, check_model_config  # noqa: F401
from models import classifier, maskclu, partseg  # noqa: F401  (registration)
