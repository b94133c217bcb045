"""Config loading in the Point-MAE YAML schema, with inheritance, overrides and key checking.

* ``_base_: path`` (or a list of paths) at any level loads that YAML and merges the
  sibling keys over it. A relative path resolves against the including file, then the
  working directory (old Point-MAE configs say ``cfgs/dataset_configs/...``), then the
  project root.
* A dataset entry ``{_base_: ds.yaml, others: {...}}`` is flattened: ``others`` is merged
  into the entry, so ``cfg.dataset.train`` holds NAME, DATA_PATH, subset, npoints, ...
* ``--opts a.b=value`` overrides are parsed as YAML scalars/lists.
* One YAML loader (``yaml_load``, for files and ``--opts``) reads ``5e-4`` and ``1e6`` as
  floats (YAML 1.1 needs a dot in a float: PyYAML reads them as strings).
* ``check_keys`` rejects unknown keys (listing the accepted ones, with a close match),
  type-checks every value against its default's type (``check_type``) and fills defaults
  from a schema of nested dicts.
"""
import copy
import os
import re

import yaml

from utils.io import atomic_write
from utils.registry import unknown_name_message

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ANY = object()  # schema marker: the value is not checked (free-form)


class Typed:
    """Schema entry whose value may have other types than its default's:
    ``Typed('auto', str, bool)`` defaults to ``'auto'`` and also accepts ``true``/``false``."""

    def __init__(self, default, *types):
        self.default, self.types = default, types


class ConfigLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``5e-4``, ``1e6``, ``-2E+3`` as floats (YAML 1.2)."""


ConfigLoader.add_implicit_resolver(
    'tag:yaml.org,2002:float',
    re.compile(r'^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$'),
    list('-+0123456789.'))


def yaml_load(stream):
    """Parse YAML text or a stream with ``ConfigLoader`` (the one loader of configs and ``--opts``)."""
    return yaml.load(stream, Loader=ConfigLoader)


class ConfigError(ValueError):
    """A config file, key or override is wrong; the message names it."""


class ConfigDict(dict):
    """A dict with attribute access, converted recursively (like EasyDict)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for key, value in self.items():
            super().__setitem__(key, _wrap(value))

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"config has no key '{key}'") from None

    def __setattr__(self, key, value):
        self[key] = value

    def __setitem__(self, key, value):
        super().__setitem__(key, _wrap(value))

    def __deepcopy__(self, memo):
        return ConfigDict(copy.deepcopy(dict(self), memo))

    def to_dict(self):
        return {k: v.to_dict() if isinstance(v, ConfigDict) else
                [x.to_dict() if isinstance(x, ConfigDict) else x for x in v] if isinstance(v, list) else v
                for k, v in self.items()}


