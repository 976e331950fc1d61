"""``ftrun predict``: a trained model directory's predictions on texts, stdin lines, JSON objects or the rows of a file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftrun.commands.common import blocked_plugins, model_overrides, set_option, trust_option
from ftrun.util.errors import FtrunError

if TYPE_CHECKING:
    from ftrun.api.plugin_manager import PluginManager
    from ftrun.manifest.config import RunConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR", help="a directory written by an ftrun run")
    parser.add_argument("--task", metavar="NAME", help="the task, when DIR has no ftrun.toml")
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    parser.add_argument(
        "--json-input",
        action="store_true",
        help="each input is a JSON object (for tasks whose inputs have several fields, e.g. a question and a context)",
    )
    parser.add_argument(
        "--input", metavar="FILE", help="predict every row of a csv, json, jsonl(.gz) or parquet file (columns as the run's [data] names them), or a folder the task reads"
    )
    parser.add_argument("--output", metavar="FILE", help="with --input: the JSON lines file the predictions go to, one per row, in the rows' order")
    parser.add_argument("--skip-bad", action="store_true", help="with --input: leave out rows that cannot be read (counted), instead of stopping at the first")
    parser.add_argument("--overwrite", action="store_true", help="with --input: replace an existing --output file")
    set_option(parser, "override a key of the run's manifest, e.g. data.text_column=review")
    trust_option(parser)
    parser.add_argument("text", nargs="*", help="inputs; read from stdin, one per line, when none are given")


def main(args: argparse.Namespace) -> int:
    from ftrun.api.plugin_manager import get_plugin_manager
    from ftrun.manifest.config import build_config
    from ftrun.stages.output import MANIFEST_NAME, as_record
    from ftrun.stages.predict import check_plugins, check_remote_code, load_trained, predict_as_evaluated, read_model_dir, without_code

    model_dir = Path(args.model)
    # The run's manifest says which task made the model, and which plugins it needed.
    manifest_path = model_dir / MANIFEST_NAME
    manifest = read_model_dir(model_dir)
    manager = get_plugin_manager(plugins=args.plugin, blocked=blocked_plugins(args))
    check_plugins(manager, model_dir, manifest)
    saved = manifest.get("task")
    name = args.task
    if name is None:
        if not manifest_path.exists():
            raise FtrunError(f"--model: {model_dir} has no {MANIFEST_NAME}; say which task it is with --task")
        name = saved
        if not isinstance(name, str):
            raise FtrunError(f"{manifest_path}: task: missing; say which task it is with --task")
    elif saved is not None and name != saved:
        raise FtrunError(f"--task {name}: {model_dir} is a {saved} model (its {MANIFEST_NAME}), whose head was not trained for {name}: leave --task out")
    task = manager.task(name, where=f"--task {args.task}" if args.task else f"{model_dir / MANIFEST_NAME}: task")
    # The run's own settings (column names, lengths) where the model directory has them.
    config = build_config(
        task,
        without_code(manifest),
        source=str(manifest_path),
        base_dir=model_dir,
        overrides=model_overrides(args),
        tables=manager.tables(),
        finished=True,
    )
    warning = check_remote_code(config, model_dir, manifest)
    if warning:
        print(f"ftrun: warning: {warning}", file=sys.stderr)
    if args.input:
        return predict_input_file(args, manager, task, config, model_dir)
    if args.output or args.skip_bad:
        raise FtrunError("predict: --output and --skip-bad go with --input FILE")
    lines = [("argument", i, text) for i, text in enumerate(args.text, 1)] or [
        ("stdin line", i, line.rstrip("\n")) for i, line in enumerate(sys.stdin, 1) if line.strip()
    ]
    if not lines:
        raise FtrunError("predict: no input (give texts as arguments or lines on stdin)")
    given = [read_json_input(text, f"predict: {where} {i}") if args.json_input else text for where, i, text in lines]
    inputs = [task.read_input(value, f"predict: {where} {i}", config) for value, (where, i, _) in zip(given, lines)]
    model, processor = load_trained(manager, task, config, model_dir)
    for value, prediction in zip(given, predict_as_evaluated(task, model, processor, inputs, config)):
        if args.json:
            print(json.dumps(as_record(value, prediction), ensure_ascii=False))
        else:
            shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            print(f"{task.format_prediction(prediction)}\t{shown}")
    return 0


def predict_input_file(args: argparse.Namespace, manager: PluginManager, task: Any, config: RunConfig, model_dir: Path) -> int:
    """``ftrun predict --input FILE --output OUT``: every row of a file, streamed, batched, in order; a summary line at the end."""
    from ftrun.stages.predict import load_trained, predict_file
    from ftrun.util.display import Display

    source = Path(args.input)
    if not source.is_file() and not (source.is_dir() and task.read_file(source) is not None):  # a folder the task reads (images)
        raise FtrunError(f"--input: {source} does not exist" if not source.exists() else f"--input: {source} is not a file")
    if not args.output:
        raise FtrunError("--input: needs --output FILE, the JSON lines file its predictions go to")
    target = Path(args.output)
    if target.exists() and not args.overwrite:
        raise FtrunError(f"--output: {target} exists: choose another, or pass --overwrite to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    model, processor = load_trained(manager, task, config, model_dir)
    from rich.console import Console

    display = Display(Console(stderr=True, soft_wrap=True))  # stdout stays free for scripts; the rows' count is unknown until the end
    with display.active():
        advance = display.bar("Predicting", total=None)
        summary = predict_file(task, model, processor, config, source, target, skip_bad=args.skip_bad, advance=advance)
    skipped = f", {summary.skipped} bad row{'s' if summary.skipped != 1 else ''} skipped" if args.skip_bad else ""
    print(f"ftrun predict: {summary.rows - summary.skipped} of {summary.rows} rows of {source} predicted into {target}{skipped}", file=sys.stderr)
    return 0


def read_json_input(text: str, where: str) -> dict[str, Any]:
    """One ``--json-input`` input: a JSON object."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise FtrunError(f"{where}: not JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise FtrunError(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value
