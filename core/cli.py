"""The ``ftrun`` command: its flags, and which command of ``ftrun.commands`` runs (``run`` when none is named)."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import types
import warnings
from collections.abc import Sequence

from ftrun import __version__
from ftrun.stages.distributed import report_error
from ftrun.util.errors import FtrunError, first_line

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
#: The module of ``ftrun.commands`` that runs each command, where its name is not the command's.
MODULES = {"eval": "evaluate"}
#: The commands that only list what is installed: they load no model or data, so they leave the libraries
#: unimported (transformers' and datasets' own imports take seconds, torch's most of them) and answer at once.
LISTINGS = ("tasks", "plugins", "schema")


def command_module(command: str) -> types.ModuleType:
    """The module that runs ``command``, imported on first use: a command's libraries load only when it runs."""
    return importlib.import_module(f"ftrun.commands.{MODULES.get(command, command)}")


def build_parser(command: str) -> argparse.ArgumentParser:
    """The flags of ``command``: its module's, and those every command has."""
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
    else:
        parser = argparse.ArgumentParser(prog=f"ftrun {command}", description=COMMANDS[command])
    command_module(command).add_arguments(parser)
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    named = bool(argv) and argv[0] in COMMANDS
    command = argv[0] if named else "run"
    args = build_parser(command).parse_args(argv[1:] if named else argv)
    args.argv = argv  # the whole command line: `ftrun --nproc` hands it on to the processes it starts
    quiet_libraries(args.verbose, load=command not in LISTINGS)
    try:
        return command_module(command).main(args)
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
