"""Multiple choice: a context, a question and N choices → the right choice (RoBERTa on SWAG, as transformers' ``run_swag.py``).

Each choice is read as the pair (context, question + " " + choice) and the model scores the N
pairs of an example together (``AutoModelForMultipleChoice``: features of shape ``(choices,
tokens)``). Truncation cuts the context only, so that every choice is read whole. The length a
batch is padded to is an example's longest choice: length grouping, sorted evaluation and the
pre-flight's padding estimate use it (``Task.example_lengths``). transformers has no
multiple-choice pipeline: prediction runs the model over the choices and takes the best.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from ftrun import (
    FtrunError,
    Metrics,
    Preflight,
    RunConfig,
    Splits,
    Task,
    TaskData,
    TextDataConfig,
    TokenSequence,
    check_text_column,
    describe_value,
    hookimpl,
    require_columns,
    tokenizer_limit,
    where_row,
)

from ..demo import small_bert

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import EvalPrediction, PreTrainedModel, PreTrainedTokenizerBase

DEMO_DIR = Path(__file__).parent / "data"
#: The metrics this task computes: the share of examples whose right choice scores highest.
METRICS = ("accuracy",)
#: The keys of an input to predict on (``read_input``).
INPUT_KEYS = ("context", "question", "choices")
#: The right answer at one position in more than this many times its fair share (1 / choices) of
#: the train split: a model can learn the position instead of reading the choices.
SKEWED_POSITION = 1.5
#: How SWAG's columns are read: what the defaults name, and applies only to the ``swag`` dataset.
SWAG_COLUMNS = {"context_column": "sent1", "question_column": "sent2", "choices_column": [f"ending{i}" for i in range(4)], "label_column": "label"}


class MultipleChoiceData(TextDataConfig):
    context_column: str = Field("context", description="Column holding the context (SWAG's first sentence): the text truncation cuts.")
    question_column: str | None = Field(
        "question", description="Column holding the question (SWAG's second sentence's start), read before each choice; empty or unset: none."
    )
    choices_column: str | list[str] = Field(
        "choices", description="One column holding each example's list of choices, or a list of columns holding one choice each (SWAG's ending0-3)."
    )
    label_column: str = Field("label", description="Column holding the right choice's index, from 0.")


class MultipleChoiceTask(Task):
    name = "multiple-choice"
    description = "pick the right one of N choices for a context and a question (SWAG)"
    pipeline_tag = "multiple-choice"
    data_config = MultipleChoiceData
    #: run_swag.py's example (roberta-base on SWAG's regular configuration, 3 epochs at 5e-5,
    #: batches of 16), on 1,000 of the 73,546 training questions and 200 of the 20,006 validation
    #: ones, as the other built-in tasks' recipes: minutes on a GPU, not hours.
    defaults = {
        "model": {"name": "FacebookAI/roberta-base"},
        "data": {
            "dataset": "swag",
            "dataset_config": "regular",
            "train_split": "train",
            "eval_split": "validation",
            **SWAG_COLUMNS,
            "max_train_samples": 1000,
            "max_eval_samples": 200,
        },
        "training": {"num_train_epochs": 3, "learning_rate": 5e-5, "per_device_train_batch_size": 16, "per_device_eval_batch_size": 16},
        "metrics": {"names": list(METRICS)},
        "predict": {
            "examples": [
                {
                    "context": "Members of the procession walk down the street holding small horn brass instruments.",
                    "question": "A drum line",
                    "choices": [
                        "passes by walking down the street playing their instruments.",
                        "has heard approaching them.",
                        "arrives and they're outside dancing and asleep.",
                        "turns the lead singer watches the performance.",
                    ],
                },
            ]
        },
    }

    #: 4-choice questions built from a real SQuAD sample (examples/multiple_choice/build_squad_mc.py),
    #: shipped in the package, and a small BERT trained from scratch on them.
    demo = {
        "model": {"config": small_bert(max_positions=256), "tokenizer_vocab_size": 4000},
        "data": {"train_file": str(DEMO_DIR / "squad-mc-train.jsonl.gz"), "eval_file": str(DEMO_DIR / "squad-mc-eval.jsonl.gz"), "max_length": 256},
        # A model trained from scratch wants a higher rate than fine-tuning.
        "training": {"num_train_epochs": 3, "learning_rate": 1e-3, "warmup_steps": 0, "per_device_train_batch_size": 16},
        "predict": {
            "examples": [
                {
                    "context": "Super Bowl 50 was an American football game to determine the champion of the National Football League "
                    "(NFL) for the 2015 season. The Denver Broncos defeated the Carolina Panthers 24–10 to earn their third Super Bowl title.",
                    "question": "Which team won Super Bowl 50?",
                    "choices": ["Carolina Panthers", "Denver Broncos", "2015", "24–10"],
                },
            ]
        },
    }

    @property
    def auto_model(self) -> type:
        # Imported on first use: transformers' model classes import torch, which listing the tasks must not.
        from transformers import AutoModelForMultipleChoice

        return AutoModelForMultipleChoice

    # -- data stage --------------------------------------------------------------------

    def check_data(self, splits: Splits, config: RunConfig) -> None:
        """Columns, texts, one number of choices (two or more) in both splits, and labels that index a choice.

        ``None``: the head has no label names, it scores each choice.
        """
        count = check_split(splits.train, config, "train")
        check_split(splits.eval, config, "eval", count)

    def logits_over_labels(self, config: RunConfig) -> bool:
        """One score per choice: the logits of an example are over its choices, and its label is the right one's index."""
        return True

    def text_of(self, split: Dataset, config: RunConfig) -> Iterable[str]:
        for contexts, questions, choices in columns_of(split, config):
            yield from contexts
            yield from (question for question in questions if question)
            yield from (choice for example in choices for choice in example)

    def encode(self, batch: dict[str, list], data: TaskData, config: RunConfig, split: str) -> dict[str, list]:
        """Each example's choices as pairs (context, question + choice) of one feature ``(choices, tokens)``; its label where it has one."""
        settings: MultipleChoiceData = config.data
        contexts, questions, choices = read_columns(batch, settings)
        firsts, seconds = pairs_of(contexts, questions, choices)
        limit = settings.max_length or tokenizer_limit(data.tokenizer)
        if limit:
            check_room(data.tokenizer, seconds, limit, config, split)
        encoded = data.tokenizer(firsts, seconds, truncation="only_first" if limit else False, max_length=limit)
        widths = [len(example) for example in choices]
        starts = np.cumsum([0, *widths])
        features = {key: [values[start:end] for start, end in zip(starts, starts[1:])] for key, values in encoded.items()}
        if split != "predict":
            features["labels"] = list(batch[settings.label_column])
        return features

    def data_collator(self, data: TaskData, model: PreTrainedModel | None, config: RunConfig) -> Any:
        return MultipleChoiceCollator(data.tokenizer)

    # -- metric stage ------------------------------------------------------------------

    def build_metrics(self, config: RunConfig, data: TaskData) -> Metrics:
        names = config.metrics.names or list(METRICS)
        unknown = [name for name in names if name not in METRICS]
        if unknown:
            raise FtrunError(f"{config.where('metrics.names')}: {unknown[0]!r} is not a multiple-choice metric (choose from {', '.join(METRICS)})")
        best = config.metrics.best or "accuracy"
        if best not in names:
            raise FtrunError(f"{config.where('metrics.best')}: {best!r} is not among metrics.names ({', '.join(names)})")
        return Metrics(compute=accuracy, best=best)

    # -- pre-flight --------------------------------------------------------------------

    def inputs_of(self, split: Dataset, config: RunConfig) -> list[tuple[str, ...]]:
        """Each example's context, question (where the data has them) and choices: for the empty, duplicate and overlap checks."""
        return [
            (context, *([question] if question is not None else []), *example)
            for contexts, questions, choices in columns_of(split, config)
            for context, question, example in zip(contexts, questions, choices)
        ]

    def labels_of(self, split: Dataset, config: RunConfig) -> list[list[str]]:
        """Where the right answer sits: ``choice 0``, ``choice 1``, ... (its count per position is the pre-flight's label count)."""
        column = config.data.label_column
        return [[f"choice {label}"] for label in split.select_columns([column])[:][column]]

    def sequences(self, split: Dataset, data: TaskData, config: RunConfig) -> dict[str, TokenSequence]:
        """Every pair the model reads (one per choice), untruncated; truncation cuts the context (the first text) only."""
        contexts, questions, choices = read_columns(split[:], config.data)
        firsts, seconds = pairs_of(contexts, questions, choices)
        ids = data.tokenizer(firsts, seconds, truncation=False)["input_ids"]
        alone = [data.tokenizer(side, add_special_tokens=False)["input_ids"] for side in (firsts, seconds)]
        pairs = [(len(first), len(second)) for first, second in zip(*alone)]
        limit = config.data.max_length or tokenizer_limit(data.tokenizer)
        return {"pairs": TokenSequence(ids, limit, "data.max_length", pairs, truncation="only_first")}

    def preflight(self, config: RunConfig, data: TaskData) -> Preflight:
        """The shared report, and where the right answer sits in the train split: a skewed position is a shortcut a model learns."""
        report = super().preflight(config, data)
        counts = report.splits["train"].labels or {}
        total = sum(counts.values())
        if total:
            choices = number_of_choices(data.raw.train, config) if data.raw is not None else len(counts)
            position, most = max(counts.items(), key=lambda item: item[1])
            if most / total > SKEWED_POSITION / choices:
                report.warn(
                    "data.label_column",
                    f"the right answer is {position} in {most / total:.0%} of the train split's examples (of {choices} choices, "
                    f"{1 / choices:.0%} each is even): a model can learn the position instead of reading the choices; shuffle the choices",
                )
        return report

    # -- predict -----------------------------------------------------------------------

    def read_input(self, value: str | dict[str, Any], where: str, config: RunConfig | None = None) -> dict[str, Any]:
        """A table ``{context, question, choices}`` (the question may be empty), or the line ``context<TAB>question<TAB>choice<TAB>choice...``."""
        if isinstance(value, str):
            context, question, *choices = value.split("\t") + ([""] if value.count("\t") < 1 else [])
            value = {"context": context, "question": question, "choices": choices}
        if not isinstance(value, dict):
            raise FtrunError(f"{where}: expected a table with context, question and choices, got {type(value).__name__} {value!r}")
        unknown = [key for key in value if key not in INPUT_KEYS]
        if unknown:
            raise FtrunError(f"{where}: unknown key {unknown[0]!r}; an input has context, choices and optionally question")
        context, question, choices = value.get("context"), value.get("question", ""), value.get("choices")
        if not isinstance(context, str) or not context.strip():
            raise FtrunError(f"{where}: context must be a text that is not empty, got {'nothing' if context is None else repr(context)}")
        if not isinstance(question, str):
            raise FtrunError(f"{where}: question must be a text (it may be empty), got {question!r}")
        if not isinstance(choices, list) or len(choices) < 2:
            raise FtrunError(
                f"{where}: choices must be a list of two or more texts (a line: context, question and the choices separated by tabs), got {choices!r}"
            )
        bad = next((number for number, choice in enumerate(choices) if not isinstance(choice, str) or not choice.strip()), None)
        if bad is not None:
            raise FtrunError(f"{where}: choice {bad} must be a text that is not empty, got {choices[bad]!r}")
        return {"context": context, "question": question, "choices": choices}

    def inputs_from(self, batch: dict[str, list], config: RunConfig, source: Path | None = None) -> list[dict[str, Any]]:
        """Each row's context, question and choices, as ``read_input`` takes them."""
        contexts, questions, choices = read_columns(batch, config.data)
        return [{"context": context, "question": question or "", "choices": list(example)} for context, question, example in zip(contexts, questions, choices)]

    def example_input(self, config: RunConfig) -> dict[str, Any] | None:
        example = super().example_input(config)
        return None if example is None else self.read_input(example, config.where("predict.examples"), config)

    def predict(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, inputs: list[dict[str, Any]], config: RunConfig) -> list[dict[str, Any]]:
        """The index of the best choice, its text and every choice's probability, for each input.

        Inputs are laid out in this task's own columns (``context``, ``question``, ``choices``),
        whatever the run's data named, and predicted in groups of one number of choices: a
        batch of the model holds one.
        """
        laid_out = config.data.model_copy(update={"context_column": "context", "question_column": "question", "choices_column": "choices"})
        own = dataclasses.replace(config, data=laid_out)
        predictions: list[dict[str, Any]] = [{}] * len(inputs)
        for width in sorted({len(given["choices"]) for given in inputs}):
            numbers = [number for number, given in enumerate(inputs) if len(given["choices"]) == width]
            logits = super().predict(model, tokenizer, [inputs[number] for number in numbers], own)
            for number, scores in zip(numbers, logits):
                probabilities = softmax(np.asarray(scores, dtype=np.float64))
                best = int(np.argmax(probabilities))
                predictions[number] = {"index": best, "choice": inputs[number]["choices"][best], "probabilities": probabilities.tolist()}
        return predictions

    def format_prediction(self, prediction: dict[str, Any]) -> str:
        return f"{prediction['index']}: {prediction['choice']!r} ({prediction['probabilities'][prediction['index']]:.3f})"

    def usage(self, model_dir: str, config: RunConfig) -> str:
        """transformers has no multiple-choice pipeline: the model scores the choices of one example, read as encode reads them."""
        example = self.example_input(config) or {"context": "...", "question": "...", "choices": ["...", "..."]}
        limit = config.data.max_length
        truncation = f', truncation="only_first", max_length={limit}' if limit else ', truncation="only_first"'
        return (
            "import torch\n"
            "from transformers import AutoModelForMultipleChoice, AutoTokenizer\n"
            f'model = AutoModelForMultipleChoice.from_pretrained("{model_dir}")\n'
            f'tokenizer = AutoTokenizer.from_pretrained("{model_dir}")\n'
            f"context, question, choices = {example['context']!r}, {example['question']!r}, {example['choices']!r}\n"
            "# Each choice is the pair (context, question + choice); truncation cuts the context only.\n"
            'pairs = [f"{question} {choice}" if question else choice for choice in choices]\n'
            f'inputs = tokenizer([context] * len(choices), pairs{truncation}, padding=True, return_tensors="pt")\n'
            "with torch.no_grad():\n"
            "    logits = model(**{key: value.unsqueeze(0) for key, value in inputs.items()}).logits[0]\n"
            "probabilities = logits.softmax(-1)\n"
            "print(choices[int(probabilities.argmax())], probabilities.tolist())"
        )


