"""Whole-config validation: top-level keys, optimizer, scheduler, each dataset split, the model.

Every section is checked against what its consumer accepts, so a misspelt key
(``num_gruop``) stops the run with the accepted keys listed. The released MaskClu configs (their
schema, and their ``ptimizer`` typo) are translated first (``tools.config_translate``).
"""
from utils.config import ANY, ConfigDict, ConfigError, Typed, check_keys
from utils.logger import get_logger
from tools.config_translate import translate_released
from tools.optim import check_optimizer_config, check_scheduler_config

DATASET_SPLITS = ('train', 'val', 'test', 'extra_train', 'svm_train', 'svm_test')

TOP_LEVEL = {
    'optimizer': ANY,
    'scheduler': ANY,
    'dataset': ANY,
    'model': ANY,
    'npoints': 1024,
    'total_bs': 32,
    'step_per_update': 1,
    'max_epoch': 300,
    'grad_norm_clip': None,
    'consider_metric': None,
    'train_transforms': [{'NAME': 'ScaleAndTranslate'}],
    'amp': Typed('auto', str, bool),
    'compile': False,
    'log_freq': 20,
    'ckpt_save_freq': 50,
    'nonfinite_patience': 5,
    'svm_probe': {'freq': 0, 'C': 0.01, 'C_grid': None, 'cv_folds': None},
    'classification': None,  # fine-tuning data path and voting (tools.classification.CLASSIFICATION_KEYS)
}


def check_dataset_section(section, where):
    from datasets import check_dataset_config
    if not isinstance(section, dict):
        raise ConfigError(f'{where}: expected a mapping of splits ({", ".join(DATASET_SPLITS)})')
    out = {}
    for split, entry in section.items():
        if split not in DATASET_SPLITS:
            raise ConfigError(f"{where}: unknown split '{split}'; accepted: {', '.join(DATASET_SPLITS)}")
        out[split] = check_dataset_config(entry, f'{where}.{split}')
    return out


def check_model_section(model_cfg, where):
    from models import check_model_config
    return check_model_config(model_cfg, where)


def check_transforms(transforms, where):
    from utils.transforms import check_transforms_config
    check_transforms_config(transforms, where)
    return transforms


def validate_config(cfg, path, mode='pretrain'):
    """Check every section of a loaded config (see ``utils.config.load_config``); fill defaults.

    A config of the authors' released code is first translated (``tools.config_translate``);
    each step of the translation is logged as a warning. ``mode`` (main.py's): pre-training with
    ``svm_probe.freq`` needs the probe's splits ``dataset.svm_train`` / ``svm_test``.
    """
    cfg, translation = translate_released(cfg, path)
    for line in translation:
        get_logger().warning(line)
    out = check_keys(cfg, TOP_LEVEL, path)
    for key in ('optimizer', 'scheduler', 'dataset', 'model'):
        if key not in out:
            raise ConfigError(f"{path}: missing section '{key}'")
    check_optimizer_config(out['optimizer'], f'{path}: optimizer')
    check_scheduler_config(out['scheduler'], f'{path}: scheduler')
    out['dataset'] = check_dataset_section(out['dataset'], f'{path}: dataset')
    out['model'] = check_model_section(out['model'], f'{path}: model')
    check_transforms(out['train_transforms'], f'{path}: train_transforms')
    probing = mode == 'pretrain' and out['svm_probe']['freq']
    missing = [s for s in ('svm_train', 'svm_test') if s not in out['dataset']] if probing else []
    if missing:
        raise ConfigError(f"{path}: svm_probe.freq is {out['svm_probe']['freq']} but dataset.{missing[0]} is not "
                          f"set (the probe's splits: dataset.svm_train and dataset.svm_test; freq 0 turns it off)")
    if 'classification' in out:
        from tools.classification import classification_config
        classification_config(out, f'{path}: classification')
    return ConfigDict(out)
