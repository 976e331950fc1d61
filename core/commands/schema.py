"""``ftrun schema``: the JSON Schema of the installed tasks' manifests, or one task's keys as Markdown."""

from __future__ import annotations

import argparse
import json

from ftrun.commands.common import blocked_plugins
from ftrun.util.errors import FtrunError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--markdown", action="store_true", help="a task's own keys and defaults as Markdown, for its page in docs/tasks/ (with --task)")
    parser.add_argument("--task", metavar="NAME", help="with --markdown: the task")


def main(args: argparse.Namespace) -> int:
    from ftrun.api.plugin_manager import get_plugin_manager
    from ftrun.manifest.schema import manifest_schema, task_reference

    manager = get_plugin_manager(plugins=args.plugin, blocked=blocked_plugins(args))
    if args.markdown:
        if not args.task:
            raise FtrunError("schema: --markdown needs --task NAME (see `ftrun tasks`)")
        print(task_reference(manager, args.task), end="")
        return 0
    print(json.dumps(manifest_schema(manager), indent=2, ensure_ascii=False))
    return 0
