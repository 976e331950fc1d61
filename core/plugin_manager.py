"""Building the plugin manager: built-ins, entry points (group ``ftrun``), ``--plugin`` modules.

Built in a function, never at import time, so every run and every test gets a fresh one.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.metadata
from typing import Any, Iterable

import pluggy
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from . import __version__, hookspecs
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

    def add(self, plugin: object, info: PluginInfo) -> None:
        """Register ``plugin`` (a module, or any object with hook implementations) under ``info.name``."""
        if self.has_plugin(info.name):
            raise FtrunError(f"{info.label}: a plugin named {info.name} is already registered ({self.info[info.name].module})")
        check_ftrun_requires(plugin, info)
        try:
            self.register(plugin, name=info.name)
        except pluggy.PluginValidationError as exc:
            raise FtrunError(f"{info.label}: {one_line(exc)}") from exc
        self.info[info.name] = info

    def label(self, name: str) -> str:
        """``plugin NAME (DIST VERSION)``: how messages name a registered plugin."""
        return self.info[name].label if name in self.info else f"plugin {name}"

    def tasks(self) -> dict[str, tuple[Task, str]]:
        """Every registered task by name, with the name of the plugin that registered it."""
        if self._tasks is None:
            self._tasks = {}
            # Call each implementation on its own (in registration order), so a duplicate names both plugins.
            for impl in self.hook.ftrun_register_tasks.get_hookimpls():
                self._collect(impl)
        return self._tasks

    def _collect(self, impl: pluggy.HookImpl) -> None:
        label = self.label(impl.plugin_name)

        def register(task: Task) -> None:
            if not isinstance(task, Task):
                raise FtrunError(f"{label}: registered {task!r}, which is not an ftrun.Task instance")
            if task.name in self._tasks:
                other = self._tasks[task.name][1]
                raise FtrunError(f"task {task.name!r} is registered by both {self.label(other)} and {label}")
            self._tasks[task.name] = (task, impl.plugin_name)

        try:
            _call(impl, {"register": register})
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

    def call_stage(self, name: str, expected: type, **kwargs: Any) -> Any:
        """Call the ``firstresult`` stage hook ``name``; an answer that is not an ``expected`` names who gave it.

        pluggy does not say which implementation a firstresult answer came from, so the plain
        implementations are called here, in pluggy's order (``tryfirst`` first, ftrun's
        ``trylast`` defaults last) up to the first answer, each with the arguments it names.
        Wrappers (``wrapper=True``) still wrap that call, through pluggy's ``call_extra``.
        """
        impls = getattr(self.hook, name).get_hookimpls()
        plain = [impl for impl in impls if not (impl.wrapper or impl.hookwrapper)]
        wrappers = [impl for impl in impls if impl.wrapper or impl.hookwrapper]

        def first_answer() -> Any:
            for impl in reversed(plain):
                answer = _call(impl, kwargs)
                if answer is not None:
                    return checked(answer, expected, self._answered_by(impl, name, kwargs["task"]))
            raise FtrunError(f"{name}: no plugin answered (is {DEFAULT_PLUGINS[0]}, which runs the tasks' own stages, blocked?)")

        if not wrappers:
            return first_answer()
        around = self.subset_hook_caller(name, remove_plugins=[impl.plugin for impl in plain])
        answer = around.call_extra([first_answer], kwargs)
        return checked(answer, expected, f"{' or '.join(self.label(impl.plugin_name) for impl in wrappers)}: {name} (a wrapper)")

    def _answered_by(self, impl: pluggy.HookImpl, name: str, task: Task) -> str:
        """Who to blame for an answer: the plugin, or, for ftrun's default stages, the task's own method."""
        if impl.plugin_name not in DEFAULT_PLUGINS:
            return f"{self.label(impl.plugin_name)}: {name}"
        # ftrun.default_stages answers each stage hook with the task's method of the same name.
        owner = self.tasks().get(task.name, (task, impl.plugin_name))[1]
        return f"{self.label(owner)}: {type(task).__name__}.{name.removeprefix('ftrun_')} (stage {name})"


def get_plugin_manager(plugins: Iterable[str | object] = (), blocked: Iterable[str] = ()) -> PluginManager:
    """A fresh manager with the default stages, every installed plugin and ``plugins``.

    ``plugins`` are importable module names (``--plugin`` / a manifest's ``plugins``) or
    objects with hook implementations (tests); ``blocked`` are plugin names never to load
    (``--no-plugin`` / ``FTRUN_NO_PLUGINS``). A plugin that fails to import, requires
    another ftrun, or whose hooks do not match a spec, is a FtrunError naming it.
    """
    manager = PluginManager()
    for name in blocked:
        manager.set_blocked(name)
    for name in DEFAULT_PLUGINS:
        if not manager.is_blocked(name):
            manager.add(importlib.import_module(name), PluginInfo(name=name, module=name))
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if manager.is_blocked(entry_point.name) or manager.has_plugin(entry_point.name):
            continue  # the same distribution can be visible twice on sys.path
        dist = entry_point.dist
        info = PluginInfo(
            name=entry_point.name,
            module=entry_point.value,
            dist=dist.metadata["Name"] if dist else None,
            version=dist.version if dist else None,
        )
        manager.add(_import(entry_point.load, info), info)
    for plugin in plugins:
        name = plugin if isinstance(plugin, str) else manager.get_canonical_name(plugin)
        if manager.is_blocked(name) or manager.has_plugin(name):
            continue
        info = PluginInfo(name=name, module=name)
        module = _import(lambda: importlib.import_module(plugin), info) if isinstance(plugin, str) else plugin
        if manager.is_registered(module):  # installed already, under its entry point's name
            continue
        manager.add(module, info)
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        info = manager.info.get(manager.get_name(exc.plugin) or "")
        raise FtrunError(f"{info.label if info else 'plugin'}: {one_line(exc)} (is the hook name misspelt?)") from exc
    return manager


def check_ftrun_requires(plugin: object, info: PluginInfo) -> None:
    """A plugin's ``ftrun_requires`` (a version specifier, e.g. ``">=0.1,<0.2"``) must admit this ftrun."""
    required = getattr(plugin, "ftrun_requires", None)
    if required is None:
        return
    try:
        specifier = SpecifierSet(required)
    except (InvalidSpecifier, TypeError, AttributeError) as exc:  # not a string, or not a specifier
        raise FtrunError(f"{info.label}: ftrun_requires = {required!r} is not a version specifier (such as \">=0.1,<0.2\")") from exc
    if not specifier.contains(__version__, prereleases=True):
        raise FtrunError(f"{info.label} requires ftrun {required}, but this is ftrun {__version__}")


def checked(answer: Any, expected: type, who: str) -> Any:
    """``answer`` if it is an ``expected``; else one line saying who returned what instead."""
    if not isinstance(answer, expected):
        package = expected.__module__.partition(".")[0]
        raise FtrunError(f"{who} returned {type(answer).__name__}, expected {package}.{expected.__qualname__}")
    return answer


def _call(impl: pluggy.HookImpl, kwargs: dict[str, Any]) -> Any:
    """Call one implementation as pluggy does: with the arguments it names, a subset of the spec's."""
    return impl.function(*(kwargs[name] for name in impl.argnames))


def _import(load, info: PluginInfo) -> object:
    try:
        return load()
    except Exception as exc:
        raise FtrunError(f"{info.label} failed to import: {type(exc).__name__}: {first_line(exc)}") from exc


def one_line(exc: BaseException) -> str:
    """pluggy's validation messages span several lines; the error is one line."""
    return " ".join(str(exc).split())
