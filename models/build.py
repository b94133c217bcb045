"""The model registry, the config checker and the builder."""
from utils.config import ConfigError, check_keys
from utils.registry import Registry

MODELS = Registry('model')


def model_class(model_cfg, where='model'):
    """The registered class named by ``model_cfg['NAME']``; a ConfigError lists the NAMEs otherwise."""
    if not isinstance(model_cfg, dict) or 'NAME' not in model_cfg:
        raise ConfigError(f"{where}: a mapping with a NAME is required; accepted NAMEs: {', '.join(MODELS.names())}")
    try:
        return MODELS.get(model_cfg['NAME'])
    except KeyError as e:
        raise ConfigError(f'{where}.NAME: {e.args[0]}') from None


def check_model_config(model_cfg, where='model'):
    """A checked copy of a ``model:`` section, defaults filled from the class's ``CONFIG_KEYS``.

    Unknown keys, unknown NAMEs and invalid choices are ConfigErrors naming ``where`` and the
    key. Classes may refine the check with a ``check_config(cfg, where)`` classmethod.
    """
    cls = model_class(model_cfg, where)
    if hasattr(cls, 'check_config'):
        return cls.check_config(model_cfg, where)
    return check_keys(dict(model_cfg), cls.CONFIG_KEYS, where)


def build_model(model_cfg):
    """``model: {NAME, ...}`` -> the registered model built from its checked config."""
    return model_class(model_cfg)(check_model_config(model_cfg))


def check_choice(value, allowed, where):
    """Raise a ConfigError naming ``where`` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ConfigError(f"{where}: {value!r} is not accepted; choose one of: {', '.join(map(str, allowed))}")
    return value
