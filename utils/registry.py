"""A small name -> builder registry (one per kind: models, datasets, losses, ...).

Entries are classes or functions registered under a NAME. A class may declare
``CONFIG_KEYS``: a dict of the config keys it accepts with their defaults; the
config checker uses it to reject unknown keys and to fill defaults.
"""
import difflib


class Registry:
    """Maps a NAME to a class or function, with errors that list what is accepted."""

    def __init__(self, kind):
        self.kind = kind
        self._entries = {}

    def register(self, name=None):
        """Decorator: ``@MODELS.register()`` or ``@MODELS.register('Point_MAE')``."""
        def add(obj):
            key = name or obj.__name__
            if key in self._entries:
                raise KeyError(f"{self.kind} '{key}' is registered twice")
            self._entries[key] = obj
            return obj
        return add

    def get(self, name):
        if name not in self._entries:
            raise KeyError(unknown_name_message(self.kind, name, self._entries))
        return self._entries[name]

    def names(self):
        return sorted(self._entries)

    def __contains__(self, name):
        return name in self._entries

    def __repr__(self):
        return f"Registry({self.kind}: {', '.join(self.names())})"


def unknown_name_message(kind, name, accepted):
    """One-line message for an unknown key or NAME, with a close match if one exists."""
    accepted = sorted(accepted)
    close = difflib.get_close_matches(str(name), accepted, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown {kind} '{name}'{hint}; accepted: {', '.join(accepted)}"
