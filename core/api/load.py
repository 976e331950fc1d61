"""A run's plugins and config, built together: the manifest names plugins, and the plugins add the manifest's tables and tasks."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ftrun.api.plugin_manager import PluginManager, get_plugin_manager
from ftrun.manifest.config import TOP_LEVEL_KEYS, Origin, RunConfig, build_config, manifest_plugins, parse_override, read_manifest
from ftrun.util.errors import FtrunError
from ftrun.util.hub import go_offline_unless_reachable, unavailable_offline


def load_run(
    *,
    task: str | None = None,
    manifest: str | Path | dict[str, Any] | None = None,
    overrides: Iterable[str] = (),
    demo: bool = False,
    plugins: Iterable[str | object] = (),
    blocked: Iterable[str] = (),
    source: str | None = None,
    base_dir: str | Path | None = None,
    announce: Callable[[str], None] = print,
) -> tuple[PluginManager, RunConfig]:
    """The plugin manager and validated config of a run, as ``ftrun run`` builds them, without a command line.

    ``manifest`` is a TOML file or its tables; the plugins it names join ``plugins`` (module names
    or objects with hook implementations), less the ``blocked`` names. ``source`` names it in
    messages (default: the file's name, or ``--task TASK``); relative paths resolve against
    ``base_dir`` (default: the file's folder, or the current directory). With no manifest and
    the Hub out of reach, a task whose default model or data is not cached runs its demo, which
    ``announce`` says.
    """
    given: dict[str, Any] = {}
    default_source, default_dir = f"--task {task}", Path.cwd()
    if isinstance(manifest, dict):
        given, default_source = manifest, "manifest"
    elif manifest is not None:
        given = read_manifest(manifest)
        default_source, default_dir = Path(manifest).name, Path(manifest).resolve().parent
    source = source or default_source
    base_dir = Path(base_dir) if base_dir is not None else default_dir
    manager = get_plugin_manager(plugins=[*plugins, *manifest_plugins(given, Origin(source))], blocked=blocked)
    named = given.get("task")
    if named is not None and not isinstance(named, str):
        raise FtrunError(f"{source}: task: expected a string")
    if task and named and task != named:
        raise FtrunError(f"--task {task}: the manifest {source} is for task {named!r}")
    if not (task or named):
        installed = ", ".join(sorted(manager.tasks())) or "none"
        raise FtrunError(f"{source + ': task: ' if manifest is not None else ''}name a task with --task or the manifest's task key (installed: {installed})")
    chosen = manager.task(task or named, where=f"--task {task}" if task else f"{source}: task")
    overrides = list(overrides)
    check_blocked_tables(manager, [*given, *(parse_override(text)[0][0] for text in overrides)], Origin(source))
    if not go_offline_unless_reachable() and not demo and manifest is None and not _names_sources(overrides):
        missing = unavailable_offline(chosen.defaults.get("model", {}).get("name"), chosen.defaults.get("data", {}).get("dataset"))
        if missing:
            announce(
                f"ftrun: the Hugging Face Hub is unreachable and {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not cached: "
                f"running the embedded {chosen.name} demo instead (name a model and dataset to change this; "
                "--overwrite replaces the results of an earlier demo run)"
            )
            demo = True
    return manager, build_config(chosen, given, source=source, base_dir=base_dir, overrides=overrides, demo=demo, tables=manager.tables())


def check_blocked_tables(manager: PluginManager, keys: Iterable[str], where: Callable[[str], str]) -> None:
    """A manifest table of a blocked plugin, or of two plugins at once, is one line naming them, not "unknown key"."""
    known = set(TOP_LEVEL_KEYS) | set(manager.tables())
    for key in dict.fromkeys(keys):
        clash = manager.table_clash(key)
        if clash is not None:
            raise FtrunError(f"{where(key)}: {clash}")
        owner = None if key in known else manager.blocked_table_owner(key)
        if owner is not None:
            raise FtrunError(f"{where(key)}: table of plugin {owner}, which is blocked (--no-plugin or FTRUN_NO_PLUGINS): unblock it, or remove the table")


def _names_sources(overrides: list[str]) -> bool:
    """Whether --set names a model or data source: then nothing may fall back to the demo."""
    return any(parse_override(item)[0][0] in ("model", "data") for item in overrides)
