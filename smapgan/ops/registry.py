"""Op discovery: built-in plugins, installed packages' entry points, and extra folders.

Three sources, in this order (the first op of a name wins; later ones are
reported as duplicates):

1. ``smapgan.builtin_ops``: the repository's ``ops/`` folder (installed under that name);
2. the ``smapgan.ops`` entry-point group of installed packages: an entry point may
   name an :class:`Op`, a module holding ops, or a list of ops;
3. every ``*.py`` file (not starting with ``_``) of the folders listed in
   ``SMAPGAN_OPS_PATH`` (``os.pathsep``-separated).

A plugin that fails to import or declares an invalid spec is skipped and
reported in :attr:`Registry.errors` by name; it never stops the others.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import pkgutil
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator, Sequence

from .spec import Op

ENTRY_POINT_GROUP = "smapgan.ops"
PATH_ENV = "SMAPGAN_OPS_PATH"
BUILTIN_PACKAGE = "smapgan.builtin_ops"


@dataclass(frozen=True)
class PluginError:
    """A plugin that could not be loaded: its name, where it came from, and why."""

    plugin: str
    source: str
    message: str
    details: str = ""

    def __str__(self) -> str:
        return f"{self.plugin} ({self.source}): {self.message}"


@dataclass
class Registry:
    """Ops by name, in discovery order, plus the plugins that failed."""

    ops: dict[str, Op] = field(default_factory=dict)
    errors: list[PluginError] = field(default_factory=list)

    def __iter__(self) -> Iterator[Op]:
        return iter(self.ops.values())

    def __len__(self) -> int:
        return len(self.ops)

    def __contains__(self, name: object) -> bool:
        return name in self.ops

    def __getitem__(self, name: str) -> Op:
        try:
            return self.ops[name]
        except KeyError:
            raise KeyError(f"no op named {name!r}; available: {', '.join(self.ops) or 'none'}") from None

    def names(self) -> list[str]:
        return [o.name for o in self.sorted()]

    def sorted(self) -> list[Op]:
        """Ops by their ``order``, then discovery order (how the app and CLI list them)."""
        return sorted(self.ops.values(), key=lambda o: o.order)

    def add(self, found: Op, plugin: str, source: str) -> None:
        if found.name in self.ops:
            other = self.ops[found.name].source
            self.errors.append(PluginError(plugin, source, f"op {found.name!r} is already provided by {other}; skipped"))
            return
        self.ops[found.name] = dataclasses.replace(found, source=f"{source}:{plugin}")


def _error(registry: Registry, plugin: str, source: str, exc: BaseException) -> None:
    message = f"{type(exc).__name__}: {exc}"
    details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    registry.errors.append(PluginError(plugin, source, message, details))


def ops_in_module(module: ModuleType) -> list[Op]:
    """The ops a plugin module defines (imported ops from other modules are not counted twice)."""
    found: list[Op] = []
    for value in vars(module).values():
        if isinstance(value, Op) and value not in found:
            if getattr(value.fn, "__module__", module.__name__) == module.__name__:
                found.append(value)
    return found


def _add_module(registry: Registry, module: ModuleType, plugin: str, source: str) -> None:
    found = ops_in_module(module)
    if not found:
        registry.errors.append(PluginError(plugin, source, "defines no op (decorate a function with smapgan.ops.op)"))
    for item in found:
        registry.add(item, plugin, source)


def _load_builtin(registry: Registry) -> None:
    try:
        package = importlib.import_module(BUILTIN_PACKAGE)
    except Exception as exc:  # a broken install must not take the app down either
        _error(registry, BUILTIN_PACKAGE, "builtin", exc)
        return
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        plugin = f"ops/{info.name}.py"
        try:
            module = importlib.import_module(f"{BUILTIN_PACKAGE}.{info.name}")
        except (Exception, SystemExit) as exc:
            _error(registry, plugin, "builtin", exc)
            continue
        _add_module(registry, module, plugin, "builtin")


def _load_entry_points(registry: Registry) -> None:
    for entry in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        plugin = f"{entry.name} = {entry.value}"
        try:
            loaded: Any = entry.load()
        except (Exception, SystemExit) as exc:
            _error(registry, plugin, "entry point", exc)
            continue
        if isinstance(loaded, Op):
            registry.add(loaded, plugin, "entry point")
        elif isinstance(loaded, ModuleType):
            _add_module(registry, loaded, plugin, "entry point")
        elif isinstance(loaded, (list, tuple)) and loaded and all(isinstance(x, Op) for x in loaded):
            for item in loaded:
                registry.add(item, plugin, "entry point")
        else:
            registry.errors.append(
                PluginError(plugin, "entry point", f"names a {type(loaded).__name__}, not an op, a module or a list of ops")
            )


def load_file(path: Path) -> ModuleType:
    """Import one plugin file under a private, collision-free module name."""
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    name = f"smapgan_plugins.{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _load_paths(registry: Registry, folders: Sequence[str]) -> None:
    for folder in folders:
        directory = Path(folder).expanduser()
        if not directory.is_dir():
            registry.errors.append(PluginError(str(directory), "path", f"{PATH_ENV} names a folder that does not exist"))
            continue
        for path in sorted(directory.glob("*.py")):
            if path.name.startswith("_"):
                continue
            try:
                module = load_file(path)
            except (Exception, SystemExit) as exc:
                _error(registry, str(path), "path", exc)
                continue
            _add_module(registry, module, str(path), "path")


def path_folders() -> list[str]:
    """The folders named by ``SMAPGAN_OPS_PATH``."""
    return [part for part in os.environ.get(PATH_ENV, "").split(os.pathsep) if part.strip()]


def discover(*, paths: Sequence[str] | None = None) -> Registry:
    """Find every op; ``paths`` defaults to the folders in ``SMAPGAN_OPS_PATH``."""
    registry = Registry()
    _load_builtin(registry)
    _load_entry_points(registry)
    _load_paths(registry, path_folders() if paths is None else list(paths))
    return registry
