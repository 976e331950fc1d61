"""What the commands share: their common options, loading a run's config from flags, the metrics table."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.table import Table

    from ftrun.api.plugin_manager import PluginManager
    from ftrun.manifest.config import RunConfig


def set_option(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help)


def trust_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="let the model directory's own code run (its config's auto_map), as --set model.trust_remote_code=true; nothing in the folder allows it",
    )


def model_overrides(args: argparse.Namespace) -> list[str]:
    """A model directory's ``--set`` overrides, with ``--trust-remote-code`` as the one it stands for."""
    return [*args.overrides, *(["model.trust_remote_code=true"] if args.trust_remote_code else [])]


def config_options(parser: argparse.ArgumentParser) -> None:
    """The options that build a run's config: ``--task``, ``--manifest``, ``--set``, ``--demo``."""
    parser.add_argument("--task", metavar="NAME", help="the task to run (see `ftrun tasks`)")
    parser.add_argument("--manifest", metavar="FILE", help="a TOML manifest describing the run")
    set_option(parser, "override a manifest key, e.g. training.num_train_epochs=1 (value parsed as TOML; repeatable)")
    parser.add_argument("--demo", action="store_true", help="run the task's embedded default: offline, small data and model")


def load_config(args: argparse.Namespace, announce: Callable[[str], None] = print) -> tuple[PluginManager, RunConfig]:
    """Manifest and flags → (plugin manager, validated RunConfig), by :func:`ftrun.api.load.load_run`."""
    from ftrun.api.load import load_run

    return load_run(
        task=args.task,
        manifest=args.manifest,
        overrides=args.overrides,
        demo=args.demo,
        plugins=args.plugin,
        blocked=blocked_plugins(args),
        announce=announce,
    )


def blocked_plugins(args: argparse.Namespace) -> list[str]:
    """Plugins not to load: ``--no-plugin`` (the plugin manager adds ``FTRUN_NO_PLUGINS``'s)."""
    return list(args.no_plugin)


def metrics_table(title: str, metrics: dict[str, float]) -> Table:
    """Eval metrics as the rich table a run ends with."""
    from rich.table import Table

    table = Table(title=title, show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key.removeprefix("eval_"), f"{value:.4f}" if isinstance(value, float) else str(value))
    return table
