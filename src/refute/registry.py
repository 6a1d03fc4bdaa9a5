"""One registry for every kind of plug-in: solvers, scorers, transforms, model edits (and later
guard layers and tools).

A plug-in is a factory (a function or a class) registered under a name by a decorator of its
package (`refute.engine.solver`, `refute.scorers.scorer`, `refute.transforms.transform`); the
store records the name and the arguments, so ``build(name, **args)`` rebuilds it. The rules are
the same for every kind:

* a name is registered once: a second factory under the same name is a `ConfigError` naming
  both places (re-registering the very same function, as a module reload does, is allowed);
* arguments are checked against the factory's signature (``inspect.signature(...).bind``) before
  the factory runs, so a bad argument is a clear error and a ``TypeError`` raised inside a factory
  is a bug that propagates as it is;
* an unknown name lists the known ones and suggests the closest.

Plug-ins outside refute's lowest layers load through the ``refute`` entry-point group: each entry
point names a module, and importing it registers its plug-ins with the decorators. They load the
first time a name is not found (and before anything is listed). refute declares its own attack
solvers (``refute.redteam``) and the probe scorer (``refute.interp``) that way, so the engine never
imports the layers above it. A third-party package does the same in its ``pyproject.toml``::

    [project.entry-points.refute]
    my_scorers = "my_package.scorers"

``tests/plugin_example/`` is a complete example.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Literal

from refute.errors import ConfigError, RefuteError, ScorerError

__all__ = ["ENTRY_POINT_GROUP", "Entry", "Kind", "Registry", "load_plugins", "registry"]

#: The entry-point group third-party plug-ins (and refute's own upper layers) declare.
ENTRY_POINT_GROUP = "refute"

Kind = Literal["solver", "scorer", "transform", "layer", "tool", "model_edit"]


def _where(factory: Callable[..., Any]) -> str:
    """``module.qualname``: how two registrations are told apart and named in errors."""
    return f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', repr(factory))}"


def _source(factory: Callable[..., Any]) -> str:
    """``module.qualname (file:line)``, for an error message (reads the source file, so only then)."""
    try:
        obj = inspect.unwrap(factory)
        path = inspect.getsourcefile(obj)
        line = inspect.getsourcelines(obj)[1]
    except (OSError, TypeError):
        return _where(factory)
    return f"{_where(factory)} ({path}:{line})"


@dataclass(frozen=True)
class Entry:
    """One registered plug-in."""

    kind: str
    name: str
    factory: Callable[..., Any]
    description: str
    #: What the kind asks its plug-ins to declare: a scorer's `ScorerMeaning`, a transform's kind.
    info: Any = None
    where: str = field(default="", compare=False)

    @property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.factory)

    def parameters(self) -> dict[str, inspect.Parameter]:
        """The arguments it takes by keyword (what a stored record can hold)."""
        keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return {k: p for k, p in self.signature.parameters.items() if p.kind in keyword}


class Registry:
    """The plug-ins of one kind, by name."""

    def __init__(self, kind: Kind, error: type[RefuteError] = ConfigError) -> None:
        self.kind = kind
        self.error = error  # raised for an unknown name or bad arguments
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, factory: Callable[..., Any], *, description: str | None = None,
                 info: Any = None) -> Entry:
        """Register ``factory`` under ``name``; ``ConfigError`` when another one has it."""
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a {self.kind} needs a non-empty name, got {name!r} ({_where(factory)})")
        where = _where(factory)
        old = self._entries.get(name)
        if old is not None and old.where != where:
            raise ConfigError(f"{self.kind} name '{name}' is registered twice: by {_source(old.factory)} "
                              f"and by {_source(factory)}; rename one of them")
        if description is None:
            doc = inspect.getdoc(factory) or ""
            description = doc.splitlines()[0] if doc else ""
        entry = Entry(self.kind, name, factory, description, info, where)
        self._entries[name] = entry
        return entry

    def find(self, name: str) -> Entry | None:
        """The entry of ``name`` (plug-ins loaded if it is not registered yet), or None."""
        if name not in self._entries:
            load_plugins()
        return self._entries.get(name)

    def get(self, name: str) -> Entry:
        """The entry of ``name``; an unknown name raises, listing the known ones."""
        entry = self.find(name)
        if entry is None:
            raise self.error(self._unknown(name))
        return entry

    def _unknown(self, name: str) -> str:
        known = sorted(self._entries)
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        message = f"unknown {self.kind} '{name}'{hint}; valid {self.kind}s: {', '.join(known) or 'none'}"
        if not any(ep.value.startswith("refute.") for ep in _plugin_entry_points()):
            message += (f"; refute's own plug-ins (attack solvers, the probe scorer) are missing too: "
                        f"this install has no '{ENTRY_POINT_GROUP}' entry points, reinstall it "
                        "(`pip install -e .`)")
        return message

    def check_args(self, name: str, args: dict[str, Any]) -> Entry:
        """The entry of ``name`` once ``args`` fit its factory's signature; else the kind's error."""
        entry = self.get(name)
        try:
            entry.signature.bind(**args)
        except TypeError as exc:
            raise self.error(f"{self.kind} '{name}': bad arguments {args!r}: "
                             f"{_why(entry, args, exc)}") from None
        return entry

    def build(self, name: str, /, **args: Any) -> Any:
        """The plug-in ``name`` built with ``args``, checked against its signature first.

        Whatever the factory raises (a `ConfigError` for a bad value, or a bug) propagates.
        """
        return self.check_args(name, args).factory(**args)

    def entries(self) -> list[Entry]:
        """Every entry, plug-ins included, sorted by name."""
        load_plugins()
        return [self._entries[k] for k in sorted(self._entries)]

    def names(self) -> list[str]:
        return [e.name for e in self.entries()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.find(name) is not None


def _why(entry: Entry, args: dict[str, Any], exc: TypeError) -> str:
    params = entry.parameters()
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in entry.signature.parameters.values())
    unknown = [] if takes_any else sorted(set(args) - set(params))
    if unknown:
        return (f"unknown argument(s) {', '.join(unknown)}; it accepts: "
                f"{', '.join(params) or 'no arguments'}")
    missing = [k for k, p in params.items() if p.default is inspect.Parameter.empty and k not in args]
    if missing:
        return f"needs argument(s): {', '.join(missing)}"
    return str(exc)


_REGISTRIES: dict[str, Registry] = {}


#: The error a lookup of each kind raises (default `ConfigError`).
_ERRORS: dict[str, type[RefuteError]] = {"scorer": ScorerError}


def registry(kind: Kind) -> Registry:
    """The registry of ``kind`` (created on first use)."""
    if kind not in _REGISTRIES:
        _REGISTRIES[kind] = Registry(kind, _ERRORS.get(kind, ConfigError))
    return _REGISTRIES[kind]


# --- plug-ins from the ``refute`` entry-point group --------------------------------------------

_loaded: set[str] = set()  # entry points (``name=value``) imported without error
_loading = False
_complete = False  # every entry point imported: later lookups of unknown names do not rescan


def _plugin_entry_points() -> list[EntryPoint]:
    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: (ep.name, ep.value))


def load_plugins() -> None:
    """Import every module of the ``refute`` entry-point group not imported yet.

    A module that fails to import (or registers a name twice) raises a `ConfigError` naming the
    entry point; it is tried again on the next lookup, so the error stays until it is fixed. Once
    every module imported, the group is not scanned again in this process (a package installed
    after that is seen by the next process).
    """
    global _loading, _complete
    if _loading or _complete:  # a plug-in module looking a name up while it is imported; or done
        return
    _loading = True
    try:
        for ep in _plugin_entry_points():
            key = f"{ep.name}={ep.value}"
            if key in _loaded:
                continue
            module = ep.value.partition(":")[0].strip()
            try:
                importlib.import_module(module)
            except ConfigError as exc:
                raise ConfigError(f"refute plug-in '{ep.name}' ({module}): {exc}") from exc
            except Exception as exc:
                raise ConfigError(
                    f"refute plug-in '{ep.name}' (entry point '{ep.value}' in group "
                    f"'{ENTRY_POINT_GROUP}') failed to import: {type(exc).__name__}: {exc}; fix or "
                    "uninstall the package that declares it (a stale editable install: rerun "
                    "`pip install -e .`)") from exc
            _loaded.add(key)
        _complete = True
    finally:
        _loading = False
