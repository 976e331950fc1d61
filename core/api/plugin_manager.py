"""Building the plugin manager: built-ins, entry points (group ``ftrun``), ``--plugin`` modules.

Built in a function, never at import time, so every run and every test gets a fresh one.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import importlib.metadata
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import pluggy
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from ftrun import __version__
from ftrun.api import hookspecs
from ftrun.api.task import BaseTask
from ftrun.util.errors import FtrunError, first_line

if TYPE_CHECKING:
    from pathlib import Path

    from pydantic import BaseModel
    from transformers import PreTrainedModel, Trainer, TrainerCallback

    from ftrun.api.task import BaseTask, Metrics
    from ftrun.manifest.config import RunConfig
    from ftrun.stages.data import TaskData
    from ftrun.stages.output import ModelCard
    from ftrun.stages.preflight import Preflight

#: Modules registered before any entry point: the default implementation of each stage.
DEFAULT_PLUGINS = ("ftrun.api.default_stages",)
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
        self._tasks: dict[str, tuple[BaseTask, str]] | None = None
        self._tables: dict[str, tuple[type[BaseModel], str]] | None = None
        self._table_clashes: dict[str, list[str]] = {}
        #: Module names asked for (``--plugin``, a manifest's ``plugins``) but blocked: consulted by :meth:`blocked_table_owner`.
        self.blocked_modules: list[str] = []

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

    def tasks(self) -> dict[str, tuple[BaseTask, str]]:
        """Every registered task by name, with the name of the plugin that registered it."""
        if self._tasks is None:
            tasks: dict[str, tuple[BaseTask, str]] = {}

            def registrar(label: str, plugin: str) -> Callable[[BaseTask], None]:
                def register(task: BaseTask) -> None:
                    if not isinstance(task, BaseTask):
                        raise FtrunError(f"{label}: registered {task!r}, which is not an ftrun.Task (or ftrun.BaseTask) instance")
                    if task.name in tasks:
                        raise FtrunError(f"task {task.name!r} is registered by both {self.label(tasks[task.name][1])} and {label}")
                    tasks[task.name] = (task, plugin)

                return register

            self._registrations("ftrun_register_tasks", registrar)
            self._tasks = tasks
        return self._tasks

    def tables(self) -> dict[str, type[BaseModel]]:
        """The manifest tables plugins registered (``ftrun_register_tables``), by name."""
        from pydantic import BaseModel

        from ftrun.manifest.config import TOP_LEVEL_KEYS

        if self._tables is None:
            tables: dict[str, tuple[type[BaseModel], str]] = {}

            def registrar(label: str, plugin: str) -> Callable[[str, type[BaseModel]], None]:
                def register(name: str, model: type[BaseModel]) -> None:
                    if not (isinstance(model, type) and issubclass(model, BaseModel)):
                        raise FtrunError(f"{label}: registered table {name!r} as {model!r}, which is not a pydantic model (subclass ftrun.Section)")
                    if name in TOP_LEVEL_KEYS:
                        raise FtrunError(f"{label}: table {name!r} is one of ftrun's own manifest keys")
                    if name in tables or name in self._table_clashes:
                        # One installed plugin must not break every command: only a manifest that uses the table fails.
                        owners = self._table_clashes.setdefault(name, [self.label(tables.pop(name)[1])] if name in tables else [])
                        owners.append(label)
                        return
                    tables[name] = (model, plugin)

                return register

            self._registrations("ftrun_register_tables", registrar)
            self._tables = tables
        return {name: model for name, (model, _) in self._tables.items()}

    def table_clashes(self) -> dict[str, list[str]]:
        """The table names that more than one plugin registers, with those plugins (``plugin NAME (DIST VERSION)``): no manifest can use them."""
        self.tables()
        return self._table_clashes

    def table_clash(self, name: str) -> str | None:
        """What is wrong with a manifest's table ``name`` that several plugins register, in words; ``None`` where one does."""
        owners = self.table_clashes().get(name)
        if owners is None:
            return None
        return f"table {name!r} is registered by both {' and '.join(owners)}: uninstall or block one of them (--no-plugin NAME)"

    def _registrations(self, hook: str, registrar: Callable[[str, str], Callable[..., None]]) -> None:
        """Call each implementation of the registration hook ``hook`` on its own, in registration order, so a duplicate names both plugins.

        ``registrar(label, plugin)`` gives the ``register`` function that implementation receives;
        anything else it raises is one error naming the plugin.
        """
        for impl in getattr(self.hook, hook).get_hookimpls():
            label = self.label(impl.plugin_name)
            try:
                _call(impl, {"register": registrar(label, impl.plugin_name)})
            except FtrunError:
                raise
            except Exception as exc:
                raise FtrunError(f"{label}: {hook} failed: {type(exc).__name__}: {first_line(exc)}") from exc

    def blocked_table_owner(self, name: str) -> str | None:
        """The blocked plugin that would register table ``name``, for the error of a manifest that still uses it; else ``None``.

        Only on that error path is a blocked plugin imported, to ask for its tables; one that
        fails to import says nothing.
        """
        blocked = [(ep.name, ep.load) for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if self.is_blocked(ep.name)]
        blocked += [(module, functools.partial(importlib.import_module, module)) for module in self.blocked_modules]
        for plugin, load in blocked:
            found: list[str] = []
            try:
                hook = getattr(load(), "ftrun_register_tables", None)
                if hook is not None:
                    hook(register=lambda table, model: found.append(table))
            except Exception:
                continue
            if name in found:
                return plugin
        return None

    def task(self, name: str, where: str | None = None) -> BaseTask:
        """The task called ``name``; ``where`` (the flag or key that named it) starts the error message."""
        tasks = self.tasks()
        if name not in tasks:
            close = difflib.get_close_matches(name, list(tasks), n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            prefix = f"{where}: " if where else ""
            raise FtrunError(f"{prefix}unknown task {name!r} ({hint}installed: {', '.join(sorted(tasks)) or 'none'})")
        return tasks[name][0]

    # -- the stages, called through pluggy, each answer checked ----------------------------

    def load_data(
        self, task: BaseTask, config: RunConfig, sample: int | None = None, labels: list[str] | None = None, splits: tuple[str, ...] = ("train", "eval")
    ) -> TaskData:
        """The data stage (``ftrun_load_data``); ``sample``: ``ftrun check``'s number of examples to encode per split.

        ``labels`` and ``splits``: ``ftrun eval``'s, a trained model's label names and the eval split alone.
        """
        from ftrun.stages.data import TaskData

        return self._stage("ftrun_load_data", TaskData, task=task, config=config, sample=sample, labels=labels, splits=splits)

    def preflight(self, task: BaseTask, config: RunConfig, data: TaskData) -> Preflight:
        """The task's pre-flight report, with every plugin's ``ftrun_preflight`` findings added.

        Where they find nothing wrong, the training loss a plugin supplies is asked for too, so that
        two of them, or one for a task without logits over labels, fail before any model loads.
        """
        report = task.preflight(config, data)
        self.hook.ftrun_preflight(task=task, config=report.config, data=data, report=report)
        if not report.errors:
            self.training_loss(task, report.config, data)
        return report

    def build_head(self, task: BaseTask, config: RunConfig, data: TaskData) -> PreTrainedModel:
        """The head stage (``ftrun_build_head``): a ``PreTrainedModel``, or a module wrapping one (a PEFT model)."""
        return self._stage("ftrun_build_head", is_head, task=task, config=config, data=data)

    def build_metrics(self, task: BaseTask, config: RunConfig, data: TaskData) -> Metrics:
        """The metric stage (``ftrun_build_metrics``)."""
        from ftrun.api.task import Metrics

        return self._stage("ftrun_build_metrics", Metrics, task=task, config=config, data=data)

    def trainer_callbacks(self, task: BaseTask, config: RunConfig) -> list[TrainerCallback]:
        """Every plugin's ``ftrun_trainer_callbacks``, joined; anything but lists of callbacks is an error naming who gave it."""
        from transformers import TrainerCallback

        def wrong(group: Any) -> list[Any]:
            return [c for c in group if not isinstance(c, TrainerCallback)] if isinstance(group, (list, tuple)) else [group]

        hook = self.hook.ftrun_trainer_callbacks
        callbacks: list[TrainerCallback] = []
        for group in hook(task=task, config=config):
            if wrong(group):
                # pluggy joins the answers without saying whose is whose: on this error path, ask each plugin again.
                kwargs = {"task": task, "config": config}
                plain = [impl for impl in hook.get_hookimpls() if not (impl.wrapper or impl.hookwrapper)]
                culprits = [impl.plugin_name for impl in plain if wrong(_call(impl, kwargs) or [])]
                plugins = " or ".join(self.label(name) for name in culprits or [impl.plugin_name for impl in hook.get_hookimpls()])
                what = f"a list holding {type(wrong(group)[0]).__name__}" if isinstance(group, (list, tuple)) else type(group).__name__
                raise FtrunError(f"{plugins}: ftrun_trainer_callbacks returned {what}, expected a list of transformers.TrainerCallback")
            callbacks += group
        return callbacks

    def build_trainer(
        self, task: BaseTask, config: RunConfig, data: TaskData, model: PreTrainedModel, metrics: Metrics, *, callbacks: list[TrainerCallback], output_dir: str
    ) -> Trainer:
        """The trainer stage (``ftrun_build_trainer``)."""
        from transformers import Trainer

        from ftrun.stages.training import PluginLoss, predicts_next_token

        trainer = self._stage(
            "ftrun_build_trainer", Trainer, task=task, config=config, data=data, model=model, metrics=metrics, callbacks=callbacks, output_dir=output_dir
        )
        given = self.training_loss(task, config, data)
        if given is not None:
            plugin, loss = given
            trainer.compute_loss_func = PluginLoss(loss, self.label(plugin), shift=predicts_next_token(model))
        return trainer

    def training_loss(self, task: BaseTask, config: RunConfig, data: TaskData) -> tuple[str, Callable[..., Any]] | None:
        """The loss one plugin supplies (``ftrun_training_loss``), with that plugin's name; ``None`` where none does.

        Each implementation is asked on its own, so that two answers are one error naming both
        plugins, rather than the last one silently winning.
        """
        kwargs = {"task": task, "config": config, "data": data}
        plain = [impl for impl in self.hook.ftrun_training_loss.get_hookimpls() if not (impl.wrapper or impl.hookwrapper)]
        given = [(impl.plugin_name, loss) for impl in plain if (loss := _call(impl, kwargs)) is not None]
        if len(given) > 1:
            plugins = " and ".join(self.label(plugin) for plugin, _ in given)
            raise FtrunError(f"{plugins} each supply the training loss (ftrun_training_loss): a run has one; remove the tables of all but one")
        if not given:
            return None
        plugin, loss = given[0]
        if not callable(loss):
            raise FtrunError(f"{self.label(plugin)}: ftrun_training_loss returned {type(loss).__name__}, expected a function (logits, labels) -> losses")
        if not task.logits_over_labels(config):
            raise FtrunError(
                f"{self.label(plugin)} supplies the training loss, but the head of task {task.name} gives no logits over labels "
                "(Task.logits_over_labels is false): a loss over labels cannot apply to it"
            )
        return plugin, loss

    def after_training(self, task: BaseTask, config: RunConfig, trainer: Trainer) -> list[str]:
        """Every plugin's ``ftrun_after_training`` line for the run's summary."""
        lines = self.hook.ftrun_after_training(task=task, config=config, trainer=trainer)
        return [line for line in lines if isinstance(line, str) and line]

    def save_model(self, task: BaseTask, config: RunConfig, trainer: Trainer, output_dir: Path) -> None:
        """The final save (``ftrun_save_model``), into the staging folder ``output_dir``."""
        self.hook.ftrun_save_model(task=task, config=config, trainer=trainer, output_dir=output_dir)

    def model_card(self, task: BaseTask, config: RunConfig, card: ModelCard) -> None:
        """Every plugin's ``ftrun_model_card`` changes to the card."""
        self.hook.ftrun_model_card(task=task, config=config, card=card)

    def _stage(self, name: str, expected: type | Callable[[Any], bool], **kwargs: Any) -> Any:
        """Call the ``firstresult`` stage hook ``name`` through pluggy; an answer that is not an ``expected`` is an error naming who gave it.

        ``expected`` is a class, or a predicate whose docstring says what it expects.
        """
        answer = getattr(self.hook, name)(**kwargs)
        if not _fits(answer, expected):
            if isinstance(expected, type):
                wanted = f"{expected.__module__.partition('.')[0]}.{expected.__qualname__}"
            else:
                wanted = expected.__doc__
            raise FtrunError(f"{self._answered_by(name, expected, kwargs)} returned {type(answer).__name__}, expected {wanted}")
        return answer

    def _answered_by(self, name: str, expected: type | Callable[[Any], bool], kwargs: dict[str, Any]) -> str:
        """Who gave a stage's wrong answer: the first plain implementation whose own answer is wrong, else the wrappers.

        pluggy does not say which implementation a ``firstresult`` answer came from, so, on this
        error path only, the plain implementations are called again one by one in pluggy's order
        (``tryfirst`` first, ftrun's ``trylast`` defaults last) up to the first answer.
        """
        impls = getattr(self.hook, name).get_hookimpls()
        for impl in reversed([impl for impl in impls if not (impl.wrapper or impl.hookwrapper)]):
            answer = _call(impl, kwargs)
            if answer is None:
                continue
            if _fits(answer, expected):
                break  # a right answer that a wrapper changed
            if impl.plugin_name not in DEFAULT_PLUGINS:
                return f"{self.label(impl.plugin_name)}: {name}"
            # ftrun's default stages answer with what the task's own declarations and methods give.
            task = kwargs["task"]
            owner = self.label(self.tasks().get(task.name, (task, impl.plugin_name))[1])
            method = name.removeprefix("ftrun_")
            return f"{owner}: {type(task).__name__}.{method} (stage {name})" if hasattr(task, method) else f"{owner}: task {task.name} (stage {name})"
        wrappers = [self.label(impl.plugin_name) for impl in impls if impl.wrapper or impl.hookwrapper]
        return f"{' or '.join(wrappers) or 'ftrun'}: {name}" + (" (a wrapper)" if wrappers else "")


def is_head(model: Any) -> bool:
    """transformers.PreTrainedModel, or a module whose get_base_model() is one (a peft.PeftModel)"""
    from transformers import PreTrainedModel

    if isinstance(model, PreTrainedModel):
        return True
    base = getattr(model, "get_base_model", None)
    return callable(base) and isinstance(base(), PreTrainedModel)


def _fits(answer: Any, expected: type | Callable[[Any], bool]) -> bool:
    return isinstance(answer, expected) if isinstance(expected, type) else expected(answer)


def get_plugin_manager(plugins: Iterable[str | object] = (), blocked: Iterable[str] = ()) -> PluginManager:
    """A fresh manager with the default stages, every installed plugin and ``plugins``.

    ``plugins`` are importable module names (``--plugin`` / a manifest's ``plugins``) or
    objects with hook implementations (tests); ``blocked`` are plugin names never to load
    (``--no-plugin``), as are those of the comma-separated ``FTRUN_NO_PLUGINS``, read here so
    that every manager of a process agrees. A plugin that fails to import, requires another
    ftrun, or whose hooks do not match a spec, is a FtrunError naming it.
    """
    manager = PluginManager()
    for name in [*blocked, *(name.strip() for name in os.environ.get("FTRUN_NO_PLUGINS", "").split(",") if name.strip())]:
        if name in DEFAULT_PLUGINS:  # as pytest refuses to block its essential plugins
            raise FtrunError(f"{name} cannot be blocked: it runs every task's stages (a plugin that implements a stage hook replaces that stage)")
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
        if manager.is_blocked(name) and isinstance(plugin, str):
            manager.blocked_modules.append(plugin)
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
        raise FtrunError(f'{info.label}: ftrun_requires = {required!r} is not a version specifier (such as ">=0.1,<0.2")') from exc
    if not specifier.contains(__version__, prereleases=True):
        raise FtrunError(f"{info.label} requires ftrun {required}, but this is ftrun {__version__}")


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
