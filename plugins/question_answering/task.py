"""Extractive question answering: a question and a context → the span of the context that answers it (BERT on SQuAD).

What transformers' ``run_qa.py`` does, as a plugin: long contexts cut into overlapping windows
(one example, several features), start and end positions to learn, and post-processing that
maps the best span of an example's windows back to the characters of its context, scored with
SQuAD's exact match and F1. transformers 5 has no question-answering pipeline: evaluation and
``predict`` share the task's own ``postprocess``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from ftrun import FtrunError, Metrics, RunConfig, Splits, Task, TaskData, TextDataConfig, did_you_mean, hookimpl

from ..demo import small_bert
from .answers import best_answers
from .checks import check_split
from .metrics import METRICS, squad_metrics
from .windows import answer_positions, encode_windows, too_long_question, window_offsets

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import EvalPrediction, PreTrainedModel, PreTrainedTokenizerBase

DEMO_DIR = Path(__file__).parent / "data"

#: The keys of one input to predict on.
INPUT_KEYS = ("question", "context", "id")


class QuestionAnsweringData(TextDataConfig):
    id_column: str = Field("id", description="Column holding each question's id, unique within a split.")
    question_column: str = Field("question", description="Column holding the question.")
    context_column: str = Field("context", description="Column holding the text the answer is taken from.")
    answers_column: str = Field(
        "answers",
        description='Column of {"text": [...], "answer_start": [...]}: the reference answers and the character each starts at '
        "in the context, as in the Hub's squad (training uses the first).",
    )
    max_length: int | None = Field(384, gt=0, description="Tokens of one window: the question and a part of the context.")
    doc_stride: int = Field(128, gt=0, description="Tokens of context shared by consecutive windows of a context longer than max_length.")
    max_answer_length: int = Field(30, gt=0, description="The longest answer predicted, in tokens.")


class QuestionAnsweringTask(Task):
    name = "question-answering"
    description = "find the answer to a question in a context (extractive, as SQuAD)"
    pipeline_tag = "question-answering"
    data_config = QuestionAnsweringData
    # The Trainer must drop the eval features' example_id and offset_mapping before batching them.
    required_training = {"remove_unused_columns": True}
    #: run_qa.py's example (bert-base-uncased on SQuAD v1.1, 2 epochs at 3e-5, batches of 12, windows
    #: of 384 tokens with a stride of 128), on 1,000 of the 87,599 training questions and 200 of the
    #: 10,570 validation ones: minutes on a GPU, not hours.
    defaults = {
        "model": {"name": "bert-base-uncased"},
        "data": {
            "dataset": "squad",
            "train_split": "train",
            "eval_split": "validation",
            "max_train_samples": 1000,
            "max_eval_samples": 200,
        },
        "training": {"num_train_epochs": 2, "learning_rate": 3e-5, "per_device_train_batch_size": 12, "per_device_eval_batch_size": 12},
        "metrics": {"names": list(METRICS)},
        "predict": {
            "examples": [
                {
                    "question": "Which team won Super Bowl 50?",
                    "context": "Super Bowl 50 was an American football game to determine the champion of the National Football "
                    "League (NFL) for the 2015 season. The American Football Conference (AFC) champion Denver Broncos "
                    "defeated the National Football Conference (NFC) champion Carolina Panthers 24–10 to earn their "
                    "third Super Bowl title.",
                },
                {
                    "question": "What does the giant panda eat?",
                    "context": "The giant panda is a bear native to the mountains of central China. Although it belongs to "
                    "the order Carnivora, its diet is almost entirely bamboo.",
                },
            ]
        },
    }

    #: A real SQuAD sample shipped in the package and a small BERT trained from scratch on it.
    demo = {
        "model": {
            "config": small_bert(max_positions=256),
            "tokenizer_vocab_size": 4000,
        },
        "data": {
            "train_file": str(DEMO_DIR / "squad-train.jsonl.gz"),
            "eval_file": str(DEMO_DIR / "squad-eval.jsonl.gz"),
            "max_length": 256,
            "doc_stride": 64,
        },
        # A model trained from scratch wants a higher rate and more passes than fine-tuning.
        "training": {"num_train_epochs": 4, "learning_rate": 1e-3, "warmup_steps": 0, "per_device_train_batch_size": 16},
    }

    @property
    def auto_model(self) -> type:
        # Imported on first use: transformers' model classes import torch, which listing the tasks must not.
        from transformers import AutoModelForQuestionAnswering

        return AutoModelForQuestionAnswering

    # -- data stage --------------------------------------------------------------------

    def check_data(self, splits: Splits, config: RunConfig) -> None:
        check_split(splits.train, config, "train")
        check_split(splits.eval, config, "eval")

    def check_tokenizer(self, tokenizer: PreTrainedTokenizerBase, config: RunConfig, where: str) -> None:
        """A fast one: only those map tokens back to the characters of the context."""
        if not tokenizer.is_fast:
            raise FtrunError(
                f"{where}: {type(tokenizer).__name__} is a slow (Python) tokenizer; "
                "question-answering needs a fast one, which maps tokens to characters (offset_mapping)"
            )

    def text_of(self, split: Dataset, config: RunConfig) -> Iterable[str]:
        """Questions, and each context once: several questions share a paragraph."""
        settings: QuestionAnsweringData = config.data
        seen: set[str] = set()
        for batch in split.select_columns([settings.question_column, settings.context_column]).iter(batch_size=1000):
            yield from batch[settings.question_column]
            for context in batch[settings.context_column]:
                if context not in seen:
                    seen.add(context)
                    yield context

    def encode(self, batch: dict[str, list], data: TaskData, config: RunConfig, split: str) -> dict[str, list]:
        """Windows with start and end positions (train), or with their example's id and the context's offsets (eval, predict)."""
        settings: QuestionAnsweringData = config.data
        tokenizer = data.tokenizer
        # As run_qa.py: some SQuAD questions start with spaces, which would only take room from the context.
        questions = [question.lstrip() for question in batch[settings.question_column]]
        too_long = too_long_question(tokenizer, questions, settings.max_length, settings.doc_stride)
        if too_long is not None:
            index, tokens = too_long
            raise FtrunError(
                f"{config.where('data.max_length')}: the question of the {split} split's example {batch[settings.id_column][index]!r} "
                f"takes {tokens} tokens, which leaves no more than doc_stride ({settings.doc_stride}) of the {settings.max_length} "
                "for its context; raise max_length or lower doc_stride"
            )
        encoded = encode_windows(tokenizer, questions, batch[settings.context_column], settings.max_length, settings.doc_stride)
        if split == "train":
            encoded["start_positions"], encoded["end_positions"] = answer_positions(encoded, batch[settings.answers_column], tokenizer)
            del encoded["offset_mapping"]
        else:
            encoded["example_id"] = [batch[settings.id_column][example] for example in encoded["overflow_to_sample_mapping"]]
            encoded["offset_mapping"] = window_offsets(encoded, tokenizer)
        del encoded["overflow_to_sample_mapping"]
        return encoded

    def postprocess(self, outputs: EvalPrediction, features: Dataset, examples: Dataset, data: TaskData, config: RunConfig) -> EvalPrediction:
        """The best span of each example's windows, as text of its context; its reference texts, where it has answers."""
        from transformers import EvalPrediction

        settings: QuestionAnsweringData = config.data
        start_logits, end_logits = outputs.predictions[:2]  # a model may return more (hidden states, attentions)
        windows = features.select_columns(["example_id", "offset_mapping"])[:]  # as lists: a Column reads row by row
        has_answers = settings.answers_column in examples.column_names
        columns = [settings.id_column, settings.context_column, *([settings.answers_column] if has_answers else [])]
        raw = examples.select_columns(columns)[:]
        answers = best_answers(
            start_logits,
            end_logits,
            windows["example_id"],
            windows["offset_mapping"],
            raw[settings.id_column],
            raw[settings.context_column],
            settings.max_answer_length,
        )
        references = [answer["text"] for answer in raw[settings.answers_column]] if has_answers else None
        return EvalPrediction(predictions=answers, label_ids=references)

    # -- metric stage ------------------------------------------------------------------

    def build_metrics(self, config: RunConfig, data: TaskData) -> Metrics:
        names = config.metrics.names or list(METRICS)
        unknown = [name for name in names if name not in METRICS]
        if unknown:
            raise FtrunError(f"{config.where('metrics.names')}: {unknown[0]!r} is not a question-answering metric (choose from {', '.join(METRICS)})")
        # F1 picks the best checkpoint unless only exact_match is asked for (so the defaults name no best).
        best = config.metrics.best or ("f1" if "f1" in names else names[0])
        if best not in names:
            raise FtrunError(f"{config.where('metrics.best')}: {best!r} is not among metrics.names ({', '.join(names)})")
        return Metrics(compute=squad_metrics(names), best=best)

    # -- predict -----------------------------------------------------------------------

    def read_input(self, value: str | dict[str, Any], where: str, config: RunConfig | None = None) -> dict[str, str]:
        """A table with ``question`` and ``context`` (and, ignored, an ``id``), or the text ``question<TAB>context``."""
        if isinstance(value, str):
            question, tab, context = value.partition("\t")
            if not tab:
                raise FtrunError(f"{where}: expected a question and its context separated by a tab, or a table with question and context")
            value = {"question": question, "context": context}
        if not isinstance(value, dict):
            raise FtrunError(f"{where}: expected a table with question and context, got {type(value).__name__} {value!r}")
        for key in value:
            if key not in INPUT_KEYS:
                raise FtrunError(f"{where}: unknown key {key!r}{did_you_mean(key, INPUT_KEYS)}; an input has question, context and optionally id")
        for key in ("question", "context"):
            text = value.get(key)
            if not isinstance(text, str) or not text.strip():
                got = "nothing" if text is None else repr(text)
                raise FtrunError(f"{where}: {key} must be a text that is not empty, got {got}")
        return {"question": value["question"], "context": value["context"]}

    def example_input(self, config: RunConfig) -> dict[str, str]:
        """The first ``[predict]`` example as the JSON object ``ftrun predict --json-input`` takes."""
        return self.read_input(super().example_input(config), config.where("predict.examples"), config)

    def predict(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, inputs: list[dict[str, str]], config: RunConfig) -> list[dict[str, Any]]:
        """The shared predict (encode, the model, ``postprocess``) on the inputs laid out in the run's columns and numbered.

        Post-processing finds the windows of an input by its number.
        """
        settings: QuestionAnsweringData = config.data
        examples = [
            {settings.id_column: str(number), settings.question_column: given["question"], settings.context_column: given["context"]}
            for number, given in enumerate(inputs)
        ]
        return super().predict(model, tokenizer, examples, config)

    def format_prediction(self, prediction: dict[str, Any]) -> str:
        if not prediction["answer"]:
            return "no answer"
        return f"{prediction['answer']!r} ({prediction['score']:.3f})"

    def usage(self, model_dir: str, config: RunConfig) -> str:
        """transformers 5 has no question-answering pipeline: the best span, by hand, within one window."""
        settings: QuestionAnsweringData = config.data
        example = self.example_input(config)
        return (
            "import torch\n"
            "from transformers import AutoModelForQuestionAnswering, AutoTokenizer\n"
            f'model = AutoModelForQuestionAnswering.from_pretrained("{model_dir}")\n'
            f'tokenizer = AutoTokenizer.from_pretrained("{model_dir}")\n'
            f"question, context = {example['question']!r}, {example['context']!r}\n"
            f'inputs = tokenizer(question, context, truncation="only_second", max_length={settings.max_length}, '
            'return_offsets_mapping=True, return_tensors="pt")\n'
            'offsets = inputs.pop("offset_mapping")[0]\n'
            "with torch.no_grad():\n"
            "    out = model(**inputs)\n"
            "# Spans of the context only (sequence 1), start <= end, at most max_answer_length tokens.\n"
            "in_context = torch.tensor([sequence == 1 for sequence in inputs.sequence_ids(0)])\n"
            "scores = out.start_logits[0][:, None] + out.end_logits[0][None, :]\n"
            f"valid = torch.ones_like(scores, dtype=torch.bool).triu().tril({settings.max_answer_length - 1}) "
            "& in_context[:, None] & in_context[None, :]\n"
            "start, end = divmod(int(scores.masked_fill(~valid, -torch.inf).argmax()), scores.shape[1])\n"
            "print(context[offsets[start][0] : offsets[end][1]])"
        )

    # -- pre-flight --------------------------------------------------------------------

    def inputs_of(self, split: Dataset, config: RunConfig) -> list[tuple[str, ...]]:
        """Each question with its context: asked of the same paragraph in both splits, it is an eval example train has."""
        settings: QuestionAnsweringData = config.data
        columns = split.select_columns([settings.question_column, settings.context_column])[:]
        return list(zip(columns[settings.question_column], columns[settings.context_column]))

    def inputs_from(self, batch: dict[str, list], config: RunConfig, source: Path | None = None) -> list[dict[str, str]]:
        """Each row's question and context, as ``read_input`` takes them."""
        settings: QuestionAnsweringData = config.data
        return [{"question": question, "context": context} for question, context in zip(batch[settings.question_column], batch[settings.context_column])]

    def sequences(self, split: Dataset, data: TaskData, config: RunConfig) -> dict[str, Any]:
        """None: a context longer than ``max_length`` is cut into windows, not truncated, and the features count them."""
        return {}


TASK = QuestionAnsweringTask()


@hookimpl
def ftrun_register_tasks(register):
    register(TASK)
