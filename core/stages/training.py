"""What ftrun adds to the Trainer: exact resume, sealed checkpoints, clean stops, loud NaNs,
and evaluation in batches sorted by length, with outputs handed on in the split's order.

transformers' ``Trainer`` resumes from a checkpoint, but three things stand between that and a
resumed run that equals an uninterrupted one, and this module fixes each:

- its length-grouped sampler draws each epoch's order from the global RNG, which a resumed
  run has in another state: :class:`LengthGroupedSampler` seeds each epoch instead;
- a checkpoint being written when the process died looks like any other:
  :class:`SealCheckpoints` marks the complete ones, and :func:`latest_checkpoint` skips the rest;
- Ctrl-C kills the run between checkpoints: :class:`StopOnSignal` ends the current step,
  saves a checkpoint and stops.

and two that would make it, or the best model at the end, a different model: the Trainer reloads a
checkpoint non-strictly, under names several families no longer save under (:func:`restore`), and
it records the best checkpoint by the path it had when saved (:func:`best_checkpoint`).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.util
import json
import math
import os
import shutil
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import transformers
from torch.utils.data import RandomSampler, Sampler
from transformers import EvalPrediction, TrainerCallback
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from transformers.trainer_pt_utils import LengthGroupedSampler as _LengthGroupedSampler
from transformers.trainer_utils import EvalLoopOutput, _is_peft_model, denumpify_detensorize, has_length

from ftrun.util.errors import FtrunError, first_line
from ftrun.util.precision import full_precision

if TYPE_CHECKING:
    from rich.progress import Progress
    from transformers import PreTrainedModel, TrainerState

    from ftrun.api.task import BaseTask, Metrics
    from ftrun.manifest.config import RunConfig
    from ftrun.stages.data import TaskData
    from ftrun.util.display import Display

#: The file that marks a checkpoint as completely written: the size of each of its files.
SEAL_NAME = "ftrun-checkpoint.json"
CHECKPOINT_PREFIX = "checkpoint-"
#: How far the final evaluation of the saved model may be from the best metric recorded for its
#: checkpoint (relative). Both come from the same weights, batches, order and precision, and are
#: equal bit for bit on the CPU; the margin allows only for a reduction that sums in another
#: order (a threaded or GPU kernel: float32 rounds at about 6e-8 a step). Another checkpoint's
#: loss differs in the third or fourth digit, and one prediction changed among N changes an
#: accuracy by 1/N, far beyond it.
BEST_METRIC_TOLERANCE = 1e-6


class NonFiniteLoss(FtrunError):
    """The loss became NaN or infinite: the run stops instead of training on garbage."""

    exit_code = 1


class LengthGroupedSampler(_LengthGroupedSampler):
    """transformers' length-grouped order, drawn from ``seed + epoch`` instead of the global RNG.

    The Trainer calls ``set_epoch`` before each epoch (through accelerate's data loader), so
    an epoch's batches depend on the seed and the epoch alone, and a run resumed in the middle
    of an epoch sees exactly the batches an uninterrupted run would.
    """

    def __init__(self, batch_size: int, lengths: list[int], seed: int) -> None:
        super().__init__(batch_size, lengths=lengths)
        self.seed = seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.generator = torch.Generator().manual_seed(self.seed + epoch)


def lengths_of(dataset: Any, column: str) -> list[int] | None:
    """Each example's length in ``column``, read from Arrow without decoding the examples: ``None`` where it has no such column.

    A column of sequences gives each one's length; a column of lists of sequences (multiple
    choice: ``(choices, tokens)``) gives each example's longest, the length its batch is padded to.
    """
    import pyarrow.compute as pc

    values = list_column(dataset, column)
    if values is None:
        return None
    nested = nested_lengths(values)
    return pc.list_value_length(values).to_pylist() if nested is None else [max(lengths, default=0) for lengths in nested]


def tokens_of(dataset: Any, column: str) -> list[tuple[int, int]] | None:
    """Each example's number of sequences and their tokens in a column of lists of sequences (multiple choice's choices).

    What the collator keeps real when it pads every sequence of a batch to the longest: the
    pre-flight's padding estimate counts it. ``None`` for a column of one sequence per example,
    whose tokens ``lengths_of`` gives.
    """
    values = list_column(dataset, column)
    nested = nested_lengths(values) if values is not None else None
    return None if nested is None else [(len(lengths), sum(lengths)) for lengths in nested]


def list_column(dataset: Any, column: str) -> Any:
    """``column`` as one Arrow array of lists, or ``None``: no such column, or one value per example (nothing to group by)."""
    import datasets
    import pyarrow as pa

    if not isinstance(dataset, datasets.Dataset) or column not in dataset.column_names:
        return None
    values = dataset.with_format("arrow")[column]
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return values if pa.types.is_list(values.type) or pa.types.is_large_list(values.type) else None


def nested_lengths(values: Any) -> list[list[int]] | None:
    """The length of each sequence of each example, for an Arrow array of lists of sequences; ``None`` for one of sequences."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_list(values.type.value_type) and not pa.types.is_large_list(values.type.value_type):
        return None
    inner = pc.list_value_length(pc.list_flatten(values)).to_pylist()
    ends = np.cumsum(pc.list_value_length(values).to_numpy(zero_copy_only=False)).tolist()
    return [inner[start:end] for start, end in zip([0, *ends], ends)]


