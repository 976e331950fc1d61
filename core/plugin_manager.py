"""Building the plugin manager: built-ins, entry points (group ``ftrun``), ``--plugin`` modules.

Built in a function, never at import time, so every run and every test gets a fresh one.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.metadata
from typing import Iterable

import pluggy

from . import hookspecs
from .errors import FtrunError, first_line
from .task import Task

#: Modules registered before any entry point: the default implementation of each stage.
DEFAULT_PLUGINS = ("ftrun.default_stages",)
ENTRY_POINT_GROUP = "ftrun"


@dataclasses.dataclass
class PluginInfo:
    """Where a plugin came from, for ``ftrun plugins`` and error messages."""

    name: str
    module: str
    dist: str | None = None
    version: str | None = None

    @property
    def label(self) -> str:
        return f"plugin {self.name} ({self.dist} {self.version})" if self.dist else f"plugin {self.name}"


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, plus where each plugin came from and the registered tasks."""

    def __init__(self) -> None:
        super().__init__("ftrun")
        self.add_hookspecs(hookspecs)
        self.info: dict[str, PluginInfo] = {}
        self._tasks: dict[str, tuple[Task, str]] | None = None

    def add(self, module: object, info: PluginInfo) -> None:
        if self.has_plugin(info.name):
            raise FtrunError(f"{info.label}: a plugin named {info.name} is already registered ({self.info[info.name].module})")
        try:
            self.register(module, name=info.name)
        except pluggy.PluginValidationError as exc:
            raise FtrunError(f"{info.label}: {one_line(exc)}") from exc
        self.info[info.name] = info

    def tasks(self) -> dict[str, tuple[Task, str]]:
        """Every registered task by name, with the name of the plugin that registered it."""
        if self._tasks is None:
            self._tasks = {}
            # Call each implementation on its own (in registration order), so a duplicate names both plugins.
            for impl in self.hook.ftrun_register_tasks.get_hookimpls():
                self._collect(impl)
        return self._tasks

    def _collect(self, impl: pluggy.HookImpl) -> None:
        label = self.info[impl.plugin_name].label if impl.plugin_name in self.info else f"plugin {impl.plugin_name}"

        def register(task: Task) -> None:
            if not isinstance(task, Task):
                raise FtrunError(f"{label}: registered {task!r}, which is not an ftrun.Task instance")
            if task.name in self._tasks:
                other = self._tasks[task.name][1]
                raise FtrunError(f"task {task.name!r} is registered by both {self.info[other].label} and {label}")
            self._tasks[task.name] = (task, impl.plugin_name)

        try:
            impl.function(register=register)
        except FtrunError:
            raise
        except Exception as exc:
            raise FtrunError(f"{label}: ftrun_register_tasks failed: {type(exc).__name__}: {first_line(exc)}") from exc

    def task(self, name: str, where: str | None = None) -> Task:
        """The task called ``name``; ``where`` (the flag or key that named it) starts the error message."""
        tasks = self.tasks()
        if name not in tasks:
            close = difflib.get_close_matches(name, list(tasks), n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            prefix = f"{where}: " if where else ""
            raise FtrunError(f"{prefix}unknown task {name!r} ({hint}installed: {', '.join(sorted(tasks)) or 'none'})")
        return tasks[name][0]


def get_plugin_manager(plugins: Iterable[str] = (), blocked: Iterable[str] = ()) -> PluginManager:
    """A fresh manager with the default stages, every installed plugin and the named modules.

    ``plugins`` are importable module names (``--plugin`` / a manifest's ``plugins``);
    ``blocked`` are entry-point names not to load. A plugin that fails to import, or whose
    hooks do not match a spec, is a FtrunError naming it.
    """
    manager = PluginManager()
    blocked = set(blocked)
    for name in DEFAULT_PLUGINS:
        manager.add(importlib.import_module(name), PluginInfo(name=name, module=name))
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.name in blocked or manager.has_plugin(entry_point.name):
            continue  # the same distribution can be visible twice on sys.path
        dist = entry_point.dist
        info = PluginInfo(
            name=entry_point.name,
            module=entry_point.value,
            dist=dist.metadata["Name"] if dist else None,
            version=dist.version if dist else None,
        )
        manager.add(_import(entry_point.load, info), info)
    for module_name in plugins:
        info = PluginInfo(name=module_name, module=module_name)
        if not manager.has_plugin(module_name):
            manager.add(_import(lambda: importlib.import_module(module_name), info), info)
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        info = manager.info.get(manager.get_name(exc.plugin) or "")
        raise FtrunError(f"{info.label if info else 'plugin'}: {one_line(exc)} (is the hook name misspelt?)") from exc
    return manager


def _import(load, info: PluginInfo) -> object:
    try:
        return load()
    except Exception as exc:
        raise FtrunError(f"{info.label} failed to import: {type(exc).__name__}: {first_line(exc)}") from exc


def one_line(exc: BaseException) -> str:
    """pluggy's validation messages span several lines; the error is one line."""
    return " ".join(str(exc).split())
