"""The task API: ``BaseTask``, what every task is, and ``Task``, a task on text, which task plugins subclass and fill in.

A task says what is particular to it: its head class, its tables, its defaults, what turns its
raw inputs into features, how its examples are checked and encoded, how outputs become
predictions, its metrics. The stages that run with these parts, the same for every task, live
in ``ftrun.stages`` and are plugins (``ftrun.api.default_stages``): to change what one task is,
subclass; to change a stage for some or every task, implement its hook. What text tasks share
(a tokenizer, token sequences, text columns) is ``Task``'s alone: a task on images or sound
subclasses ``BaseTask`` and inherits none of it.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ftrun.manifest.config import DataConfig, MetricsConfig, ModelConfig, RunConfig, TextDataConfig, TextModelConfig
from ftrun.stages.data import Splits, TaskData
from ftrun.util.errors import FtrunError

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from transformers import EvalPrediction, PreTrainedModel, PreTrainedTokenizerBase, TrainingArguments

    from ftrun.stages.preflight import Preflight, TokenSequence
    from ftrun.stages.training import Trainer


def _takes(method: Callable, name: str) -> bool:
    """Whether ``method`` takes an argument ``name`` (or any number of them)."""
    parameters = inspect.signature(method).parameters.values()
    return any(p.name == name or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters)


def _called_without_last(method: Callable) -> Callable:
    """``method`` called with the positional arguments it takes, less the one ftrun added last."""
    taken = len(inspect.signature(method).parameters) - 1  # less self

    @functools.wraps(method)
    def call(self: BaseTask, *args: Any) -> Any:
        return method(self, *args[:taken])

    return call


@dataclasses.dataclass
class Metrics:
    """What the metric stage returns."""

    compute: Callable[[EvalPrediction], dict[str, float]] | None
    """Metrics of the model's outputs on the eval split (post-processed), or ``None``: the Trainer then
    gathers no outputs at all, only the loss (a causal LM's logits are vocabulary-sized)."""
    best: str
    """The metric (without the ``eval_`` prefix) that picks the best checkpoint."""
    greater_is_better: bool = True
    derive: Callable[[dict[str, float], PreTrainedModel], dict[str, float]] | None = None
    """Metrics derived after each evaluation from its results (``eval_loss``, ...) and the model:
    perplexity from the loss, or scores of what the model generates for a few prompts. Their
    names come without the ``eval_`` prefix, as ``compute``'s."""


class BaseTask:
    """What every task is, whatever its inputs: subclass it for a task on images or sound (``Task`` for text).

    A subclass must define ``name``, ``auto_model``, ``check_data``, ``encode``,
    ``build_metrics`` and ``load_processor``; every other method has a default that suits a
    task with one feature per example and a transformers pipeline. docs/plugins.md describes each.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: The Hub's pipeline tag of the saved model (its card's metadata). Where transformers has a
    #: pipeline of that name, the default ``predict`` and ``usage`` use it.
    pipeline_tag: ClassVar[str | None] = None
    #: The ``AutoModelFor...`` class that adds this task's output layer.
    auto_model: ClassVar[type]
    #: The ``[model]`` table: ``ModelConfig``, or a subclass with this task's own keys (``Task``'s: its tokenizer's).
    model_config: ClassVar[type[ModelConfig]] = ModelConfig
    #: The ``[data]`` table, with this task's own keys (columns, ...).
    data_config: ClassVar[type[DataConfig]] = DataConfig
    #: The ``[metrics]`` table, with this task's own keys (a decision threshold, ...).
    metrics_config: ClassVar[type[MetricsConfig]] = MetricsConfig
    #: The manifest this task runs with when nothing else is given.
    defaults: ClassVar[dict[str, Any]] = {}
    #: The embedded default (``--demo``): laid over ``defaults`` as a manifest is, so the model and
    #: data it names replace the defaults' (a small model built from a config, data shipped in the
    #: package: a run anywhere, offline, in minutes). ``None``: the task has no demo.
    demo: ClassVar[dict[str, Any] | None] = None
    #: ``[training]`` settings the task cannot run without: applied over the user's, and a user
    #: setting that differs is an error when the manifest is validated.
    required_training: ClassVar[dict[str, Any]] = {}
    #: Whether ``encode`` runs as examples are read (``datasets``' ``with_transform``) rather than once, cached: for
    #: inputs too large to cache (pixels, waveforms) and augmentation drawn anew each epoch. The cache then holds the
    #: raw rows alone; ``encode`` must return one feature per example, and ``split`` is ``"train"`` only for training batches.
    lazy_encoding: ClassVar[bool] = False
    #: The class that loads the saved model's processor, and its variable, in the model card's usage code (without a pipeline).
    processor_class: ClassVar[str] = "AutoProcessor"
    processor_name: ClassVar[str] = "processor"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A task written when ``read_input`` took no config and ``inputs_from`` no file keeps working, with a DeprecationWarning.

        Its method is wrapped to drop the argument it does not take: refusing it would break every
        installed task package at once, over an argument most of them have no use for.
        """
        super().__init_subclass__(**kwargs)
        for name, added in (("read_input", "config"), ("inputs_from", "source")):
            method = cls.__dict__.get(name)
            if callable(method) and not _takes(method, added):
                warnings.warn(f"{cls.__qualname__}.{name} takes no {added!r} argument, which ftrun now passes: add it", DeprecationWarning, stacklevel=2)
                setattr(cls, name, _called_without_last(method))

    # The two classes of the trainer stage are properties, imported on first use: transformers'
    # Trainer imports peft and other optional libraries wherever they are installed, and listing
    # the tasks (``ftrun tasks``) must not. A subclass overrides either with a class attribute.

    @property
    def training_arguments_class(self) -> type[TrainingArguments]:
        """What ``[training]`` is checked against and built into: ``TrainingArguments``, or a subclass (``Seq2SeqTrainingArguments``)."""
        from transformers import TrainingArguments

        return TrainingArguments

    @property
    def trainer_class(self) -> type[Trainer]:
        """ftrun's Trainer (exact resume, NaN check, sorted evaluation); a subclass of your own should mix in ``ftrun.TrainerMixin``."""
        from ftrun.stages.training import Trainer

        return Trainer

    # -- what a task says about itself -------------------------------------------------

    def settle(self, config: RunConfig) -> RunConfig:
        """The config the stages run with, once a manifest is validated: settings that depend on more than one key.

        Default: ``config`` as it is. Translation sets T5's source prefix for a T5 model here,
        once, so that encoding, pre-flight and the saved model agree on it.
        """
        return config

    def logits_over_labels(self, config: RunConfig) -> bool:
        """Whether the head gives, per scored position, logits over labels whose integer ids the features carry.

        What a plugin's training loss (``ftrun_training_loss``) needs: one class per example
        (text classification), per token (NER), or the next or target token (causal LM, seq2seq:
        the vocabulary is the label set). Default ``False``: spans (QA), or labels that are not
        one id per position (several labels per example, a regression).
        """
        return False

    def check_data(self, splits: Splits, config: RunConfig) -> list[str] | None:
        """Check columns and labels of the raw splits; return the label names, if the task has labels."""
        raise NotImplementedError

    def inputs_of(self, split: Any, config: RunConfig) -> list[tuple[str, ...]] | None:
        """Each example's input texts (one, or a pair), for ``preflight``'s empty-input, duplicate and overlap checks.

        Default ``None``: the task has none to show, and those checks are left out.
        """
        return None

    def labels_of(self, split: Any, config: RunConfig) -> list[list[str]] | None:
        """Each example's labels by name: one for classification, each entity's type for NER, any number for multi-label.

        For ``preflight``'s label counts and the eval labels train lacks. Default ``None``: a task without labels.
        """
        return None

    def encode(self, batch: dict[str, list], data: TaskData, config: RunConfig, split: str) -> dict[str, list]:
        """Turn one batch of raw examples of ``split`` (``train``, ``eval`` or ``predict``) into features, with ``data.processor``.

        It may return more rows than it receives (one example, several features), unless the task
        encodes lazily (``lazy_encoding``); eval and predict features need no labels when
        ``postprocess`` finds the references elsewhere. Random augmentation belongs to ``split == "train"`` only.
        """
        raise NotImplementedError

    def postprocess(self, outputs: EvalPrediction, features: Any, examples: Any, data: TaskData, config: RunConfig) -> EvalPrediction:
        """The model's raw outputs on ``features`` → one prediction (and one reference) per example.

        ``outputs`` holds the predictions (and ``label_ids``, or ``None``) of every feature, in
        the features' order; ``examples`` are the raw examples they were encoded from. What this
        returns is what ``Metrics.compute`` receives at evaluation, and its ``predictions`` are
        what ``predict`` returns without a pipeline. Default: one feature per example, as it is.
        """
        return outputs

    def head_kwargs(self, data: TaskData, config: RunConfig) -> dict[str, Any]:
        """Model config settings for the head stage, saved in the model's config.json: by default, the task's labels."""
        if data.labels is None:
            return {}
        return {
            "num_labels": len(data.labels),
            "id2label": dict(enumerate(data.labels)),
            "label2id": data.label2id,
        }

    def processor_settings(self, data: TaskData, config: RunConfig) -> dict[str, Any]:
        """Model config settings that a model built from ``[model] config`` takes from ``data.processor``.

        Default: none (an image processor is sized to the config, not the config to it). ``Task``'s:
        the tokenizer's vocabulary size and its pad, start and end ids.
        """
        return {}

    def build_metrics(self, config: RunConfig, data: TaskData) -> Metrics:
        """Metric stage."""
        raise NotImplementedError

    def plots(self, prediction: EvalPrediction, data: TaskData, config: RunConfig) -> dict[str, Figure]:
        """The task's own figures of the final evaluation, saved as ``plots/NAME.png`` and shown in the model card.

        ``prediction`` is what ``Metrics.compute`` received: the post-processed predictions and
        references of the eval split. ``ftrun.stages.plots`` draws the usual ones (``confusion_matrix``,
        ``scores_per_class``, ``lengths``). Default: none; every run also plots its loss and eval metrics.
        """
        return {}

    def format_prediction(self, prediction: Any) -> str:
        """One prediction as a short line for the terminal."""
        return str(prediction)

    def read_input(self, value: str | dict[str, Any], where: str, config: RunConfig | None = None) -> str | dict[str, Any]:
        """One input to predict on (a ``[predict]`` example, an ``ftrun predict`` line or JSON object) → what ``predict`` takes.

        ``config`` is the run's (its ``[data]`` keys name the columns a table holds; ``None`` only
        where a task written for an older ftrun calls ``super().read_input(value, where)``).
        Default: the value as given. A bad input is a FtrunError starting with ``where``. It
        returns a text or a table: ``[predict]`` examples are read once, when the run's manifest is
        validated, and the run's ``ftrun.toml`` stores what this returned (a path made absolute,
        ...), which is not read again when ``ftrun predict`` or ``ftrun eval`` load the model. So
        reading what it returned must give it back unchanged.
        """
        return value

    def inputs_from(self, batch: dict[str, list], config: RunConfig, source: Path | None = None) -> list[Any]:
        """The inputs of a batch of a file's rows (``ftrun predict --input``), from the columns ``[data]`` names, one per row.

        ``source`` is that file, so that a column of paths relative to it can be read from any
        folder. What ``read_input`` then reads. Default: none, the task predicts on no file.
        """
        raise FtrunError(f"task {self.name} predicts on no column of a file: it has no inputs_from of its own")

    def example_input(self, config: RunConfig) -> str | dict[str, Any] | None:
        """An input to show in the "try it" line and the model card: the first ``[predict]`` example."""
        examples = config.predict.examples or self.defaults.get("predict", {}).get("examples", [])
        return examples[0] if examples else None

    def has_pipeline(self) -> bool:
        """Whether transformers has a pipeline for ``pipeline_tag`` (transformers 5 has none for translation or QA)."""
        from transformers.pipelines import SUPPORTED_TASKS

        return self.pipeline_tag in SUPPORTED_TASKS

    def usage(self, model_dir: str, config: RunConfig) -> str:
        """Python that uses the saved model, for its model card: the task's pipeline, or its head class and processor."""
        if self.has_pipeline():
            return f'from transformers import pipeline\npipe = pipeline("{self.pipeline_tag}", model="{model_dir}")'
        head = self.auto_model.__name__
        return (
            f"from transformers import {head}, {self.processor_class}\n"
            f'model = {head}.from_pretrained("{model_dir}")\n'
            f'{self.processor_name} = {self.processor_class}.from_pretrained("{model_dir}")'
        )

    # -- what a task's stages use -------------------------------------------------------

    def read_file(self, path: Path) -> Any | None:
        """Read a local data file of a format only this task knows, or a folder (``data.train_file``, ``ftrun predict --input``); ``None`` for the usual formats."""
        return None

    def load_processor(self, config: RunConfig, splits: Splits | None) -> Any:
        """What turns raw inputs into features (a tokenizer, an image processor, ...), as ``[model]`` names it.

        ``splits`` are the raw splits (``None`` where a finished model is loaded). It is saved
        with the model. ``Task`` loads (or trains) a tokenizer.
        """
        raise NotImplementedError

    def data_collator(self, data: TaskData, model: PreTrainedModel | None, config: RunConfig) -> Callable:
        """How features become batches: by default transformers' ``default_data_collator``, which stacks features of one size.

        ``model`` is ``None`` where there is none yet; ``config`` holds the settings a collator may
        depend on (causal LM: whether examples are packed).
        """
        from transformers import default_data_collator

        return default_data_collator

    def sequences(self, split: Any, data: TaskData, config: RunConfig) -> dict[str, TokenSequence]:
        """The token sequences the model reads from ``split`` (a sample of one), for ``preflight``'s length figures.

        Default: ``{}``, none (inputs of a fixed size).
        """
        return {}

    def input_figures(self, split: Any, data: TaskData, config: RunConfig) -> dict[str, str]:
        """Figures of the inputs of ``split`` (a sample of one), by row name, for the pre-flight's data table and ``ftrun check --json``.

        What ``sequences`` gives for token sequences, for inputs that are none: an image task's
        sizes (``"image size (w×h)": "8×8 to 8×8"``), an audio task's durations, what the
        processor makes of them. Default: ``{}``, none.
        """
        return {}

    def example_lengths(self, features: Any, config: RunConfig) -> list[int] | None:
        """Each encoded example's length, as the collator pads it: what length-grouped training batches, length-sorted evaluation and the pre-flight's padding estimate use.

        ``features`` is an encoded split (a ``datasets.Dataset``; read its columns with
        ``ftrun.lengths_of``, which decodes nothing). Default ``None``: inputs of one size (images,
        clips of a fixed duration): batches are then drawn at random, and the pre-flight says so.
        """
        return None

    def example_tokens(self, features: Any, config: RunConfig) -> list[tuple[int, int]] | None:
        """Each encoded example's number of sequences and their real tokens, where the collator pads several sequences of an example to the batch's longest (multiple choice's choices).

        What the pre-flight's padding estimate counts: a batch holds its examples' sequences, each
        padded to the longest of ``example_lengths``. Default ``None``: one sequence per example, of
        ``example_lengths`` tokens.
        """
        return None

    def preflight(self, config: RunConfig, data: TaskData) -> Preflight:
        """What ``ftrun check`` reports and every run prints first: per split, the schedule, and findings.

        ``data`` is the data stage's: a run's, or ``ftrun check``'s, which encoded a sample. The report's
        ``config`` is the one to run with (a default warmup sized to the run). A task adds checks
        of its own: call ``super().preflight(config, data)``, then ``report.warn(key, message)`` or
        ``report.fail(key, message)`` with what it finds in ``report.splits`` (labels, lengths, ...).
        """
        from ftrun.stages.preflight import preflight

        return preflight(self, config, data)

    def predict(self, model: Any, processor: Any, inputs: list[Any], config: RunConfig) -> list[Any]:
        """Predictions for inputs (as ``read_input`` gave them): the task's pipeline where transformers has one.

        ``processor`` is what ``load_processor`` loaded from the model's directory; the pipeline
        gets it under its keyword (``tokenizer``, ``image_processor``, ``feature_extractor``, ``processor``).

        Without one, the inputs (tables of the raw columns ``encode`` reads) are encoded as the
        ``predict`` split, the model runs over the features, and ``postprocess`` makes them
        one prediction per input, exactly as at evaluation.
        """
        from ftrun.stages.predict import predict_with_pipeline, predict_with_trainer

        if self.has_pipeline():
            return predict_with_pipeline(self, model, processor, inputs)
        return predict_with_trainer(self, model, processor, inputs, config)


class Task(BaseTask):
    """A task on text: ``BaseTask`` with what text tasks share, a tokenizer, token sequences and text columns.

    A subclass must define ``name``, ``auto_model``, ``check_data``, ``text_of``, ``encode`` and
    ``build_metrics``. Its tables are ``TextModelConfig`` (the tokenizer's keys) and ``TextDataConfig``
    (``max_length``), or subclasses of them.
    """

    model_config = TextModelConfig
    data_config = TextDataConfig
    processor_class = "AutoTokenizer"
    processor_name = "tokenizer"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A text task whose ``[data]`` table subclasses ``DataConfig``, as every one did before ``TextDataConfig``, keeps ``max_length``, with a DeprecationWarning."""
        super().__init_subclass__(**kwargs)
        table = cls.__dict__.get("data_config")
        if table is not None and not issubclass(table, TextDataConfig):
            warnings.warn(
                f"{cls.__qualname__}.data_config subclasses DataConfig: a text task's should subclass TextDataConfig", DeprecationWarning, stacklevel=2
            )
            cls.data_config = type(table.__name__, (table, TextDataConfig), {"__module__": table.__module__, "__doc__": table.__doc__})

    def text_of(self, split: Any, config: RunConfig) -> Iterable[str]:
        """The raw texts of a split, to train a tokenizer on when none is given."""
        raise NotImplementedError

    def load_processor(self, config: RunConfig, splits: Splits | None) -> PreTrainedTokenizerBase:
        """The tokenizer ``[model]`` names (or the model's), or one trained on ``text_of`` the train split; then ``check_tokenizer``."""
        from ftrun.stages.data import load_tokenizer

        return load_tokenizer(self, config, splits)

    def check_tokenizer(self, tokenizer: PreTrainedTokenizerBase, config: RunConfig, where: str) -> None:
        """What the task needs of its tokenizer, checked when the data stage loads it (NER: a fast one); ``where`` names the key.

        Default: nothing.
        """

    def read_input(self, value: str | dict[str, Any], where: str, config: RunConfig | None = None) -> str | dict[str, Any]:
        """One input to predict on (a ``[predict]`` example, an ``ftrun predict`` line or JSON object) → what ``predict`` takes.

        ``config`` is the run's (its ``[data]`` keys name the columns a table holds; ``None`` only
        where a task written for an older ftrun calls ``super().read_input(value, where)``).
        Default: a text. A task whose examples have several fields takes a table (dict) and says
        which keys it needs; a bad input is a FtrunError starting with ``where``. It returns a text
        or a table: ``[predict]`` examples are read once, when the run's manifest is validated, and
        the run's ``ftrun.toml`` stores what this returned (a path made absolute, ...), which is
        not read again when ``ftrun predict`` or ``ftrun eval`` load the model. So reading what it
        returned must give it back unchanged.
        """
        if not isinstance(value, str):
            raise FtrunError(f"{where}: task {self.name} predicts on texts, got {type(value).__name__} {value!r}")
        return value

    def inputs_from(self, batch: dict[str, list], config: RunConfig, source: Path | None = None) -> list[Any]:
        """The inputs of a batch of a file's rows (``ftrun predict --input``), from the columns ``[data]`` names, one per row.

        ``source`` is that file, so that a column of paths relative to it can be read from any
        folder. What ``read_input`` then reads. Default: the one input text of each row that
        ``inputs_of`` gives; a task whose inputs have several fields returns tables (dicts).
        """
        from datasets import Dataset

        found = self.inputs_of(Dataset.from_dict(batch), config)
        if found is None or any(len(example) != 1 for example in found):
            raise FtrunError(f"task {self.name} predicts on no column of a file: it has no inputs_from of its own")
        return [example[0] for example in found]

    def processor_settings(self, data: TaskData, config: RunConfig) -> dict[str, Any]:
        """The tokenizer's vocabulary size and its pad, start and end ids, for a model built from ``[model] config``.

        Where generation starts and stops: the tokenizer's ids, not the class defaults (GPT-2's
        50256 is no token of a tokenizer trained here). The model's generation config is made from these.
        """
        tokenizer = data.tokenizer
        settings = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id}
        for name in ("bos_token_id", "eos_token_id"):
            if getattr(tokenizer, name) is not None:
                settings[name] = getattr(tokenizer, name)
        return settings

    def data_collator(self, data: TaskData, model: PreTrainedModel | None, config: RunConfig) -> Callable:
        """How features become batches: by default, padded to each batch's own longest example (dynamic padding).

        ``model`` is ``None`` where there is none yet; ``config`` holds the settings a collator may
        depend on (causal LM: whether examples are packed).
        """
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(data.tokenizer)

    def example_lengths(self, features: Any, config: RunConfig) -> list[int] | None:
        """Each encoded example's length: its tokens in ``input_ids``, or, where each example holds several sequences (multiple choice's ``(choices, tokens)``), its longest."""
        from ftrun.stages.training import lengths_of

        return lengths_of(features, "input_ids")

    def example_tokens(self, features: Any, config: RunConfig) -> list[tuple[int, int]] | None:
        """From ``input_ids``: ``None`` for one sequence per example; the number of sequences and their tokens where an example holds several."""
        from ftrun.stages.training import tokens_of

        return tokens_of(features, "input_ids")

    def sequences(self, split: Any, data: TaskData, config: RunConfig) -> dict[str, TokenSequence]:
        """The token sequences the model reads from ``split`` (a sample of one), untruncated, and where ``encode`` cuts each.

        For ``preflight``'s token lengths, truncation, position-limit and padding figures. Default:
        ``{"inputs": ...}``, the texts of ``inputs_of`` (two as a pair, with each text's length) cut at ``data.max_length``,
        else at the tokenizer's maximum; ``{}`` (no figures) where ``inputs_of`` gives none.
        """
        from ftrun.stages.preflight import TokenSequence, tokenizer_limit

        inputs = self.inputs_of(split, config)
        if inputs is None:
            return {}
        texts = [example[0] for example in inputs]
        pairs = [example[1] for example in inputs] if inputs and all(len(example) > 1 for example in inputs) else None
        ids = data.tokenizer(texts, pairs, truncation=False)["input_ids"]
        parts = None
        if pairs is not None:  # longest-first truncation cuts the longer text of a pair: the report says which
            alone = [data.tokenizer(side, add_special_tokens=False)["input_ids"] for side in (texts, pairs)]
            parts = [(len(first), len(second)) for first, second in zip(*alone)]
        return {"inputs": TokenSequence(ids, config.data.max_length or tokenizer_limit(data.tokenizer), "data.max_length", parts)}
