"""The ``ftrun`` command: run a task, list tasks and plugins, check a manifest, predict."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .distributed import report_error
from .errors import FtrunError, first_line

if TYPE_CHECKING:
    from rich.table import Table

    from .config import RunConfig
    from .plugin_manager import PluginManager

COMMANDS = {
    "run": "train, evaluate, save and predict (the default command)",
    "tasks": "list the installed tasks",
    "plugins": "list the loaded plugins and their hooks",
    "check": "validate a manifest and its data, and report what would waste the run, without training",
    "predict": "predict with a trained model directory",
    "schema": "print the JSON Schema of the installed tasks' manifests",
    "tune": "search hyperparameters ([search]) with Optuna: each trial a run, the study in a database",
    "eval": "evaluate a trained model directory on a split, with its task's metrics",
}
#: The commands that only list what is installed: they load no model or data, so they leave the libraries
#: unimported (transformers' and datasets' own imports take seconds, torch's most of them) and answer at once.
LISTINGS = ("tasks", "plugins", "schema")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE", help="also load this plugin module (repeatable)")
    parser.add_argument(
        "--no-plugin",
        action="append",
        default=[],
        metavar="NAME",
        help="do not load this plugin: an installed one, or a --plugin module (repeatable; see `ftrun plugins`)",
    )
    parser.add_argument("--traceback", action="store_true", help="show the full traceback of an error")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the libraries' own logs and warnings")


def _set_option(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help)


def _trust_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="let the model directory's own code run (its config's auto_map), as --set model.trust_remote_code=true; nothing in the folder allows it",
    )


def _config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", metavar="NAME", help="the task to run (see `ftrun tasks`)")
    parser.add_argument("--manifest", metavar="FILE", help="a TOML manifest describing the run")
    _set_option(parser, "override a manifest key, e.g. training.num_train_epochs=1 (value parsed as TOML; repeatable)")
    parser.add_argument("--demo", action="store_true", help="run the task's embedded default: offline, small data and model")


def build_parser(command: str) -> argparse.ArgumentParser:
    if command == "run":
        parser = argparse.ArgumentParser(
            prog="ftrun",
            description="Fine-tune a Hugging Face model for a task, from a command line or a TOML manifest.",
            epilog="commands:\n"
            + "\n".join(f"  {name:<9} {text}" for name, text in COMMANDS.items())
            + "\n\nexamples:\n  ftrun tasks\n  ftrun --task NAME --demo\n  ftrun --manifest run.toml --set training.num_train_epochs=1",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.add_argument("--version", action="version", version=f"ftrun {__version__}")
        _config_options(parser)
        parser.add_argument("--output-dir", metavar="DIR", help="where the model and results go (default: ftrun-runs/TASK)")
        parser.add_argument("--overwrite", action="store_true", help="replace the output directory of an earlier run")
        parser.add_argument(
            "--resume",
            nargs="?",
            const=True,
            default=None,
            metavar="CHECKPOINT",
            help="continue the run in the output directory from its newest complete checkpoint, or from CHECKPOINT",
        )
        parser.add_argument("--nproc", metavar="N", help="train in N processes on this machine, started with torchrun (one per GPU)")
    else:
        parser = argparse.ArgumentParser(prog=f"ftrun {command}", description=COMMANDS[command])
        if command == "check":
            _config_options(parser)
            parser.add_argument("--json", action="store_true", help="print the report as JSON, for scripts")
            parser.add_argument("--strict", action="store_true", help="treat warnings as errors (exit code 2), for CI pipelines")
        elif command == "tune":
            _config_options(parser)
            parser.add_argument("--output-dir", metavar="DIR", help="where the trials, the study and the best model go (default: ftrun-runs/TASK-tune)")
            parser.add_argument(
                "--storage", metavar="URL", help="the study's database, any Optuna supports (default: study.db, SQLite, in the output directory)"
            )
            parser.add_argument("--study", default="ftrun", metavar="NAME", help="the study's name in the database (default: ftrun)")
        elif command == "schema":
            parser.add_argument("--markdown", action="store_true", help="a task's own keys and defaults as Markdown, for its page in docs/tasks/ (with --task)")
            parser.add_argument("--task", metavar="NAME", help="with --markdown: the task")
        elif command == "eval":
            parser.add_argument("--model", required=True, metavar="DIR", help="a directory written by an ftrun run")
            parser.add_argument("--manifest", metavar="FILE", help="tables laid over the run's own ftrun.toml (another [data] to evaluate on, ...)")
            _set_option(parser, "override a key of the run's manifest, e.g. data.eval_file=test.csv")
            parser.add_argument(
                "--output-dir", metavar="DIR", help="where eval_results.json and plots/ go (default: the model directory's name + -eval, beside it)"
            )
            parser.add_argument("--overwrite", action="store_true", help="replace the results of an earlier ftrun eval there")
            parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout, for scripts")
            _trust_option(parser)
        elif command == "predict":
            parser.add_argument("--model", required=True, metavar="DIR", help="a directory written by an ftrun run")
            parser.add_argument("--task", metavar="NAME", help="the task, when DIR has no ftrun.toml")
            parser.add_argument("--json", action="store_true", help="print JSON lines")
            parser.add_argument(
                "--json-input",
                action="store_true",
                help="each input is a JSON object (for tasks whose inputs have several fields, e.g. a question and a context)",
            )
            parser.add_argument(
                "--input", metavar="FILE", help="predict every row of a csv, json, jsonl(.gz) or parquet file (columns as the run's [data] names them)"
            )
            parser.add_argument("--output", metavar="FILE", help="with --input: the JSON lines file the predictions go to, one per row, in the rows' order")
            parser.add_argument(
                "--skip-bad", action="store_true", help="with --input: leave out rows that cannot be read (counted), instead of stopping at the first"
            )
            parser.add_argument("--overwrite", action="store_true", help="with --input: replace an existing --output file")
            _set_option(parser, "override a key of the run's manifest, e.g. data.text_column=review")
            _trust_option(parser)
            parser.add_argument("text", nargs="*", help="inputs; read from stdin, one per line, when none are given")
    _common(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    named = bool(argv) and argv[0] in COMMANDS
    command = argv[0] if named else "run"
    args = build_parser(command).parse_args(argv[1:] if named else argv)
    args.argv = argv  # the whole command line: `ftrun --nproc` hands it on to the processes it starts
    quiet_libraries(args.verbose, load=command not in LISTINGS)
    try:
        return globals()[f"cmd_{command}"](args)
    except FtrunError as exc:
        if args.traceback:
            raise
        report_error(f"ftrun: {exc.label}: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        print("ftrun: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.traceback:
            raise
        report_error(f"ftrun: internal error: {type(exc).__name__}: {first_line(exc)} (run with --traceback for details)")
        return 1


def quiet_libraries(verbose: bool, load: bool = True) -> None:
    """Hide the libraries' info logs and warnings unless asked: ftrun reports what matters itself.

    ``load``: also import transformers and datasets to quiet their own loggers and progress bars,
    which a command that loads no model or data does without.
    """
    if verbose:
        return
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    for name in ("transformers", "datasets", "evaluate", "huggingface_hub", "accelerate", "torch"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if not load:
        return
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()  # ftrun shows its own
    transformers.utils.logging.disable_progress_bar()


# -- building the run config --------------------------------------------------------


def load_config(args: argparse.Namespace, announce: Callable[[str], None] = print) -> tuple[PluginManager, RunConfig]:
    """Manifest and flags → (plugin manager, validated RunConfig), by :func:`ftrun.config.load_run`."""
    from .config import load_run

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


# -- commands ---------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from . import distributed
    from .display import Display
    from .output import predict_command
    from .runner import run

    display = Display(quiet=not distributed.is_main_process())
    manager, config = load_config(args, announce=display.print)
    nproc = distributed.parse_nproc(args.nproc) if args.nproc is not None else config.nproc
    if nproc is not None:
        where = f"--nproc {args.nproc}" if args.nproc is not None else config.where("nproc")
        if not distributed.launched():
            return distributed.launch(nproc, args.argv, verbose=args.verbose)
        distributed.check_nproc(nproc, where)
    if "search" in config.tables:
        display.print(f"{config.where('search')}: read by ftrun tune; this run trains once, with the manifest's own values")
    default_dir = Path("ftrun-runs") / (f"{config.task}-demo" if config.demo else config.task)
    output_dir = Path(args.output_dir or config.output_dir or default_dir)
    # The run prints its first line and warnings once its data is loaded and checked.
    manifest = Path(args.manifest) if args.manifest else None
    result = run(config, manager, output_dir, overwrite=args.overwrite, resume=args.resume, display=display, manifest=manifest)

    display.print(metrics_table("Final evaluation", result.eval_metrics))
    task = manager.task(config.task)
    for example, prediction in zip(config.predict.examples, result.predictions):
        shown = example if isinstance(example, str) else json.dumps(example, ensure_ascii=False)
        display.print(f"[bold]{task.format_prediction(prediction)}[/]  {shown}", highlight=False)
    display.print(f"Model, tokenizer, metrics, predictions and model card written to [bold]{output_dir}[/]")
    command = predict_command(task, config, str(output_dir))
    if command:
        display.print(f"Try it: {command}", highlight=False, markup=False)
    return 0


def metrics_table(title: str, metrics: dict[str, float]) -> Table:
    """Eval metrics as the rich table a run ends with."""
    from rich.table import Table

    table = Table(title=title, show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key.removeprefix("eval_"), f"{value:.4f}" if isinstance(value, float) else str(value))
    return table


def cmd_eval(args: argparse.Namespace) -> int:
    from .config import Origin, build_config, manifest_model, manifest_plugins, merge, read_manifest, resolve_paths
    from .data import check_file
    from .display import Display
    from .evaluation import evaluate_model
    from .output import MANIFEST_NAME
    from .output_dir import check_path
    from .plugin_manager import get_plugin_manager
    from .predict import check_plugins, check_remote_code, read_model_dir, without_code

    model_dir = Path(args.model)
    manifest_path = model_dir / MANIFEST_NAME
    if not manifest_path.is_file():
        raise FtrunError(f"--model: {model_dir} has no {MANIFEST_NAME}: not a directory an ftrun run wrote")
    saved = read_model_dir(model_dir)
    overlay = read_manifest(Path(args.manifest)) if args.manifest else {}
    if "task" in overlay and overlay["task"] != saved.get("task"):
        raise FtrunError(f"{args.manifest}: task: {overlay['task']!r}, but {model_dir} is a {saved.get('task')} model (its {MANIFEST_NAME}): leave task out")
    manifest = without_code(saved)
    output_dir = Path(args.output_dir) if args.output_dir else model_dir.with_name(model_dir.name + "-eval")
    check_path(output_dir)
    if output_dir.resolve() == model_dir.resolve() or model_dir.resolve() in output_dir.resolve().parents:
        raise FtrunError(f"--output-dir: {output_dir} is inside the model directory, which ftrun eval leaves as it is")
    if output_dir.exists() and any(output_dir.iterdir()) and not args.overwrite:
        raise FtrunError(f"--output-dir: {output_dir} is not empty: choose another, or pass --overwrite to replace an earlier ftrun eval's results")
    manager = get_plugin_manager(plugins=[*args.plugin, *manifest_plugins(overlay, Origin(str(args.manifest)))], blocked=blocked_plugins(args))
    overrides = [*args.overrides, *(["model.trust_remote_code=true"] if args.trust_remote_code else [])]
    check_plugins(manager, model_dir, saved)
    name = manifest.get("task")
    task = manager.task(name, where=f"{manifest_path}: task")
    source = args.manifest or str(manifest_path)
    # The run's paths are absolute in its ftrun.toml; --manifest's are relative to its folder, --set's to the current one.
    resolve_paths(overlay, manifest_model(task, manager.tables()), Path(args.manifest or ".").parent)
    config = build_config(task, merge(manifest, overlay), source=source, base_dir=Path.cwd(), overrides=overrides, tables=manager.tables(), finished=True)
    if config.data.eval_file:  # checked here, by its name: the eval stage reads it as its only split
        check_file(config, "eval_file", config.data.eval_file)
    warning = check_remote_code(config, model_dir, saved)
    if warning:
        print(f"ftrun: warning: {warning}", file=sys.stderr)
    from rich.console import Console

    display = Display(Console(stderr=True, soft_wrap=True) if args.json else None)  # with --json, stdout holds the JSON alone
    display.print(f"ftrun eval: {model_dir} (task {task.name}) on the eval split of {config.data.eval_file or config.data.dataset}, results to {output_dir}")
    results = evaluate_model(manager, config, model_dir, output_dir, display)
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    else:
        display.print(metrics_table("Evaluation", results))
    display.print(f"Results written to [bold]{output_dir}[/]")
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    from .plugin_manager import get_plugin_manager

    manager = get_plugin_manager(plugins=args.plugin, blocked=blocked_plugins(args))
    for name, (task, plugin) in sorted(manager.tasks().items()):
        print(f"{name:<24} {manager.info[plugin].label:<48} {task.description}")
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from .plugin_manager import get_plugin_manager

    manager = get_plugin_manager(plugins=args.plugin, blocked=blocked_plugins(args))
    for name, info in manager.info.items():
        hooks = sorted(caller.name for caller in manager.get_hookcallers(manager.get_plugin(name)) or ())
        where = f"{info.dist} {info.version}" if info.dist else info.module
        print(f"{name} ({where}): {', '.join(hooks) or 'no hooks'}")
    for table in manager.table_clashes():
        print(f"warning: {manager.table_clash(table)}; a manifest with [{table}] fails, everything else works")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    from .head import check_model
    from .preflight import remote_code_warning, show

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


#: Examples of each split that ``ftrun check`` encodes.
CHECK_SAMPLE = 32


def cmd_predict(args: argparse.Namespace) -> int:
    from .config import build_config
    from .output import MANIFEST_NAME, as_record
    from .plugin_manager import get_plugin_manager
    from .predict import check_plugins, check_remote_code, load_trained, predict_as_evaluated, read_model_dir, without_code

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
        overrides=[*args.overrides, *(["model.trust_remote_code=true"] if args.trust_remote_code else [])],
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
    model, tokenizer = load_trained(manager, task, config, model_dir)
    for value, prediction in zip(given, predict_as_evaluated(task, model, tokenizer, inputs, config)):
        if args.json:
            print(json.dumps(as_record(value, prediction), ensure_ascii=False))
        else:
            shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            print(f"{task.format_prediction(prediction)}\t{shown}")
    return 0


def predict_input_file(args: argparse.Namespace, manager: PluginManager, task: Any, config: RunConfig, model_dir: Path) -> int:
    """``ftrun predict --input FILE --output OUT``: every row of a file, streamed, batched, in order; a summary line at the end."""
    from .display import Display
    from .predict import load_trained, predict_file

    source = Path(args.input)
    if not source.is_file():
        raise FtrunError(f"--input: {source} does not exist" if not source.exists() else f"--input: {source} is not a file")
    if not args.output:
        raise FtrunError("--input: needs --output FILE, the JSON lines file its predictions go to")
    target = Path(args.output)
    if target.exists() and not args.overwrite:
        raise FtrunError(f"--output: {target} exists: choose another, or pass --overwrite to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    model, tokenizer = load_trained(manager, task, config, model_dir)
    from rich.console import Console

    display = Display(Console(stderr=True, soft_wrap=True))  # stdout stays free for scripts; the rows' count is unknown until the end
    with display.active():
        advance = display.bar("Predicting", total=None)
        summary = predict_file(task, model, tokenizer, config, source, target, args.skip_bad, advance)
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


def cmd_tune(args: argparse.Namespace) -> int:
    from .display import Display
    from .tune import tune

    display = Display()
    manager, config = load_config(args, announce=display.print)
    if "search" not in config.tables:
        raise FtrunError(
            f'{config.source}: no [search] table: say what to search over, e.g. [search.space] "training.learning_rate" = {{low = 1e-5, high = 1e-3, log = true}}'
        )
    output_dir = Path(args.output_dir or config.output_dir or Path("ftrun-runs") / f"{config.task}-tune")
    tune(manager, config, args.manifest, args.overrides, output_dir, args.storage, args.study, display)
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from .plugin_manager import get_plugin_manager
    from .schema import manifest_schema, task_reference

    manager = get_plugin_manager(plugins=args.plugin, blocked=blocked_plugins(args))
    if args.markdown:
        if not args.task:
            raise FtrunError("schema: --markdown needs --task NAME (see `ftrun tasks`)")
        print(task_reference(manager, args.task), end="")
        return 0
    print(json.dumps(manifest_schema(manager), indent=2, ensure_ascii=False))
    return 0