class LengthSortedSampler(Sampler[int]):
    """The indices of ``lengths``, longest first (so that a batch too large fails at once)."""

    def __init__(self, lengths: list[int]) -> None:
        self.order = sorted(range(len(lengths)), key=lengths.__getitem__, reverse=True)

    def __iter__(self) -> Iterator[int]:
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)


def in_split_order(value: Any, order: list[int]) -> Any:
    """Undo a sampler's ``order`` on gathered outputs: row ``order[i]`` of the split came out ``i``-th."""
    if value is None:
        return None
    if isinstance(value, (tuple, list)):
        return type(value)(in_split_order(item, order) for item in value)
    restored = np.empty_like(value)
    restored[order] = value
    return restored


class TrainerMixin:
    """Mixed into ftrun's Trainer classes; a plugin's own Trainer subclass can mix it in too."""

    #: The metric stage's ``Metrics.derive``, set by the trainer stage: called after every evaluation.
    derive_metrics: Callable[[dict[str, float], Any], dict[str, float]] | None = None
    #: The outputs of the latest evaluation, in the split's order (``None`` where it gathered none: loss only).
    eval_outputs: EvalPrediction | None = None
    #: Each example's length in a dataset, or ``None`` for inputs of one size: the task's
    #: ``example_lengths``, set by the trainer stage. Unset (a Trainer built elsewhere): the
    #: lengths of the processor's first model input, as transformers measures them.
    example_lengths: Callable[[Any], list[int] | None] | None = None

    def lengths(self, dataset: Any) -> list[int] | None:
        """Each example's length, for length-grouped training batches and length-sorted evaluation; ``None``: nothing to group by."""
        if self.example_lengths is not None:
            return self.example_lengths(dataset)
        name = self.processing_class.model_input_names[0] if self.processing_class is not None else "input_ids"
        return lengths_of(dataset, name)

    def _get_eval_sampler(self, eval_dataset: Any) -> Any:
        # Each eval batch is padded to its longest example. The Trainer's length grouping sorts only
        # within random groups of up to 50 batches (one batch for a small set), so it pads nearly as
        # much as random batches; sorted batches pad least (docs/performance.md has
        # the figures). evaluation_loop puts the outputs back in the split's order. Several
        # processes (torchrun) keep the Trainer's sampler, which accelerate shards and gathers in order.
        lengths = self.lengths(eval_dataset) if self.args.world_size == 1 else None
        if lengths is None:
            return super()._get_eval_sampler(eval_dataset)
        sampler = LengthSortedSampler(lengths)
        # The dataloader's dataset is this one: evaluation_loop finds the order by it.
        self._eval_orders = {**getattr(self, "_eval_orders", {}), id(eval_dataset): (eval_dataset, sampler.order)}
        return sampler

    def evaluation_loop(
        self,
        dataloader: Any,
        description: str,
        prediction_loss_only: bool | None = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> EvalLoopOutput:
        """The Trainer's loop, then the outputs in the split's order, then ``compute_metrics``.

        ``compute_metrics`` receives every prediction in the order of the split (whatever order
        the batches ran in) and is called even when the features hold no labels (``label_ids``
        is then ``None``), so that a task's post-processing can map outputs back to its
        examples by position, as run_qa.py's does. ftrun's manifests require
        ``eval_do_concat_batches`` and refuse ``batch_eval_metrics``, which would hand on batches.
        """
        compute, self.compute_metrics = self.compute_metrics, None
        try:
            output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
        finally:
            self.compute_metrics = compute
        dataset, order = getattr(self, "_eval_orders", {}).get(id(getattr(dataloader, "dataset", None)), (None, None))
        predictions, label_ids = output.predictions, output.label_ids
        if order is not None and dataset is dataloader.dataset:
            predictions, label_ids = in_split_order(predictions, order), in_split_order(label_ids, order)
        self.eval_outputs = EvalPrediction(predictions=predictions, label_ids=label_ids)  # the final one's, for the task's plots
        metrics, prefix = output.metrics, f"{metric_key_prefix}_"
        if compute is not None and predictions is not None:
            computed = denumpify_detensorize(compute(EvalPrediction(predictions=predictions, label_ids=label_ids)))
            metrics = {**{key if key.startswith(prefix) else prefix + key: value for key, value in computed.items()}, **metrics}
        if self.derive_metrics is not None:
            derived = denumpify_detensorize(self.derive_metrics(metrics, self.model))
            metrics = {**metrics, **{key if key.startswith(prefix) else prefix + key: value for key, value in derived.items()}}
        return EvalLoopOutput(predictions=predictions, label_ids=label_ids, metrics=metrics, num_samples=output.num_samples)

    def prediction_step(self, model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        """The Trainer's step, in fp32 whatever precision the run trains in: the metrics an evaluation reports are those
        the saved model gives under ``ftrun predict``, ``ftrun eval`` and plain transformers (``full_precision``)."""
        with full_precision(self.model):
            return super().prediction_step(model, inputs, *args, **kwargs)

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        args = self.args
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if args.train_sampling_strategy == "group_by_length" and dataset is not None and has_length(dataset):
            lengths = self.lengths(dataset)
            if lengths is None:  # inputs of one size: random batches (the pre-flight says so), not transformers' guess at a length
                return RandomSampler(dataset)
            seed = args.data_seed if args.data_seed is not None else args.seed
            return LengthGroupedSampler(args.train_batch_size * args.gradient_accumulation_steps, lengths, seed)
        return super()._get_train_sampler(train_dataset)

    def training_step(self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> torch.Tensor:
        loss = super().training_step(model, inputs, num_items_in_batch)
        # One check per step, before the optimizer applies the gradients: the Trainer would
        # otherwise leave a NaN out of its logged average and go on training on garbage.
        if not torch.isfinite(loss).all():
            step, epoch = self.state.global_step + 1, self.state.epoch or 0.0
            checkpoint = latest_checkpoint(Path(self.args.output_dir))
            since = f"; the last complete checkpoint is {checkpoint}" if checkpoint else ""
            raise NonFiniteLoss(
                f"training: the loss became {loss.item()} at step {step} (epoch {epoch:.2f}){since}; "
                "lower training.learning_rate, or look for broken examples in the data"
            )
        return loss

    # The Trainer's own loading of a checkpoint (trainer.py, 5.25: ``_load_from_checkpoint`` for
    # --resume, ``_load_best_model`` for load_best_model_at_end) reads model.safetensors into
    # ``model.load_state_dict(state_dict, False)``: non-strict, under the names the file holds. See
    # :func:`restore` for why that leaves tensors behind; DeepSpeed and FSDP load in their own formats.

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        if (model is not None and model is not self.model) or self.is_deepspeed_enabled or self.is_fsdp_enabled:
            super()._load_from_checkpoint(resume_from_checkpoint, model)
        else:
            restore(self.model, Path(resume_from_checkpoint))

    def _load_best_model(self) -> None:
        if self.is_deepspeed_enabled or self.is_fsdp_enabled:
            super()._load_best_model()
        else:
            restore(self.model, Path(self.state.best_model_checkpoint))

    def _init_training_state(self, max_steps, num_update_steps_per_epoch, num_train_epochs, resume_from_checkpoint, trial):
        trained = super()._init_training_state(max_steps, num_update_steps_per_epoch, num_train_epochs, resume_from_checkpoint, trial)
        if resume_from_checkpoint is not None:
            self.state.best_model_checkpoint = best_checkpoint(Path(resume_from_checkpoint), required=self.args.load_best_model_at_end)
        return trained

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        super()._save_checkpoint(model, trial)
        if self.args.should_save:  # its trainer state again, the best checkpoint named by its folder (sealed after this)
            checkpoint = Path(self._get_output_dir(trial)) / f"{CHECKPOINT_PREFIX}{self.state.global_step}"
            save_state(self.state, checkpoint / TRAINER_STATE_NAME)


class Trainer(TrainerMixin, transformers.Trainer):
    """``transformers.Trainer`` with exact resume of length-grouped batches, a NaN check and sorted evaluation."""


class Seq2SeqTrainer(TrainerMixin, transformers.Seq2SeqTrainer):
    """``transformers.Seq2SeqTrainer`` with exact resume, a NaN check and sorted evaluation (and generation)."""


#: The label of a position no loss counts (padding, a word's later sub-tokens, a prompt), PyTorch's ``ignore_index``.
IGNORED = -100


class PluginLoss:
    """A plugin's loss (``ftrun_training_loss``) as the Trainer's ``compute_loss_func``, with the Trainer's contract kept here.

    The Trainer pops the labels, so the model computes no loss of its own: a causal LM's logits
    are shifted against its labels here as the model would. In training it passes
    ``num_items_in_batch``, the labels of the whole accumulated batch (of every process with
    ``average_tokens_across_devices``), and does not divide this loss by the accumulation steps:
    the sum over this batch's labels divided by that count. At evaluation it passes this batch's count.
    """

    def __init__(self, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], plugin: str, shift: bool) -> None:
        self.loss = loss
        self.plugin = plugin
        self.shift = shift

    def __call__(self, outputs: Any, labels: torch.Tensor, num_items_in_batch: torch.Tensor | int | None = None) -> torch.Tensor:
        logits = outputs["logits"]
        if self.shift:  # the logits at position i score the token at i + 1
            logits, labels = logits[..., :-1, :], labels[..., 1:]
        logits = logits.reshape(-1, logits.shape[-1]).float()  # in fp32 under mixed precision
        labels = labels.reshape(-1).to(logits.device)
        scored = labels != IGNORED
        losses = self.loss(logits[scored], labels[scored])
        if not isinstance(losses, torch.Tensor) or losses.shape != (int(scored.sum()),):
            shape = tuple(losses.shape) if isinstance(losses, torch.Tensor) else type(losses).__name__
            raise FtrunError(f"{self.plugin}: the loss of ftrun_training_loss returned {shape}, expected one loss per label ({int(scored.sum())},)")
        count = num_items_in_batch if num_items_in_batch is not None else scored.sum().clamp(min=1)
        return losses.sum() / count


def predicts_next_token(model: Any) -> bool:
    """Whether ``model`` is a causal LM, whose logits at each position score the next token: the Trainer's own test for its label smoother."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # a PEFT model wraps one
    return type(base).__name__ in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()


# -- restoring a checkpoint: every tensor, and the best one wherever the run is now --------


def restore(model: PreTrainedModel, checkpoint: Path) -> None:
    """Load every tensor of ``checkpoint`` into ``model``, in place, as ``from_pretrained`` reads it; anything missing or left over is an error.

    transformers 5 saves several families under their original checkpoint names, not the live
    module's (ViT, Swin, DINOv2, BEiT, the Audio Spectrogram Transformer: up to two thirds of
    their tensors): ``save_pretrained`` reverts the model's key conversion
    (``core_model_loading.revert_weight_conversion``), and only ``from_pretrained`` applies it
    again (``conversion_mapping.get_model_conversion_mapping``, applied by
    ``core_model_loading.convert_and_load_state_dict_in_model``). The Trainer's non-strict
    ``load_state_dict`` left those tensors as they were and logged one warning
    (``Trainer._issue_warnings_after_load``): a best model mixed from two checkpoints, a resumed
    run on partly fresh weights. Known upstream: huggingface/transformers issue 48805, open pull
    request 48822 (since save_pretrained writes the Hub's format, pull request 42396).

    So the checkpoint is read by ``from_pretrained`` itself, into a copy on the CPU, and copied into
    ``model`` with a strict ``load_state_dict``: the parameters stay the objects the optimizer holds,
    on their device. Its loading report has already set tied weights and the keys a model may lack
    aside. An adapter (peft) is loaded by peft's ``load_adapter``, whose report is checked the same way.
    """
    if _is_peft_model(model):
        missing, unexpected = restore_adapter(model, checkpoint)
    else:
        try:  # tensors of another shape are reported, as missing ones are, rather than raised
            loaded, report = type(model).from_pretrained(
                checkpoint, config=model.config, dtype=model.dtype, ignore_mismatched_sizes=True, output_loading_info=True
            )
        except (OSError, RuntimeError, ValueError) as exc:  # no weights, a damaged file, a conversion that failed
            raise FtrunError(f"{checkpoint}: cannot restore the model from it: {first_line(exc)}") from exc
        missing, unexpected = sorted(report["missing_keys"]), sorted(report["unexpected_keys"])
        missing += sorted(f"{key} (of another shape)" for key, *_ in report["mismatched_keys"])
        if not (missing or unexpected):
            model.load_state_dict(loaded.state_dict())
    problems = [
        f"{what} {len(keys)} tensor{'s' if len(keys) > 1 else ''} ({listed(keys)})" for what, keys in (("missing", missing), ("unexpected", unexpected)) if keys
    ]
    if problems:
        raise FtrunError(f"{checkpoint}: cannot restore the model whole from it: {'; '.join(problems)}")


def listed(keys: list[str], shown: int = 10) -> str:
    """At most ``shown`` of ``keys``, and how many more."""
    more = f", and {len(keys) - shown} more" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more


def restore_adapter(model: Any, checkpoint: Path) -> tuple[list[str], list[str]]:
    """Load the active adapter of ``checkpoint`` with peft: the adapter's tensors the file lacks, and those it has that the model has not."""
    adapter = model.active_adapters[0]
    loaded = model.load_adapter(str(checkpoint), adapter, is_trainable=True)
    return sorted(loaded.missing_keys), sorted(loaded.unexpected_keys)


def best_checkpoint(checkpoint: Path, required: bool) -> str | None:
    """The best checkpoint that ``checkpoint``'s trainer state records, as a folder beside it, where the run is now.

    The Trainer records the path it had when it was saved: inside ``.ftrun-next`` for a run that
    replaced an earlier one, or the old folder of a run moved since. It ignores a path that is
    not there (so a resumed run would end on its last model): ftrun records the folder's name
    (:func:`save_state`) and finds it next to ``checkpoint``. ``required`` (load_best_model_at_end):
    a best checkpoint that is gone is an error, not a run that ends on another model.
    """
    state = checkpoint / TRAINER_STATE_NAME
    recorded = json.loads(state.read_text(encoding="utf-8")).get("best_model_checkpoint") if state.is_file() else None
    if recorded is None:
        return None
    best = checkpoint.parent / Path(recorded).name
    if best.is_dir():
        return str(best)
    if required:
        raise FtrunError(
            f"{checkpoint}: its run's best checkpoint, {best.name}, is not in {checkpoint.parent}: the run could not end on its best model "
            "(restore the folder, or resume with --set training.load_best_model_at_end=false)"
        )
    return None


def save_state(state: TrainerState, path: Path) -> None:
    """``trainer_state.json``, the best checkpoint named by its folder (``checkpoint-N``, relative to the run's folder).

    The path the Trainer holds is where the run trained, which is not where it ends (``.ftrun-next``)
    or where it may be moved; :func:`best_checkpoint` finds the folder again on resume.
    """
    named = copy.copy(state)
    if named.best_model_checkpoint is not None:
        named.best_model_checkpoint = Path(named.best_model_checkpoint).name
    named.save_to_json(str(path))


class BestModelMismatch(FtrunError):
    """The saved model does not evaluate as its checkpoint did: it is not published."""

    exit_code = 1


def check_best_model(trainer: transformers.Trainer, metrics: dict[str, float]) -> None:
    """At the end of a run that keeps its best checkpoint, the final evaluation must give the best metric recorded for it.

    Otherwise the model about to be published is not the checkpoint the run says is best (a
    reload that left tensors behind, a best checkpoint that was never saved), and the run stops.
    """
    args, state = trainer.args, trainer.state
    if not args.load_best_model_at_end or state.best_metric is None:
        return
    key = args.metric_for_best_model if args.metric_for_best_model.startswith("eval_") else f"eval_{args.metric_for_best_model}"
    final = metrics.get(key)
    if final is not None and math.isclose(final, state.best_metric, rel_tol=BEST_METRIC_TOLERANCE):
        return
    best = Path(state.best_model_checkpoint).name if state.best_model_checkpoint else f"step {state.best_global_step}, of which no checkpoint was kept"
    raise BestModelMismatch(
        f"the final evaluation of the model gives {key} {final}, not the {state.best_metric} recorded for its best checkpoint ({best}): "
        f"the model is not that checkpoint, and is not saved (the checkpoints are in {args.output_dir})"
    )


# -- the trainer stage ------------------------------------------------------------------------


def build_trainer(
    task: BaseTask,
    config: RunConfig,
    data: TaskData,
    model: PreTrainedModel,
    metrics: Metrics,
    *,
    callbacks: list[TrainerCallback],
    output_dir: str,
) -> transformers.Trainer:
    """Arguments from ``[training]`` (with the precision chosen for the machine), the task's collator and Trainer class.

    A seq2seq model's generation config takes the run's generation settings, so that the saved
    model generates as it was evaluated.
    """
    from ftrun.util.precision import choose_precision

    settings = {"metric_for_best_model": metrics.best, "greater_is_better": metrics.greater_is_better}
    settings.update(choose_precision(config.training, model.config).settings)
    settings.update(config.training)
    try:
        args = task.training_arguments_class(output_dir=output_dir, **settings)
    except (ValueError, TypeError) as exc:
        raise FtrunError(f"{config.where('training')}: {first_line(exc)}") from exc
    if isinstance(args, transformers.Seq2SeqTrainingArguments):
        if args.generation_max_length is not None:
            model.generation_config.max_length = args.generation_max_length
        if args.generation_num_beams is not None:
            model.generation_config.num_beams = args.generation_num_beams
    compute = metrics.compute
    trainer = task.trainer_class(
        model=model,
        args=args,
        train_dataset=data.train,
        eval_dataset=data.eval,
        processing_class=data.processor,
        data_collator=task.data_collator(data, model, config),
        compute_metrics=None if compute is None else lambda outputs: compute(task.postprocess(outputs, data.eval, data.raw.eval, data, config)),
        callbacks=callbacks,
    )
    trainer.derive_metrics = metrics.derive
    trainer.example_lengths = functools.partial(task.example_lengths, config=config)
    return trainer


def log_destinations(training: dict[str, Any], output_dir: Path) -> str | None:
    """Where the services of ``report_to`` log a run, for its first line: TensorBoard's folder, MLflow's server or folder."""
    value = training.get("report_to", "none")
    names = [value] if isinstance(value, str) else list(value or [])
    shown = []
    for name in names:
        if name == "tensorboard":
            shown.append(f"TensorBoard in {os.environ.get('TENSORBOARD_LOGGING_DIR') or output_dir / 'runs'}")
        elif name == "mlflow" and importlib.util.find_spec("mlflow") is not None:
            import mlflow  # its default store differs between versions: ask it

            shown.append(f"MLflow at {mlflow.get_tracking_uri()}")
        elif name != "none":
            shown.append(name)
    return ", ".join(shown) or None


# -- checkpoints ------------------------------------------------------------------------------


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def seal(folder: Path, name: str = SEAL_NAME, files: Iterable[Path] | None = None, **record: Any) -> None:
    """Flush every file of ``folder`` (or ``files``, of it) to disk, then record their sizes in its seal ``name``, with ``record``.

    The seal is written last and atomically, so a folder without a valid seal is one the
    process (or the machine) died while writing. A checkpoint's records how its run took its
    batches (``batches``) and what the run was (``run``); a finished run's is its marker.
    """
    listed = {}
    for path in sorted(folder.rglob("*") if files is None else files):
        if path.is_file() and path.name != name:
            _fsync(path)
            listed[path.relative_to(folder).as_posix()] = path.stat().st_size
    write_atomically(folder / name, json.dumps({"files": listed, **record}, indent=1))


def batch_shape(args: Any) -> dict[str, int]:
    """How a training step takes its examples: processes × examples per process × accumulated batches."""
    return {"processes": args.world_size, "per_process": args.train_batch_size, "accumulated": args.gradient_accumulation_steps}


def check_resumable(checkpoint: Path, args: Any, where: str) -> str | None:
    """Whether a run with ``args`` goes on exactly where the run that saved ``checkpoint`` stopped; what it keeps, if the processes changed.

    The number of processes may change (a job that got fewer GPUs) if the examples of a step do
    not: the schedule's step count and the batches a resumed run skips in its epoch are counted
    in steps. Otherwise one line says what to set. The Trainer restores each process's random
    state only into a run of as many processes, so dropout differs then. ``None`` when the
    processes are as many as the checkpoint's, or its seal does not say.
    """
    before = json.loads((checkpoint / SEAL_NAME).read_text(encoding="utf-8")).get("batches")
    now = batch_shape(args)
    if before is None:
        return None
    step, step_now = math.prod(before.values()), math.prod(now.values())
    if step != step_now:
        per_device, rest = divmod(step, now["processes"] * now["accumulated"] * max(1, args.n_gpu))
        keep = f", or keep {step} with --set training.per_device_train_batch_size={per_device}" if per_device and not rest else ""
        raise FtrunError(
            f"{where}: {checkpoint} was trained on {step} examples a step ({_described(before)}), this run would take {step_now} "
            f"({_described(now)}), and would not go on where it stopped: resume with --nproc {before['processes']}{keep}"
        )
    if before["processes"] == now["processes"]:
        return None
    return (
        f"trained in {_processes(before['processes'])}, resumed in {_processes(now['processes'])}: the {step} examples of a step are kept, "
        "and with them the learning-rate schedule and the examples already seen this epoch; the random state (dropout) is not"
    )


def _described(shape: dict[str, int]) -> str:
    return f"{_processes(shape['processes'])} × {shape['per_process']} examples × {shape['accumulated']} accumulated"


def _processes(count: int) -> str:
    return f"{count} process{'es' if count > 1 else ''}"


def is_sealed(checkpoint: Path) -> bool:
    """Whether ``checkpoint`` was completely written: its seal is valid and every file has its size."""
    return seal_problem(checkpoint) is None


def seal_problem(folder: Path, name: str = SEAL_NAME) -> str | None:
    """What is wrong with ``folder`` against its seal ``name`` (a file missing, or not of its size), or ``None``."""
    try:
        files = json.loads((folder / name).read_text(encoding="utf-8"))["files"]
        sizes = {str(file): int(size) for file, size in files.items()}
    except FileNotFoundError:
        return f"it has no {name}"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return f"its {name} is damaged"
    for file, size in sizes.items():
        try:
            found = (folder / file).stat().st_size
        except OSError:
            return f"{file} is missing"
        if found != size:
            return f"{file} has {found} bytes, not the {size} it was written with"
    return None


def checkpoints(output_dir: Path) -> list[Path]:
    """The ``checkpoint-STEP`` folders of ``output_dir``, newest (highest step) first."""
    found = [p for p in output_dir.glob(CHECKPOINT_PREFIX + "*") if p.is_dir() and p.name[len(CHECKPOINT_PREFIX) :].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX) :]), reverse=True)


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest completely written checkpoint in ``output_dir``."""
    return next((p for p in checkpoints(output_dir) if is_sealed(p)), None)


def remove_unsealed(output_dir: Path) -> list[Path]:
    """Delete the checkpoints of ``output_dir`` that were not completely written: never to be loaded."""
    unsealed = [path for path in checkpoints(output_dir) if not is_sealed(path)]
    for path in unsealed:
        shutil.rmtree(path)
    return unsealed


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file: never a half-written ``path``."""
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