class MultipleChoiceCollator:
    """Pads a batch of ``(choices, tokens)`` features to ``(batch, choices, longest)``: flattened, padded by the tokenizer, reshaped.

    What transformers' ``DataCollatorForMultipleChoice`` does, but for features without labels
    (``ftrun predict``'s), which it refuses.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        labels = [feature["labels"] for feature in features] if "labels" in features[0] else None
        choices = len(features[0]["input_ids"])
        flat = [{key: values[i] for key, values in feature.items() if key != "labels"} for feature in features for i in range(choices)]
        batch = self.tokenizer.pad(flat, padding=True, return_tensors="pt")
        batch = {key: value.view(len(features), choices, -1) for key, value in batch.items()}
        if labels is not None:
            batch["labels"] = torch.tensor(labels, dtype=torch.int64)
        return batch


def accuracy(prediction: EvalPrediction) -> dict[str, float]:
    return {"accuracy": float(np.mean(np.argmax(prediction.predictions, axis=-1) == prediction.label_ids))}


def softmax(scores: np.ndarray) -> np.ndarray:
    exp = np.exp(scores - scores.max())
    return exp / exp.sum()


def question_of(settings: MultipleChoiceData) -> str | None:
    """The question column, or ``None`` where the data has none (an empty key)."""
    return settings.question_column or None


def read_columns(batch: dict[str, list], settings: MultipleChoiceData) -> tuple[list[str], list[str | None], list[list[str]]]:
    """A batch's contexts, questions (``None`` without a question column) and each example's choices, from the columns ``[data]`` names."""
    contexts = list(batch[settings.context_column])
    question = question_of(settings)
    questions = list(batch[question]) if question else [None] * len(contexts)
    if isinstance(settings.choices_column, str):
        choices = [list(example) for example in batch[settings.choices_column]]
    else:
        choices = [list(example) for example in zip(*(batch[column] for column in settings.choices_column))]
    return contexts, questions, choices


def columns_of(split: Dataset, config: RunConfig) -> Iterable[tuple[list[str], list[str | None], list[list[str]]]]:
    """``read_columns`` over a whole split, a thousand rows at a time."""
    settings: MultipleChoiceData = config.data
    columns = [settings.context_column, *([question_of(settings)] if question_of(settings) else []), *choice_columns(settings)]
    for batch in split.select_columns(columns).iter(batch_size=1000):
        yield read_columns(batch, settings)


def choice_columns(settings: MultipleChoiceData) -> list[str]:
    return [settings.choices_column] if isinstance(settings.choices_column, str) else list(settings.choices_column)


def pairs_of(contexts: list[str], questions: list[str | None], choices: list[list[str]]) -> tuple[list[str], list[str]]:
    """Every choice as the pair (context, question + " " + choice), example after example, as run_swag.py reads SWAG."""
    firsts, seconds = [], []
    for context, question, example in zip(contexts, questions, choices):
        for choice in example:
            firsts.append(context)
            seconds.append(f"{question} {choice}" if question else choice)
    return firsts, seconds


def check_room(tokenizer: PreTrainedTokenizerBase, seconds: list[str], limit: int, config: RunConfig, split: str) -> None:
    """Truncation cuts the context only: a question and choice that fill ``limit`` alone leave it no room, which is one line, not a tokenizer's panic."""
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    for text, ids in zip(seconds, tokenizer(seconds, add_special_tokens=False)["input_ids"]):
        if len(ids) + specials >= limit:
            raise FtrunError(
                f"{config.where('data.max_length')}: in the {split} split, the question and choice {text[:80]!r} take {len(ids) + specials} "
                f"tokens with the special tokens, which leaves no room for the context in {limit}: raise max_length"
            )