def _wrap(value):
    if isinstance(value, dict) and not isinstance(value, ConfigDict):
        return ConfigDict(value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def load_yaml(path):
    """Read one YAML file into a plain dict; errors name the file."""
    try:
        with open(path) as f:
            data = yaml_load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at top level, found {type(data).__name__}")
    return data


def merge(base, override):
    """Recursive merge: dicts merge key by key, anything else in ``override`` replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _find_base(name, including_file):
    candidates = [name] if os.path.isabs(name) else [
        os.path.join(os.path.dirname(os.path.abspath(including_file)), name),
        os.path.abspath(name),
        os.path.join(PROJECT_ROOT, name),
    ]
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise ConfigError(f"{including_file}: _base_ '{name}' not found (looked in: {', '.join(candidates)})")


def resolve_bases(node, including_file, _stack=()):
    """Replace every ``_base_`` in ``node`` (recursively) by the merged file contents."""
    if not isinstance(node, dict):
        return node
    node = {k: resolve_bases(v, including_file, _stack) for k, v in node.items()}
    bases = node.pop('_base_', None)
    if bases is None:
        return node
    merged = {}
    for name in [bases] if isinstance(bases, str) else bases:
        path = _find_base(name, including_file)
        if path in _stack:
            raise ConfigError(f"{including_file}: _base_ cycle through {path}")
        merged = merge(merged, resolve_bases(load_yaml(path), path, _stack + (path,)))
    return merge(merged, node)


def flatten_dataset_entries(cfg):
    """Merge each ``dataset.<split>.others`` into its entry (Point-MAE's builder did this)."""
    for split, entry in (cfg.get('dataset') or {}).items():
        if isinstance(entry, dict) and isinstance(entry.get('others'), dict):
            others = entry.pop('others')
            cfg['dataset'][split] = merge(entry, others)
    return cfg


def parse_opts(opts):
    """``['a.b=1', 'c=[1,2]']`` -> list of (['a','b'], 1); values parsed as YAML."""
    parsed = []
    for item in opts or []:
        if '=' not in item:
            raise ConfigError(f"--opts '{item}': expected key.sub=value")
        key, value = item.split('=', 1)
        if not key or any(not part for part in key.split('.')):
            raise ConfigError(f"--opts '{item}': empty key part")
        parsed.append((key.split('.'), yaml_load(value) if value else None))
    return parsed


def apply_opts(cfg, opts):
    """Set each override; the parent keys must exist (a typo is an error, not a new key)."""
    for path, value in parse_opts(opts):
        node = cfg
        for depth, part in enumerate(path[:-1]):
            if not isinstance(node.get(part), dict):
                where = '.'.join(path[:depth + 1])
                raise ConfigError(f"--opts {'.'.join(path)}: '{where}' is not a section of the config")
            node = node[part]
        node[path[-1]] = value
    return cfg


def load_config(path, opts=None):
    """Load ``path`` with its bases, flatten dataset entries, apply ``opts``. Returns ConfigDict."""
    cfg = resolve_bases(load_yaml(path), path, (os.path.abspath(path),))
    cfg = flatten_dataset_entries(cfg)
    cfg = apply_opts(cfg, opts)
    return ConfigDict(cfg)


def check_keys(cfg, schema, where):
    """Reject keys of ``cfg`` not in ``schema``, type-check the values and fill missing
    defaults, recursively.

    ``schema`` is a dict of key -> default; a dict default is checked recursively
    (when the config value is also a dict), ``ANY`` accepts anything, ``None`` means
    "optional, no default", ``Typed(default, *types)`` widens the accepted types. Every other
    value must have its default's type (``check_type``). Returns a new dict; ``where`` names
    the section in errors.
    """
    if not isinstance(cfg, dict):
        raise ConfigError(f"{where}: expected a mapping, found {cfg!r}")
    out = {}
    for key, value in cfg.items():
        if key not in schema:
            raise ConfigError(f"{where}: " + unknown_name_message('key', key, schema))
        default = schema[key]
        check_type(value, default, _child(where, key))
        if isinstance(default, dict) and default and isinstance(value, dict):
            value = check_keys(value, default, _child(where, key))
        out[key] = value
    for key, default in schema.items():
        default = default.default if isinstance(default, Typed) else default
        if key not in out and default is not None and default is not ANY:
            out[key] = copy.deepcopy(check_keys({}, default, _child(where, key)) if isinstance(default, dict) and default else default)
    return out


def _child(where, key):
    """The name of ``key`` inside the section ``where`` (``model.num_group``; at the top of a
    config file ``cfgs/x.yaml: max_epoch``)."""
    return f"{where}: {key}" if where.endswith(('.yaml', '.yml')) else f"{where}.{key}"


def expected_types(default):
    """The types a value replacing ``default`` may have (None: anything): a number for a float
    (ints too), an int (not a bool) for an int, a list or tuple for a sequence, else the default's
    own type."""
    if isinstance(default, Typed):
        return default.types
    if default is None or default is ANY:
        return None
    if isinstance(default, bool):
        return (bool,)
    if isinstance(default, float):
        return (int, float)
    if isinstance(default, (list, tuple)):
        return (list, tuple)
    return (dict,) if isinstance(default, dict) else (type(default),)


def check_type(value, default, where):
    """Raise a one-line ``ConfigError`` naming ``where``, ``value`` and the expected type when
    ``value`` does not have the type of ``default`` (see ``expected_types``)."""
    types = expected_types(default)
    if types is None:
        return
    bad_bool = isinstance(value, bool) and bool not in types  # a bool is an int to python
    if bad_bool or not isinstance(value, types):
        names = 'a number' if set(types) == {int, float} else 'a list' if set(types) == {list, tuple} else \
            ' or '.join(article(TYPE_NAMES.get(t, t.__name__)) for t in types)
        shown = default.default if isinstance(default, Typed) else default
        found = article(TYPE_NAMES.get(type(value), type(value).__name__))
        raise ConfigError(f"{where}: expected {names} (default {shown!r}), found {value!r} ({found})")


TYPE_NAMES = {bool: 'a boolean', int: 'an integer', float: 'a number', str: 'a string', list: 'a list',
              tuple: 'a tuple', dict: 'a mapping', type(None): 'null'}


def article(name):
    """``'an integer'`` stays; a bare type name gets ``a``."""
    return name if name.startswith(('a ', 'an ', 'null')) else f'a {name}'


def save_config(cfg, path):
    """Write the resolved config as YAML, atomically (``utils.io.atomic_write``)."""
    with atomic_write(path, 'w') as f:
        yaml.safe_dump(cfg.to_dict() if isinstance(cfg, ConfigDict) else cfg, f, sort_keys=False)
