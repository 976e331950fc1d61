"""``ftrun`` (``ftrun run``): train, evaluate, save and predict, as flags or a manifest say; ``--nproc`` starts the processes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ftrun.commands.common import config_options, load_config, metrics_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    config_options(parser)
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


def main(args: argparse.Namespace) -> int:
    from ftrun.runner import run
    from ftrun.stages import distributed
    from ftrun.stages.output import predict_command
    from ftrun.util.display import Display

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
    display.print(f"Model, processor, metrics, predictions and model card written to [bold]{output_dir}[/]")
    command = predict_command(task, config, str(output_dir))
    if command:
        display.print(f"Try it: {command}", highlight=False, markup=False)
    return 0
