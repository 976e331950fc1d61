"""The Task base class: what a task plugin subclasses, and what the stages share.

A task says what is particular to it (its head class, its columns, how a batch is
encoded, its metrics); everything else — loading files or Hub datasets, subsetting,
cached tokenization, building models from weights or from a config, the Trainer — is
done here once for every task.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable

from transformers import EvalPrediction, TrainingArguments

from .config import DataConfig, MetricsConfig, RunConfig
from .data import Splits, TokenizeStats, load_splits, tokenize, tokenizer_fingerprint
from .errors import FtrunError, first_line
from .precision import choose_precision
from .training import Trainer

if TYPE_CHECKING:
    from transformers import PreTrainedConfig, PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback

    from .preflight import Preflight, TokenSequence


@dataclasses.dataclass
class TaskData:
    """What the data stage returns: tokenized splits and what the head needs to know."""

    train: Any
    eval: Any
    tokenizer: PreTrainedTokenizerBase
    labels: list[str] | None = None
    raw: Splits | None = None
    stats: dict[str, TokenizeStats] = dataclasses.field(default_factory=dict)

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels or [])}


@dataclasses.dataclass
class Metrics:
    """What the metric stage returns."""

    compute: Callable[[EvalPrediction], dict[str, float]]
    best: str
    """The metric (without the ``eval_`` prefix) that picks the best checkpoint."""
    greater_is_better: bool = True


class Task:
    """Base class of every task. Subclass it, set the class attributes, fill in the hooks marked below.

    Subclasses must define ``name``, ``auto_model``, ``check_data``, ``text_of``, ``encode``
    and ``build_metrics``; docs/plugins.md describes the rest.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: The Hub's pipeline tag of the saved model (its card's metadata). Where transformers has a
    #: pipeline of that name, the default ``predict`` and ``usage`` use it.
    pipeline_tag: ClassVar[str | None] = None
    #: The ``AutoModelFor...`` class that adds this task's output layer.
    auto_model: ClassVar[type]
    #: The ``[data]`` table, with this task's own keys (columns, ...).
    data_config: ClassVar[type[DataConfig]] = DataConfig
    #: The ``[metrics]`` table, with this task's own keys (a decision threshold, ...).
    metrics_config: ClassVar[type[MetricsConfig]] = MetricsConfig
    training_arguments_class: ClassVar[type[TrainingArguments]] = TrainingArguments
    #: ftrun's Trainer (exact resume, NaN check, sorted evaluation); a subclass of your own should mix in ``ftrun.TrainerMixin``.
    trainer_class: ClassVar[type[Trainer]] = Trainer
    #: The manifest this task runs with when nothing else is given.
    defaults: ClassVar[dict[str, Any]] = {}
    #: ``[training]`` settings the task cannot run without: applied over the user's, and a user
    #: setting that differs is an error when the manifest is validated.
    required_training: ClassVar[dict[str, Any]] = {}

    # -- what a task says about itself -------------------------------------------------

    def demo(self) -> dict[str, Any]:
        """The embedded default: a manifest that runs offline on data shipped in the package."""
        raise FtrunError(f"task {self.name} has no embedded demo")

    def check_data(self, splits: Splits, config: RunConfig) -> list[str] | None:
        """Check columns and labels of the raw splits; return the label names, if the task has labels."""
        raise NotImplementedError

    def text_of(self, split: Any, config: RunConfig) -> Iterable[str]:
        """The raw texts of a split, to train a tokenizer on when none is given."""
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
        """Tokenize one batch of raw examples of ``split`` (``train``, ``eval`` or ``predict``) into features.

        It may return more rows than it receives (one example, several features); eval and
        predict features need no labels when ``postprocess`` finds the references elsewhere.
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

    def head_kwargs(self, data: TaskData) -> dict[str, Any]:
        """Config arguments that wire the task's labels into the head."""
        if data.labels is None:
            return {}
        return {
            "num_labels": len(data.labels),
            "id2label": dict(enumerate(data.labels)),
            "label2id": data.label2id,
        }

    def build_metrics(self, config: RunConfig, data: TaskData) -> Metrics:
        """Metric stage."""
        raise NotImplementedError

    def format_prediction(self, prediction: Any) -> str:
        """One prediction as a short line for the terminal."""
        return str(prediction)

    def read_input(self, value: str | dict[str, Any], where: str) -> Any:
        """One input to predict on (a ``[predict]`` example, an ``ftrun predict`` line or JSON object) → what ``predict`` takes.

        Default: a text. A task whose examples have several fields takes a table (dict) and says
        which keys it needs; a bad input is a FtrunError starting with ``where``.
        """
        if not isinstance(value, str):
            raise FtrunError(f"{where}: task {self.name} predicts on texts, got {type(value).__name__} {value!r}")
        return value

    def example_input(self, config: RunConfig) -> str | dict[str, Any] | None:
        """An input to show in the "try it" line and the model card: the first ``[predict]`` example."""
        examples = config.predict.examples or self.defaults.get("predict", {}).get("examples", [])
        return examples[0] if examples else None

    def has_pipeline(self) -> bool:
        """Whether transformers has a pipeline for ``pipeline_tag`` (transformers 5 has none for translation or QA)."""
        from transformers.pipelines import SUPPORTED_TASKS

        return self.pipeline_tag in SUPPORTED_TASKS

    def usage(self, model_dir: str, config: RunConfig) -> str:
        """Python that uses the saved model, for its model card: the task's pipeline, or its head class."""
        if self.has_pipeline():
            return f'from transformers import pipeline\npipe = pipeline("{self.pipeline_tag}", model="{model_dir}")'
        head = self.auto_model.__name__
        return (
            f"from transformers import {head}, AutoTokenizer\n"
            f'model = {head}.from_pretrained("{model_dir}")\n'
            f'tokenizer = AutoTokenizer.from_pretrained("{model_dir}")'
        )

    # -- the stages, shared by every task --------------------------------------------

    def read_file(self, path: Path) -> Any | None:
        """Read a local data file of a format only this task knows; ``None`` for the usual formats."""
        return None

    def load_data(self, config: RunConfig) -> TaskData:
        """Data stage: load, check, get a tokenizer, tokenize (cached)."""
        splits = load_splits(config, self.read_file)
        labels = self.check_data(splits, config)
        data = TaskData(train=None, eval=None, tokenizer=self.load_tokenizer(config, splits), labels=labels, raw=splits)
        # The task's code is part of the key: a changed encode never reuses stale features.
        key = repr((code_identity(self), tokenizer_fingerprint(data.tokenizer), config.data.model_dump(), labels))
        for name in ("train", "eval"):
            encoded, stats = tokenize(
                getattr(splits, name),
                lambda batch, name=name: self.encode_batch(batch, data, config, name),
                key=key,
                desc=f"Tokenizing {name}",
            )
            setattr(data, name, encoded)
            data.stats[name] = stats
        return data

    def encode_batch(self, batch: dict[str, list], data: TaskData, config: RunConfig, split: str) -> dict[str, list]:
        """``encode``, with a failure reported as one line naming the task and the split."""
        try:
            return self.encode(batch, data, config, split)
        except (FtrunError, KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # BaseException: a Rust tokenizer's panic (pyo3's PanicException) is not an Exception
            raise FtrunError(
                f"{config.where('data')}: task {self.name} cannot encode the {split} split: {type(exc).__name__}: {first_line(exc)}"
            ) from exc

    def check_encoding(self, config: RunConfig, splits: Splits, labels: list[str] | None, rows: int = 32) -> TaskData:
        """What ``ftrun check`` runs after ``check_data``: the tokenizer, and ``encode`` on the first ``rows`` examples of each split.

        Returns the data ``preflight`` reports on: the tokenizer, labels and raw splits, no
        tokenized splits, and in ``stats`` the features those rows became.
        """
        import time

        data = TaskData(train=None, eval=None, tokenizer=self.load_tokenizer(config, splits), labels=labels, raw=splits)
        for name in ("train", "eval"):
            split = getattr(splits, name)
            start, count = time.perf_counter(), min(rows, len(split))
            features = self.encode_batch(split.select(range(count))[:], data, config, name)
            data.stats[name] = TokenizeStats(count, len(next(iter(features.values()), ())), time.perf_counter() - start, cached=False)
        return data

    def sequences(self, split: Any, data: TaskData, config: RunConfig) -> dict[str, TokenSequence]:
        """The token sequences the model reads from ``split`` (a sample of one), untruncated, and where ``encode`` cuts each.

        For ``preflight``'s token lengths, truncation, position-limit and padding figures. Default:
        ``{"inputs": ...}``, the texts of ``inputs_of`` (two as a pair) cut at ``data.max_length``,
        else at the tokenizer's maximum; ``{}`` (no figures) where ``inputs_of`` gives none.
        """
        from .preflight import TokenSequence, tokenizer_limit

        inputs = self.inputs_of(split, config)
        if inputs is None:
            return {}
        texts = [example[0] for example in inputs]
        pairs = [example[1] for example in inputs] if inputs and all(len(example) > 1 for example in inputs) else None
        ids = data.tokenizer(texts, pairs, truncation=False)["input_ids"]
        return {"inputs": TokenSequence(ids, config.data.max_length or tokenizer_limit(data.tokenizer), "data.max_length")}

    def preflight(self, config: RunConfig, data: TaskData) -> Preflight:
        """What ``ftrun check`` reports and every run prints first: per split, the schedule, and findings.

        ``data`` is a run's data stage's, or ``check_encoding``'s in ``ftrun check``. The report's
        ``config`` is the one to run with (a default warmup sized to the run). A task adds checks
        of its own: call ``super().preflight(config, data)``, then ``report.warn(key, message)`` or
        ``report.fail(key, message)`` with what it finds in ``report.splits`` (labels, lengths, ...).
        """
        from .preflight import preflight

        return preflight(self, config, data)

    def load_tokenizer(self, config: RunConfig, splits: Splits) -> PreTrainedTokenizerBase:
        """The named tokenizer, the model's own, or one trained on the training texts."""
        from transformers import AutoTokenizer

        model = config.model
        source = model.tokenizer or model.name
        if source is None:
            from .tokenizer import cached_tokenizer, train_tokenizer

            settings = model_config_dict(config)
            key = (self.name, model.model_dump(), config.data.model_dump())
            return cached_tokenizer(
                splits.train,
                key,
                lambda: train_tokenizer(
                    self.text_of(splits.train, config),
                    model_type=settings.get("model_type"),
                    vocab_size=model.tokenizer_vocab_size,
                    model_max_length=settings.get("max_position_embeddings", 512),
                    lowercase=model.tokenizer_lowercase,
                ),
                where=config.where("model.tokenizer"),
            )
        key = "model.tokenizer" if model.tokenizer else "model.name"
        check_local(config, key, source)
        try:
            return AutoTokenizer.from_pretrained(source, revision=model.revision, trust_remote_code=model.trust_remote_code)
        except (OSError, ValueError) as exc:
            raise FtrunError(f"{config.where(key)}: cannot load tokenizer {source!r}: {first_line(exc)}") from exc

    def build_head(self, config: RunConfig, data: TaskData) -> PreTrainedModel:
        """Head stage: pretrained weights with a fresh output layer, or a model built from a config."""
        from transformers import AutoConfig

        model = config.model
        kwargs = self.head_kwargs(data)
        settings = source_settings(config)
        if settings is not None:
            tokenizer = data.tokenizer
            settings.update(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **kwargs)
            if tokenizer.eos_token_id is not None:  # where generation stops: the tokenizer's id, not the class default
                settings["eos_token_id"] = tokenizer.eos_token_id
            try:
                model_config = AutoConfig.for_model(**settings)
                if model_config.is_encoder_decoder and getattr(model_config, "decoder_start_token_id", None) is None:
                    # T5-family configs leave it to their checkpoints, which start decoding from the pad token.
                    model_config.decoder_start_token_id = tokenizer.pad_token_id
                return self.auto_model.from_config(model_config)
            except (ValueError, TypeError, KeyError) as exc:
                raise FtrunError(f"{config.where('model.config')}: {first_line(exc)}") from exc
        try:
            return self.auto_model.from_pretrained(
                model.name, revision=model.revision, trust_remote_code=model.trust_remote_code, **kwargs
            )
        except (OSError, ValueError) as exc:
            raise FtrunError(f"{config.where('model.name')}: cannot load {model.name!r}: {first_line(exc)}") from exc

    def build_trainer(
        self,
        config: RunConfig,
        data: TaskData,
        model: PreTrainedModel,
        metrics: Metrics,
        callbacks: list[TrainerCallback],
        output_dir: str,
    ) -> Trainer:
        """Trainer stage: arguments from ``[training]``, dynamic padding, mixed precision, the task's Trainer class."""
        settings = {"metric_for_best_model": metrics.best, "greater_is_better": metrics.greater_is_better}
        settings.update(choose_precision(config.training).settings)
        settings.update(config.training)
        try:
            args = self.training_arguments_class(output_dir=output_dir, **settings)
        except (ValueError, TypeError) as exc:
            raise FtrunError(f"{config.where('training')}: {first_line(exc)}") from exc
        return self.trainer_class(
            model=model,
            args=args,
            train_dataset=data.train,
            eval_dataset=data.eval,
            processing_class=data.tokenizer,
            data_collator=self.data_collator(data),
            compute_metrics=lambda outputs: metrics.compute(self.postprocess(outputs, data.eval, data.raw.eval, data, config)),
            callbacks=callbacks,
        )

    def data_collator(self, data: TaskData) -> Callable:
        """Pads each batch to its own longest example (dynamic padding)."""
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(data.tokenizer)

    def check_model(self, config: RunConfig) -> None:
        """What ``ftrun check`` verifies of ``[model]`` without loading weights: it exists, and fits the data and tokenizer."""
        from transformers import AutoTokenizer

        model = config.model
        if source_settings(config) is None:
            path = Path(model.name)
            if path.is_dir() and not any(any(path.glob(pattern)) for pattern in ("*.safetensors", "*.bin", "*.safetensors.index.json")):
                raise FtrunError(f"{config.where('model.name')}: {path} has no model weights (*.safetensors or *.bin)")
        model_config = model_config_of(config)
        # Both would only fail in the middle of training, as an index error deep in the model.
        positions = getattr(model_config, "max_position_embeddings", None)
        if config.data.max_length is not None and positions is not None and config.data.max_length > positions:
            raise FtrunError(f"{config.where('data.max_length')}: {config.data.max_length} tokens is more than the model takes ({positions})")
        if model.tokenizer and model.name:
            check_local(config, "model.tokenizer", model.tokenizer)
            try:
                tokens = len(AutoTokenizer.from_pretrained(model.tokenizer, revision=model.revision, trust_remote_code=model.trust_remote_code))
            except (OSError, ValueError) as exc:
                raise FtrunError(f"{config.where('model.tokenizer')}: cannot load tokenizer {model.tokenizer!r}: {first_line(exc)}") from exc
            if tokens > model_config.vocab_size:
                raise FtrunError(
                    f"{config.where('model.tokenizer')}: has {tokens} tokens, more than the {model_config.vocab_size} "
                    f"of {model.name}'s vocabulary: the tokenizer does not belong to the model"
                )

    def load_trained(self, model_dir: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        """The model and tokenizer of a finished run's output directory."""
        from transformers import AutoTokenizer

        try:
            return self.auto_model.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir)
        except (OSError, ValueError) as exc:
            raise FtrunError(f"--model: cannot load {model_dir}: {first_line(exc)}") from exc

    def predict(self, model: Any, tokenizer: Any, inputs: list[Any], config: RunConfig) -> list[Any]:
        """Predictions for inputs (as ``read_input`` gave them): the task's pipeline where transformers has one.

        Without one, the inputs (tables of the raw columns ``encode`` reads) are encoded as the
        ``predict`` split, the model runs over the features, and ``postprocess`` makes them
        one prediction per input, exactly as at evaluation.
        """
        if self.has_pipeline():
            from transformers import pipeline

            return pipeline(self.pipeline_tag, model=model, tokenizer=tokenizer)(inputs)
        import tempfile

        from datasets import Dataset

        if not all(isinstance(value, dict) for value in inputs):
            raise FtrunError(
                f"task {self.name} has no transformers pipeline ({self.pipeline_tag}): its read_input must give tables of the columns its encode reads"
            )
        labels = getattr(model.config, "id2label", None)
        data = TaskData(train=None, eval=None, tokenizer=tokenizer, labels=[labels[i] for i in sorted(labels)] if labels else None)
        examples = Dataset.from_list(list(inputs))
        features = examples.map(
            lambda batch: self.encode_batch(batch, data, config, "predict"), batched=True, remove_columns=examples.column_names
        )
        with tempfile.TemporaryDirectory() as scratch:  # the Trainer wants an output directory; predict writes nothing there
            args = TrainingArguments(output_dir=scratch, report_to="none", per_device_eval_batch_size=PREDICT_BATCH)
            trainer = Trainer(model=model, args=args, processing_class=tokenizer, data_collator=self.data_collator(data))
            outputs = trainer.predict(features)
        raw = EvalPrediction(predictions=outputs.predictions, label_ids=outputs.label_ids)
        return list(self.postprocess(raw, features, examples, data, config).predictions)


#: Inputs run through the model at once by the default ``predict``.
PREDICT_BATCH = 32


def code_identity(task: Task) -> tuple[str, ...]:
    """The task's name, its distribution's version and a hash of its code, for the tokenized-split cache key.

    The code is the source of each module defining the task's class and its bases up to
    :class:`Task`; a module that is a package brings every ``.py`` file in its folder, where
    helpers of the task's ``encode`` usually live.
    """
    import hashlib
    import importlib.metadata
    import inspect
    import sys

    digest = hashlib.sha256()
    for name in sorted({cls.__module__ for cls in type(task).__mro__ if issubclass(cls, Task) and cls is not Task}):
        path = Path(getattr(sys.modules.get(name), "__file__", None) or "")
        files = sorted(path.parent.rglob("*.py")) if path.name == "__init__.py" else [path] if path.is_file() else []
        for file in files:
            digest.update(file.read_bytes())
        if not files:  # defined without a file of its own (exec, a notebook): its source where inspect finds it
            try:
                digest.update(inspect.getsource(type(task)).encode())
            except (OSError, TypeError):
                digest.update(type(task).__qualname__.encode())
    dists = sorted(set(importlib.metadata.packages_distributions().get(type(task).__module__.partition(".")[0], [])))
    return (task.name, *(f"{dist} {importlib.metadata.version(dist)}" for dist in dists), digest.hexdigest()[:16])


def model_config_dict(config: RunConfig) -> dict[str, Any]:
    """``[model] config`` as a dict, read from a file or folder when it is a path."""
    value = config.model.config
    if value is None:
        return {}
    if isinstance(value, dict):
        return dict(value)
    import json

    path = Path(value)
    if path.is_dir():
        path = path / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FtrunError(f"{config.where('model.config')}: cannot read {path}: {first_line(exc)}") from exc


def model_config_of(config: RunConfig) -> PreTrainedConfig:
    """The config of the model ``[model]`` names: the one it is built from, or the pretrained model's (no weights loaded)."""
    from transformers import AutoConfig

    model = config.model
    settings = source_settings(config)
    if settings is not None:
        try:
            return AutoConfig.for_model(**settings)
        except (ValueError, TypeError, KeyError) as exc:
            raise FtrunError(f"{config.where('model.config')}: {first_line(exc)}") from exc
    try:
        return AutoConfig.from_pretrained(model.name, revision=model.revision, trust_remote_code=model.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise FtrunError(f"{config.where('model.name')}: cannot load {model.name!r}: {first_line(exc)}") from exc


def source_settings(config: RunConfig) -> dict[str, Any] | None:
    """Check ``[model]`` names exactly one source: the config to build from, or ``None`` for a named model (checked to exist)."""
    model = config.model
    if model.config is None:
        if model.name is None:
            raise FtrunError(f"{config.where('model')}: name a model (model.name) or give a model.config")
        check_local(config, "model.name", model.name)
        return None
    if model.name is not None:
        raise FtrunError(f"{config.where('model')}: give either name (pretrained) or config (from scratch), not both")
    settings = model_config_dict(config)
    if "model_type" not in settings:
        raise FtrunError(f"{config.where('model.config')}: needs a model_type (e.g. \"bert\")")
    return settings


def check_local(config: RunConfig, key: str, value: str) -> None:
    """A value that is a local path must exist; Hub ids are left to the Hub."""
    from .config import looks_like_path

    if looks_like_path(value) and not Path(value).exists():
        raise FtrunError(f"{config.where(key)}: {value} does not exist")
