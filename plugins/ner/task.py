"""Named-entity recognition: a tag per word (B-PER, I-PER, O, ...) → entity spans (BERT on CoNLL-2003).

What transformers' ``run_ner.py`` does, as a plugin: word tags spread over sub-tokens,
entity-level seqeval metrics, and a saved model that ``pipeline("token-classification")``
groups into entities. Registered through the ``ftrun`` entry-point group, like any plugin.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from ftrun import FtrunError, Metrics, Preflight, RunConfig, Splits, Task, TaskData, TextDataConfig, describe_feature, hookimpl, require_columns, where_row

from ..demo import small_bert
from ..labels import LabelNames, check_eval_labels, first_missing, named_labels
from .conll import TAGS, TOKENS, is_conll, read_conll
from .metrics import METRICS, REPORT_KEYS, entity_metrics, entity_scores, metric_keys, tag_sequences
from .tags import align_labels, continuation_ids, invalid_tags

if TYPE_CHECKING:
    from datasets import Dataset
    from matplotlib.figure import Figure
    from transformers import EvalPrediction, PreTrainedTokenizerBase

DEMO_DIR = Path(__file__).parent / "data"


class NerData(TextDataConfig):
    tokens_column: str = Field(TOKENS, description="Column holding each sentence as a list of words.")
    tags_column: str = Field(TAGS, description="Column holding each word's tag (IOB1, IOB2 or IOBES): strings, a Sequence(ClassLabel), or integers.")
    label_names: LabelNames = Field(None, description="Names of integer tags 0..N-1, when the data has none.")
    label_all_tokens: bool = Field(
        False,
        description="Label every sub-token of a word (B-X continues as I-X), not only the first; as in run_ner.py, the metric then counts sub-tokens too.",
    )


class NerTask(Task):
    name = "ner"
    description = "tag the named entities (persons, places, ...) of a text"
    pipeline_tag = "token-classification"
    data_config = NerData
    #: run_ner.py's recipe: bert-base-cased on CoNLL-2003, 3 epochs, the Trainer's batch size and rate.
    defaults = {
        "model": {"name": "bert-base-cased"},
        "data": {"dataset": "eriktks/conll2003", "train_split": "train", "eval_split": "validation"},
        "training": {
            "num_train_epochs": 3,
            "per_device_train_batch_size": 8,
            "per_device_eval_batch_size": 8,
            "learning_rate": 5e-5,
        },
        "metrics": {"names": list(METRICS), "best": "f1"},
        "predict": {"examples": ["Angela Merkel visited Paris.", "Apple hired John Smith in New York last year."]},
    }

    #: A real CoNLL-2003 sample shipped in the package (CoNLL text files) and a small cased BERT.
    demo = {
        "model": {
            "config": small_bert(max_positions=128),
            "tokenizer_vocab_size": 4000,
            # Capitals are the best clue to a name.
            "tokenizer_lowercase": False,
        },
        "data": {"train_file": str(DEMO_DIR / "train.conll"), "eval_file": str(DEMO_DIR / "eval.conll"), "max_length": 128},
        # A model trained from scratch wants a higher rate and more passes than fine-tuning.
        "training": {"num_train_epochs": 6, "learning_rate": 1e-3, "per_device_train_batch_size": 16},
    }

    @property
    def auto_model(self) -> type:
        # Imported on first use: transformers' model classes import torch, which listing the tasks must not.
        from transformers import AutoModelForTokenClassification

        return AutoModelForTokenClassification

    # -- data stage --------------------------------------------------------------------

    def read_file(self, path: Path) -> Dataset | None:
        """CoNLL text files (``.conll``, ``.iob``, ``.bio``, ``.txt``); columns ``tokens`` and ``ner_tags``."""
        return read_conll(path) if is_conll(path) else None

    def logits_over_labels(self, config: RunConfig) -> bool:
        """One tag per scored token: the logits score each tag."""
        return True

    def check_data(self, splits: Splits, config: RunConfig) -> list[str]:
        settings: NerData = config.data
        columns = {"tokens_column": settings.tokens_column, "tags_column": settings.tags_column}
        require_columns(splits.train, columns, config, "train")
        require_columns(splits.eval, columns, config, "eval")
        names, _ = split_tags(splits.train, config, "train")
        _, used = split_tags(splits.eval, config, "eval")
        check_eval_labels(names, used, config.where("data.tags_column"), "tags")
        return names

    def check_tokenizer(self, tokenizer: PreTrainedTokenizerBase, config: RunConfig, where: str) -> None:
        """A fast one: only those map sub-tokens to words."""
        if not tokenizer.is_fast:
            raise FtrunError(
                f"{where}: {type(tokenizer).__name__} is a slow (Python) tokenizer; ner needs a fast one, which maps sub-tokens to words (word_ids)"
            )

    def text_of(self, split: Any, config: RunConfig) -> Iterable[str]:
        for batch in split.select_columns([config.data.tokens_column]).iter(batch_size=1000):
            for words in batch[config.data.tokens_column]:
                yield " ".join(words)

    def inputs_of(self, split: Any, config: RunConfig) -> list[tuple[str, ...]]:
        return [(" ".join(words),) for words in split.select_columns([config.data.tokens_column])[:][config.data.tokens_column]]

    def labels_of(self, split: Any, config: RunConfig) -> list[list[str]]:
        """Each sentence's entity types, one per entity (as seqeval finds them: IOB1, IOB2 or IOBES)."""
        from seqeval.metrics.sequence_labeling import get_entities

        column = config.data.tags_column
        names = getattr(split.features[column].feature, "names", None) or config.data.label_names
        sentences = split.select_columns([column])[:][column]
        return [[kind for kind, _, _ in get_entities([names[tag] if isinstance(tag, int) else tag for tag in tags])] for tags in sentences]

    def encode(self, batch: dict[str, list], data: TaskData, config: RunConfig, split: str) -> dict[str, list]:
        settings: NerData = config.data
        encoded = data.tokenizer(batch[settings.tokens_column], is_split_into_words=True, truncation=True, max_length=settings.max_length)
        label2id = data.label2id
        continuation = continuation_ids(data.labels) if settings.label_all_tokens else None
        # Integer tags index the names, which are data.labels in the same order.
        encoded["labels"] = [
            align_labels(encoded.word_ids(i), [tag if isinstance(tag, int) else label2id[tag] for tag in tags], continuation)
            for i, tags in enumerate(batch[settings.tags_column])
        ]
        return encoded

    # -- head, metric and trainer stages --------------------------------------------

    def build_metrics(self, config: RunConfig, data: TaskData) -> Metrics:
        names = config.metrics.names or list(METRICS)
        unknown = [name for name in names if name not in METRICS]
        if unknown:
            raise FtrunError(
                f"{config.where('metrics.names')}: {unknown[0]!r} is not a ner metric "
                f"(choose from {', '.join(METRICS)}; all but accuracy are also given per entity type, e.g. PER_f1)"
            )
        best = config.metrics.best or "f1"
        keys = metric_keys(names, data.labels)
        if best not in keys:
            raise FtrunError(f"{config.where('metrics.best')}: {best!r} is not among the metrics ({', '.join(keys)})")
        return Metrics(compute=entity_metrics(names, data.labels), best=best)

    def plots(self, prediction: EvalPrediction, data: TaskData, config: RunConfig) -> dict[str, Figure]:
        """Entity-level F1 of each entity type on the eval split."""
        from ftrun import plots

        scores = entity_scores(*tag_sequences(prediction, data.labels), ["f1"], data.labels)
        per_type = {key.removesuffix("_f1"): value for key, value in scores.items() if key != "f1"}
        return {"f1_per_entity_type": plots.scores_per_class(per_type, f"Entity F1 per type (eval split; all: {scores['f1']:.2f})", "entity type", "F1")}

    def preflight(self, config: RunConfig, data: TaskData) -> Preflight:
        """The shared report, and whether the best metric has entities to score in the eval split (PER_f1: PER entities)."""
        report = super().preflight(config, data)
        best = config.metrics.best or "f1"
        kind, _, name = best.rpartition("_")  # "PER_f1" -> PER, f1; "f1" -> "", f1 (every type)
        counts = report.splits["eval"].labels or {}
        if name in REPORT_KEYS and not (counts.get(kind) if kind else sum(counts.values())):
            report.warn(
                "metrics.best",
                f"{best} cannot be computed on the eval split: it has no {kind + ' ' if kind else ''}entities, "
                "so it is 0.0 at every evaluation and picks no best checkpoint",
            )
        return report

    def data_collator(self, data: TaskData, model: Any, config: RunConfig) -> Callable:
        """Pads inputs and labels (with the ignored id -100) to each batch's longest sentence."""
        from transformers import DataCollatorForTokenClassification

        return DataCollatorForTokenClassification(data.tokenizer)

    # -- predict -----------------------------------------------------------------------

    def predict(self, model: Any, tokenizer: Any, inputs: list[str], config: RunConfig) -> list[dict[str, Any]]:
        """The entities of each input: sub-tokens grouped into words, words into spans, by the pipeline.

        ``first``, not ``simple``: the model learnt a tag for each word's first sub-token only
        (the rest are -100), so that one decides the word; ``simple`` would also read the
        untrained later sub-tokens and cut names apart ("Angela Merkel" -> "Ang", "el", ...).
        """
        from transformers import pipeline

        tagger = pipeline("token-classification", model=model, tokenizer=tokenizer, aggregation_strategy="first")
        return [
            {
                "entities": [
                    {
                        "type": entity["entity_group"],
                        # The input's own characters: the pipeline's "word" is decoded (lowercased by uncased models).
                        "text": text[entity["start"] : entity["end"]],
                        "score": float(entity["score"]),
                        "start": int(entity["start"]),
                        "end": int(entity["end"]),
                    }
                    for entity in found
                ]
            }
            for text, found in zip(inputs, tagger(inputs))
        ]

    def format_prediction(self, prediction: dict[str, Any]) -> str:
        entities = prediction["entities"]
        if not entities:
            return "no entities"
        return ", ".join(f"{entity['type']} {entity['text']!r} ({entity['score']:.2f})" for entity in entities)


