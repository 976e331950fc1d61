"""``ftrun tasks``: the installed tasks, with the plugin that registers each."""

from __future__ import annotations

import argparse

from ftrun.commands.common import blocked_plugins


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """It has no flags but those every command has."""


def main(args: argparse.Namespace) -> int:
    from ftrun.api.plugin_manager import get_plugin_manager

    manager = get_plugin_manager(plugins=args.plugin, blocked=blocked_plugins(args))
    for name, (task, plugin) in sorted(manager.tasks().items()):
        print(f"{name:<24} {manager.info[plugin].label:<48} {task.description}")
    return 0
