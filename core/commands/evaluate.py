"""``ftrun eval``: a trained model directory evaluated on a split, with its task's metrics and post-processing.

The stages of a run, without training: the run's own ``ftrun.toml`` (with ``--manifest`` tables
and ``--set`` overrides laid over it) names the data, the data stage (``ftrun_load_data``, as in a run) encodes its eval split with
the model's processor and labels, the head stage loads the model as ``ftrun predict`` does, and
the task's Trainer evaluates it (sorted batches, post-processing, generation where the task
generates). The results go to a folder of their own: nothing in the model directory changes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ftrun.commands.common import blocked_plugins, metrics_table, model_overrides, set_option, trust_option
from ftrun.util.errors import FtrunError

if TYPE_CHECKING:
    from ftrun.api.plugin_manager import PluginManager
    from ftrun.manifest.config import RunConfig
    from ftrun.util.display import Display


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR", help="a directory written by an ftrun run")
    parser.add_argument("--manifest", metavar="FILE", help="tables laid over the run's own ftrun.toml (another [data] to evaluate on, ...)")
    set_option(parser, "override a key of the run's manifest, e.g. data.eval_file=test.csv")
    parser.add_argument("--output-dir", metavar="DIR", help="where eval_results.json and plots/ go (default: the model directory's name + -eval, beside it)")
    parser.add_argument("--overwrite", action="store_true", help="replace the results of an earlier ftrun eval there")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout, for scripts")
    trust_option(parser)


def main(args: argparse.Namespace) -> int:
    from ftrun.api.plugin_manager import get_plugin_manager
    from ftrun.manifest.config import Origin, build_config, manifest_model, manifest_plugins, merge, read_manifest, resolve_paths
    from ftrun.stages.data import check_file
    from ftrun.stages.output import MANIFEST_NAME
    from ftrun.stages.output_dir import check_path
    from ftrun.stages.predict import check_plugins, check_remote_code, read_model_dir, without_code
    from ftrun.util.display import Display

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
    overrides = model_overrides(args)
    check_plugins(manager, model_dir, saved)
    name = manifest.get("task")
    task = manager.task(name, where=f"{manifest_path}: task")
    source = args.manifest or str(manifest_path)
    # The run's paths are absolute in its ftrun.toml; --manifest's are relative to its folder, --set's to the current one.
    resolve_paths(overlay, manifest_model(task, manager.tables()), Path(args.manifest or ".").parent)
    config = build_config(task, merge(manifest, overlay), source=source, base_dir=Path.cwd(), overrides=overrides, tables=manager.tables(), finished=True)
    # Checked here, by its name: the eval stage reads it as its only split. A folder is the task's reader's
    # (clips or images in a subfolder per class): the data stage says so where the task reads none.
    if config.data.eval_file and not Path(config.data.eval_file).is_dir():
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


def evaluate_model(manager: PluginManager, config: RunConfig, model_dir: Path, output_dir: Path, display: Display) -> dict[str, float]:
    """Evaluate ``model_dir`` on ``config``'s eval split; write ``eval_results.json`` and ``plots/`` into ``output_dir``."""
    from ftrun.stages import plots
    from ftrun.stages.output import PLOTS_DIR
    from ftrun.stages.predict import load_trained, model_dir_table
    from ftrun.stages.training import use_rich_progress

    task = manager.task(config.task)
    model, _ = load_trained(manager, task, config, model_dir)
    saved = getattr(model.config, "id2label", None) or {}
    labels = [saved[i] for i in sorted(saved)] if saved else None
    # Only the eval split is encoded; the train split is read as the eval one, so that a run's train data need not be here.
    data_config = config.data.model_copy(
        update={"train_file": config.data.eval_file, "train_split": config.data.eval_split, "max_train_samples": config.data.max_eval_samples}
    )
    named = dataclasses.replace(config, data=data_config, model=model_dir_table(config.model, model_dir))
    with display.active():
        data = manager.load_data(task, named, labels=labels, splits=("eval",))  # through the data stage, as a run loads it
        metrics = manager.build_metrics(task, config, data)
        trainer = manager.build_trainer(task, config, data, model, metrics, callbacks=[], output_dir=str(output_dir))
        use_rich_progress(trainer, display)  # a bar, not the Trainer's printed dict of results
        results = trainer.evaluate()
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "eval_results.json").write_text(json.dumps(results, indent=4, sort_keys=True) + "\n", encoding="utf-8")
    plots.save(plots.task_figures(task, trainer, data, config), output_dir / PLOTS_DIR)
    return results
