"""``ftrun check``: a manifest and its data validated, and what would waste the run reported, without training."""

from __future__ import annotations

import argparse
import json
import sys

from ftrun.commands.common import config_options, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    config_options(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON, for scripts")
    parser.add_argument("--strict", action="store_true", help="treat warnings as errors (exit code 2), for CI pipelines")


def main(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    from ftrun.stages.head import check_model
    from ftrun.stages.preflight import CHECK_SAMPLE, remote_code_warning, show

    manager, config = load_config(args)
    if config.model.trust_remote_code:
        print(f"ftrun: warning: {remote_code_warning(config)}", file=sys.stderr)
    task = manager.task(config.task)
    # As a run loads it, through the data stage, encoding a sample: what would fail at tokenization fails now.
    data = manager.load_data(task, config, sample=CHECK_SAMPLE)
    check_model(config)
    manager.build_metrics(task, config, data)  # an unknown metric name fails now, not after training
    report = manager.preflight(task, config, data)
    failed = report.errors + (report.warnings if args.strict else [])
    data_defaults = "the default dataset's" if config.default_data else "generic"
    if args.json:
        print(json.dumps({"ok": not failed, "data_defaults": data_defaults, **report.as_dict()}, indent=2, ensure_ascii=False))
    else:
        labels = data.labels
        summary = f"{config.source}: {'failed' if failed else 'ok'}: task {config.task}, train {len(data.raw.train)} / eval {len(data.raw.eval)} examples"
        if labels is not None:
            summary += f", {len(labels)} labels ({', '.join(labels[:10])}{', ...' if len(labels) > 10 else ''})"
        counts = [f"{len(found)} {word}{'s' if len(found) != 1 else ''}" for found, word in ((report.errors, "error"), (report.warnings, "warning")) if found]
        print(summary + f", model {config.model.name or 'built from a config'}" + (f"; {', '.join(counts)}" if counts else ""))
        if config.default_data:
            print(f"data: task {config.task}'s default {'demo ' if config.demo else ''}dataset, with its [data] settings")
        else:
            print(f"data: the manifest's own, with task {config.task}'s generic [data] defaults (none of its default dataset's settings)")
        if report.sized:
            print(f"the run will train with {report.sized}")
        console = Console(soft_wrap=True)  # as the run's: a finding is one line however narrow the terminal
        show(report, console)
        for finding in report.warnings if not args.strict else []:
            console.print(f"[bold yellow]warning:[/] {escape(str(finding))}", highlight=False)
    for finding in failed:
        print(f"ftrun: error: {finding}", file=sys.stderr)
    return 2 if failed else 0
