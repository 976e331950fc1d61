"""``ftrun plugins``: the loaded plugins, their hooks, and tables two of them claim."""

from __future__ import annotations

import argparse

from ftrun.commands.common import blocked_plugins


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """It has no flags but those every command has."""


def main(args: argparse.Namespace) -> int:
    from ftrun.api.plugin_manager import get_plugin_manager

    manager = get_plugin_manager(plugins=args.plugin, blocked=blocked_plugins(args))
    for name, info in manager.info.items():
        hooks = sorted(caller.name for caller in manager.get_hookcallers(manager.get_plugin(name)) or ())
        where = f"{info.dist} {info.version}" if info.dist else info.module
        print(f"{name} ({where}): {', '.join(hooks) or 'no hooks'}")
    for table in manager.table_clashes():
        print(f"warning: {manager.table_clash(table)}; a manifest with [{table}] fails, everything else works")
    return 0