class SealCheckpoints(TrainerCallback):
    """Seals each checkpoint once the Trainer has written all of it, with what the run is (``run``: compared on resume)."""

    def __init__(self, run: dict[str, Any] | None = None) -> None:
        self.run = run

    def on_save(self, args, state, control, **kwargs):
        if args.world_size > 1:  # every process has written its part (its random state) before the seal lists the files
            torch.distributed.barrier()
        if state.is_world_process_zero:
            checkpoint = Path(args.output_dir) / f"{CHECKPOINT_PREFIX}{state.global_step}"
            if checkpoint.is_dir():
                seal(checkpoint, batches=batch_shape(args), run=self.run)


# -- the Trainer's progress on the run's display ---------------------------------------------


class RichProgressCallback(TrainerCallback):
    """The Trainer's progress as rich bars, instead of its default tqdm bars."""

    def __init__(self, display: Display) -> None:
        self.display = display
        self.train_id = None
        self.eval_id = None

    @property
    def progress(self) -> Progress:
        return self.display.progress

    def on_train_begin(self, args, state, control, **kwargs):
        self.train_id = self.progress.add_task("Training", total=state.max_steps, note="")

    def on_train_end(self, args, state, control, **kwargs):
        self.train_id = None

    def on_step_end(self, args, state, control, **kwargs):
        self.progress.update(self.train_id, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.train_id is not None and logs and "loss" in logs:
            self.progress.update(self.train_id, note=f"loss {logs['loss']:.4f}  epoch {state.epoch:.2f}")

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        if self.eval_id is None:
            total = len(eval_dataloader) if eval_dataloader is not None and hasattr(eval_dataloader, "__len__") else None
            self.eval_id = self.progress.add_task("Evaluating", total=total, note="")
        self.progress.advance(self.eval_id)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self.eval_id is not None:
            self.progress.remove_task(self.eval_id)
            self.eval_id = None
        if self.train_id is None:
            return  # the final evaluation: the run's summary table shows it
        shown = {
            k[5:]: v for k, v in (metrics or {}).items() if k.startswith("eval_") and isinstance(v, float) and "runtime" not in k and "per_second" not in k
        }
        self.display.print(f"epoch {state.epoch:.2f}: " + "  ".join(f"{k} {v:.4f}" for k, v in shown.items()))


# -- stopping on a signal ---------------------------------------------------------------------


class StopOnSignal(TrainerCallback):
    """Ctrl-C (SIGINT) or SIGTERM: finish the current step, save a checkpoint, stop.

    The handlers are in place only while :meth:`installed` is; a second Ctrl-C stops at once,
    as Python's default does.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, announce: Callable[[str], None] = print) -> None:
        self.announce = announce
        self.received: signal.Signals | None = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum)
        self.announce(f"{self.received.name}: stopping after this step and saving a checkpoint (press Ctrl-C again to stop at once)")

    @contextlib.contextmanager
    def installed(self, enabled: bool = True) -> Iterator[StopOnSignal]:
        if not enabled or threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
            yield self
            return
        previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def on_step_end(self, args, state, control, **kwargs):
        if self.received is not None:
            control.should_save = True
            control.should_training_stop = True
        return control


def use_rich_progress(trainer: Any, display: Display) -> None:
    """Swap the Trainer's tqdm bars and printed log dicts for the run's rich display."""
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(RichProgressCallback(display))
