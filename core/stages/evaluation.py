"""``ftrun eval``: a trained model directory evaluated on a split, with its task's metrics and post-processing.

The stages of a run, without training: the run's own ``ftrun.toml`` (with ``--manifest`` tables
and ``--set`` overrides laid over it) names the data, the data stage (``ftrun_load_data``, as in a run) encodes its eval split with
the model's tokenizer and labels, the head stage loads the model as ``ftrun predict`` does, and
the task's Trainer evaluates it (sorted batches, post-processing, generation where the task
generates). The results go to a folder of their own: nothing in the model directory changes.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ftrun.api.plugin_manager import PluginManager
    from ftrun.manifest.config import RunConfig
    from ftrun.util.display import Display


def evaluate_model(manager: PluginManager, config: RunConfig, model_dir: Path, output_dir: Path, display: Display) -> dict[str, float]:
    """Evaluate ``model_dir`` on ``config``'s eval split; write ``eval_results.json`` and ``plots/`` into ``output_dir``."""
    from ftrun.stages import plots
    from ftrun.stages.output import PLOTS_DIR
    from ftrun.stages.predict import load_trained
    from ftrun.stages.training import use_rich_progress

    task = manager.task(config.task)
    model, tokenizer = load_trained(manager, task, config, model_dir)
    saved = getattr(model.config, "id2label", None) or {}
    labels = [saved[i] for i in sorted(saved)] if saved else None
    # Only the eval split is encoded; the train split is read as the eval one, so that a run's train data need not be here.
    data_config = config.data.model_copy(
        update={"train_file": config.data.eval_file, "train_split": config.data.eval_split, "max_train_samples": config.data.max_eval_samples}
    )
    named = dataclasses.replace(config, data=data_config, model=config.model.model_copy(update={"name": str(model_dir), "config": None, "tokenizer": None}))
    with display.active():
        data = manager.load_data(task, named, labels=labels, splits=("eval",))  # through the data stage, as a run loads it
        metrics = manager.build_metrics(task, config, data)
        trainer = manager.build_trainer(task, config, data, model, metrics, [], str(output_dir))
        use_rich_progress(trainer, display)  # a bar, not the Trainer's printed dict of results
        results = trainer.evaluate()
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "eval_results.json").write_text(json.dumps(results, indent=4, sort_keys=True) + "\n", encoding="utf-8")
    plots.save(plots.task_figures(task, trainer, data, config), output_dir / PLOTS_DIR)
    return results
