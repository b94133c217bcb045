"""The resolved config of an experiment folder: checked against the saved one on ``--resume``,
then written, never over an earlier run's.

* A fresh run writes ``<exp>/config.yaml``.
* ``--resume`` compares the new resolved config with the last one saved in the folder
  (the most recently written of ``config.yaml`` and the ``config-resume-K.yaml`` files). Keys of ``SAFE_ON_RESUME`` (how long
  to run, how often to log/save/probe: ``max_epoch`` extends a run) may change; any other
  change (model, batch, schedule, optimizer, data, augmentations, ...) stops the run with a
  diff, unless ``--allow_changes KEY ...`` names it (a key or a section, e.g. ``dataset``).
  An accepted change is saved as the next ``config-resume-K.yaml`` beside the old file; an
  unchanged config writes nothing.

Everything here runs before the model or the data are built and before anything is written.
"""
import glob
import os
import re

import yaml

from utils.config import ConfigDict, ConfigError, save_config, yaml_load

CONFIG_NAME = 'config.yaml'
RESUME_NAME = re.compile(r'^config-resume-(\d+)\.yaml$')
# Keys that do not change what a resumed run computes, only how long it runs or how often it
# logs, saves and probes.
SAFE_ON_RESUME = ('max_epoch', 'log_freq', 'ckpt_save_freq', 'svm_probe.freq', 'nonfinite_patience')
MISSING = '<absent>'


def resume_configs(folder):
    """``{K: path}`` of the ``config-resume-K.yaml`` files in ``folder``."""
    out = {}
    for path in glob.glob(os.path.join(folder, 'config-resume-*.yaml')):
        match = RESUME_NAME.match(os.path.basename(path))
        if match:
            out[int(match.group(1))] = path
    return out


def saved_config_path(folder):
    """The config the last run in ``folder`` saved (the most recently written of ``config.yaml``
    and the ``config-resume-K.yaml`` files), or None."""
    paths = [*resume_configs(folder).values(), os.path.join(folder, CONFIG_NAME)]
    paths = [p for p in paths if os.path.isfile(p)]
    return max(paths, key=lambda p: os.stat(p).st_mtime_ns) if paths else None


def flatten(node, prefix=''):
    """``{'a': {'b': 1}}`` -> ``{'a.b': 1}`` (lists are values)."""
    if not isinstance(node, dict):
        return {prefix: node}
    out = {}
    for key, value in node.items():
        name = f'{prefix}.{key}' if prefix else str(key)
        out.update(flatten(value, name) if isinstance(value, dict) and value else {name: value})
    return out


def config_changes(old, new):
    """``[(key, old value, new value)]`` for every dotted key whose value differs (``MISSING``
    where one side lacks it); both configs are compared as YAML round-trips them."""
    old, new = flatten(_plain(old)), flatten(_plain(new))
    return [(k, old.get(k, MISSING), new.get(k, MISSING)) for k in dict.fromkeys([*old, *new])
            if old.get(k, MISSING) != new.get(k, MISSING)]


def _plain(cfg):
    cfg = cfg.to_dict() if isinstance(cfg, ConfigDict) else cfg
    return yaml_load(yaml.safe_dump(cfg, sort_keys=False)) or {}


def _covered(key, names):
    return any(key == n or key.startswith(n + '.') for n in names)


def check_resume_config(folder, config, allowed=()):
    """Compare ``config`` with the last one saved in ``folder``; returns the accepted changes.

    Raises a one-line ``ConfigError`` listing the changes that are neither in ``SAFE_ON_RESUME``
    nor under a key of ``allowed`` (``--allow_changes``). No saved config: no check (an empty list).
    """
    path = saved_config_path(folder)
    if path is None:
        return []
    try:
        with open(path) as f:
            saved = yaml_load(f) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"--resume: cannot read the saved config {path}: {e}") from None
    changes = config_changes(saved, config)
    refused = [c for c in changes if not _covered(c[0], SAFE_ON_RESUME) and not _covered(c[0], allowed)]
    if refused:
        diff = '; '.join(f'{key}: {old!r} -> {new!r}' for key, old, new in refused)
        keys = ' '.join(dict.fromkeys(key for key, _, _ in refused))
        raise ConfigError(f"--resume with a config that differs from {path} in keys that change the run: {diff}. "
                          f"Resume with the saved config, or accept the change with --allow_changes {keys}")
    return changes


def write_run_config(folder, config, changes=None):
    """Write the resolved ``config``: ``config.yaml`` for a new run (``changes`` None), the next
    ``config-resume-K.yaml`` for a resumed run with ``changes``, nothing for an unchanged resume.
    Returns the path written or None."""
    if changes is None:
        path = os.path.join(folder, CONFIG_NAME)
    elif changes:
        path = os.path.join(folder, f'config-resume-{max(resume_configs(folder), default=0) + 1}.yaml')
    else:
        return None
    save_config(config, path)
    return path