def number_of_choices(split: Dataset, config: RunConfig) -> int:
    settings: MultipleChoiceData = config.data
    if not isinstance(settings.choices_column, str):
        return len(settings.choices_column)
    first = split[0][settings.choices_column] if len(split) else []
    return len(first) if isinstance(first, list) else 0


def check_split(split: Dataset, config: RunConfig, name: str, expected: int | None = None) -> int:
    """Check one split's columns, texts, choices and labels; return its number of choices.

    Every example has the same number of choices (two or more), that of the train split in the
    eval split (``expected``): the head scores a batch of one number of choices.
    """
    settings: MultipleChoiceData = config.data
    question = question_of(settings)
    columns = {"context_column": settings.context_column, "question_column": question, "label_column": settings.label_column}
    require_columns(split, columns, config, name)
    for column in choice_columns(settings):
        require_columns(split, {"choices_column": column}, config, name)
    for key in ("context_column", "question_column") if question else ("context_column",):
        check_text_column(split, config, key, name)
    where_choices = config.where("data.choices_column")
    count = expected
    if isinstance(settings.choices_column, str):
        values = split.select_columns([settings.choices_column])[:][settings.choices_column]
        for row, example in enumerate(values):
            if not isinstance(example, list):
                raise FtrunError(f"{where_choices}: {where_row(config, split, name, row)} holds {describe_value(example)}, not a list of choices")
    else:
        table = split.select_columns(settings.choices_column)[:]
        values = [list(example) for example in zip(*(table[column] for column in settings.choices_column))]
    for row, example in enumerate(values):
        count = len(example) if count is None else count
        if len(example) != count:
            had = "the train split's" if expected is not None else "its first row's"
            raise FtrunError(
                f"{where_choices}: {where_row(config, split, name, row)} has {len(example)} choices, not {count} ({had}): every example needs as many"
            )
        bad = next((i for i, choice in enumerate(example) if not isinstance(choice, str)), None)
        if bad is not None:
            raise FtrunError(f"{where_choices}: {where_row(config, split, name, row)}: choice {bad} is {describe_value(example[bad])}, not a text")
    if count is not None and count < 2:
        raise FtrunError(f"{where_choices}: the {name} split's examples have {count} choice; multiple choice needs two or more")
    labels = split.select_columns([settings.label_column])[:][settings.label_column]
    for row, label in enumerate(labels):
        is_index = isinstance(label, int) and not isinstance(label, bool)
        if not is_index or not 0 <= label < (count or 0):
            raise FtrunError(
                f"{config.where('data.label_column')}: {where_row(config, split, name, row)} has the label {label if is_index else describe_value(label)}: "
                f"a label is the index of the right choice, 0 to {(count or 1) - 1}"
            )
    return count or 0


TASK = MultipleChoiceTask()


@hookimpl
def ftrun_register_tasks(register):
    register(TASK)