def split_tags(split: Any, config: RunConfig, name: str) -> tuple[list[str], set[str]]:
    """A split's tag names (all that its ClassLabel or label_names define) and those its sentences use.

    Fails, naming the sentence, when a sentence has no words or tags (null), a word or a tag
    is missing, words and tags differ in number, or a tag is not IOB1 / IOB2 / IOBES. An
    empty sentence, or a word that is an empty string, is accepted: the tokenizer gives it no
    sub-token, so it is neither trained on nor scored.
    """
    settings: NerData = config.data
    where = config.where("data.tags_column")
    check_list_columns(split, config)
    columns = split.select_columns([settings.tokens_column, settings.tags_column])[:]  # as lists: a Column reads row by row
    sentences, tags = columns[settings.tokens_column], columns[settings.tags_column]
    for row, (words, row_tags) in enumerate(zip(sentences, tags)):
        if words is None or None in words:
            what = "no words (null or missing)" if words is None else f"no word {words.index(None) + 1} (null)"
            raise FtrunError(f"{config.where('data.tokens_column')}: {where_row(config, split, name, row, 'sentence')} has {what}")
        sentence = where_row(config, split, name, row, "sentence") + (f" {preview(words)}" if words else "")
        if row_tags is None:
            raise FtrunError(f"{where}: {sentence} has no tags (null or missing)")
        missing = first_missing(row_tags)
        if missing is not None:
            raise FtrunError(f"{where}: {sentence} has no tag for word {missing + 1}" + (f" ({words[missing]!r})" if missing < len(words) else ""))
        if len(words) != len(row_tags):
            raise FtrunError(f"{where}: {sentence} has {len(words)} tokens but {len(row_tags)} tags")
    values = Counter(tag for row_tags in tags for tag in row_tags)
    class_names = getattr(split.features[settings.tags_column].feature, "names", None)
    names = named_labels(values, class_names, config, "tags_column", name)
    if names is None:
        raise FtrunError(f"{where}: the {name} split's tags are integers without names: give data.label_names")
    name_of: Callable[[Any], str] = names.__getitem__ if isinstance(next(iter(values), ""), int) else str
    used = {name_of(value) for value in values}
    bad = invalid_tags(used)
    if bad:
        row = next(row for row, row_tags in enumerate(tags) if bad[0] in map(name_of, row_tags))
        raise FtrunError(
            f"{where}: {where_row(config, split, name, row, 'sentence')} {preview(sentences[row])} has the tag {bad[0]!r}, "
            "which is not IOB1/IOB2/IOBES (O, or B-, I-, E- or S- and an entity type)"
        )
    return names, used


def check_list_columns(split: Any, config: RunConfig) -> None:
    """Words and tags must be lists per sentence (of texts; of texts, integers or class labels): text still to be split into words is refused."""
    from datasets import ClassLabel, Value

    for key, what in (("tokens_column", "words"), ("tags_column", "tags")):
        column = getattr(config.data, key)
        feature = split.features[column]
        inner = getattr(feature, "feature", None)
        if inner is None:
            raise FtrunError(f"{config.where('data.' + key)}: column {column!r} holds {describe_feature(feature)}, not a list of {what} per sentence")
        text = isinstance(inner, Value) and inner.dtype in ("string", "large_string")
        tag = text or isinstance(inner, ClassLabel) or (isinstance(inner, Value) and inner.dtype.startswith(("int", "uint")))
        if not (text if key == "tokens_column" else tag):
            raise FtrunError(f"{config.where('data.' + key)}: column {column!r} holds {describe_feature(feature)}, not lists of {what}")


def preview(words: list[str] | None, size: int = 6) -> str:
    """The start of a sentence, to find it by in the data."""
    shown = " ".join((words or [])[:size]) + (" ..." if len(words or ()) > size else "")
    return f"({shown!r})"


TASK = NerTask()


@hookimpl
def ftrun_register_tasks(register):
    register(TASK)
