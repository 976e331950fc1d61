"""What sequence-to-sequence tasks share: a source text in, a target text generated (translation, summarization).

The flow of transformers' ``run_translation.py`` and ``run_summarization.py``, which are the same
script but for their columns, prefix and metrics: a sequence-to-sequence head, a task prefix on
the sources for T5 models, sources and targets truncated separately, labels padded with -100,
and a ``Seq2SeqTrainer`` that evaluates generated texts, up to ``max_target_length`` tokens (not
the model's default of 20). A task subclasses :class:`Seq2SeqTask` and says where its texts are
(``pairs``, ``columns``), what prefix a T5 model gets (``t5_prefix``), and how a prediction is
named (``output_key``); a third-party seq2seq task does the same.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import Field

from ftrun import FtrunError, Metrics, RunConfig, Task, TaskData, TextDataConfig, TokenSequence, merge, model_config_dict, model_config_of

from .metrics import generation_metrics

if TYPE_CHECKING:
    from datasets import Dataset
    from matplotlib.figure import Figure
    from transformers import EvalPrediction, PreTrainedModel, PreTrainedTokenizerBase

#: Inputs generated for at once by ``predict``.
PREDICT_BATCH = 32
#: The demos' model, trained from scratch in a minute on two CPU cores: T5 v1.1's gated
#: feed-forward, without dropout, learns fastest in a short run.
DEMO_T5 = {
    "model_type": "t5",
    "d_model": 128,
    "d_ff": 256,
    "d_kv": 32,
    "num_heads": 4,
    "num_layers": 2,
    "feed_forward_proj": "gated-gelu",
    "dropout_rate": 0.0,
}


class Seq2SeqData(TextDataConfig):
    source_prefix: str | None = Field(None, description="Put before every source text; default: the task's prefix for T5 models, none for others.")
    max_source_length: int = Field(1024, gt=0, description="Truncate source texts to this many tokens.")
    max_target_length: int = Field(128, gt=0, description="Truncate target texts to this many tokens; also how long generated texts may be.")


class Seq2SeqTask(Task):
    """Base class of tasks that generate a target text from a source text with an encoder-decoder."""

    data_config: ClassVar[type[Seq2SeqData]] = Seq2SeqData
    #: The metrics score generated text, not the logits of the references' tokens.
    required_training = {"predict_with_generate": True}
    #: The key of a prediction's text: ``{"translation": ...}``, ``{"summary_text": ...}``.
    output_key: ClassVar[str]

    def logits_over_labels(self, config: RunConfig) -> bool:
        """Each target token: the logits score each token of the vocabulary."""
        return True

    @property
    def auto_model(self) -> type:
        # Imported on first use: transformers' model classes import torch, which listing the tasks must not.
        from transformers import AutoModelForSeq2SeqLM

        return AutoModelForSeq2SeqLM

    @property
    def training_arguments_class(self) -> type:
        from transformers import Seq2SeqTrainingArguments  # on first use, as Task's (ftrun tasks imports no Trainer)

        return Seq2SeqTrainingArguments

    @property
    def trainer_class(self) -> type:
        from ftrun import Seq2SeqTrainer

        return Seq2SeqTrainer

    # -- what a subclass says ------------------------------------------------------------

    def pairs(self, batch: dict[str, list], config: RunConfig) -> tuple[list, list]:
        """The source and target texts of a batch of raw examples."""
        raise NotImplementedError

    def columns(self, split: Dataset, config: RunConfig) -> list[str]:
        """The columns of ``split`` that ``pairs`` reads."""
        raise NotImplementedError

    def t5_prefix(self, config: RunConfig) -> str:
        """The prefix T5 was pre-trained with for this task (``translate English to German: ``, ``summarize: ``)."""
        raise NotImplementedError

    def params_name(self, config: RunConfig) -> str:
        """Where T5's configs keep a task's settings in ``task_specific_params``: ``translation_en_to_de``, ``summarization``."""
        raise NotImplementedError

    # -- settled once --------------------------------------------------------------------

    def settle(self, config: RunConfig) -> RunConfig:
        """The source prefix for the model's family, and generation up to ``max_target_length`` tokens unless told otherwise.

        Settled once here, the prefix is the same in encoding, pre-flight and the saved model,
        and is written into the run's manifest. Left alone, generation stops at the model's
        default of 20 tokens and cuts BLEU or ROUGE several-fold.
        """
        settings = config.data
        prefix = settings.source_prefix
        if prefix is None:
            prefix = self.t5_prefix(config) if model_type(config) == "t5" else ""  # mT5 was pre-trained with no prefix
        manifest = merge(config.manifest, {"data": {"source_prefix": prefix}})
        training = {"generation_max_length": settings.max_target_length, **config.training}
        return dataclasses.replace(config, data=settings.model_copy(update={"source_prefix": prefix}), training=training, manifest=manifest)

    # -- data stage ----------------------------------------------------------------------

    def batches(self, split: Dataset, config: RunConfig) -> Iterable[dict[str, list]]:
        """The split's text columns, a thousand rows at a time."""
        return split.select_columns(self.columns(split, config)).iter(batch_size=1000)

    def inputs_of(self, split: Dataset, config: RunConfig) -> list[tuple[str, ...]]:
        """The source texts: a source in both splits is an eval example the model was trained on."""
        return [(source,) for batch in self.batches(split, config) for source in self.pairs(batch, config)[0]]

    def text_of(self, split: Dataset, config: RunConfig) -> Iterable[str]:
        """Sources (prefixed, as the model reads them) and targets: one vocabulary for both, as T5's."""
        prefix = config.data.source_prefix
        for batch in self.batches(split, config):
            sources, targets = self.pairs(batch, config)
            yield from (prefix + text for text in sources)
            yield from targets

    def sequences(self, split: Dataset, data: TaskData, config: RunConfig) -> dict[str, TokenSequence]:
        """Sources (prefixed, as the model reads them) cut at ``max_source_length``, targets at ``max_target_length``."""
        settings = config.data
        sources, targets = self.pairs(split.select_columns(self.columns(split, config))[:], config)
        return {
            "sources": TokenSequence(
                data.tokenizer([settings.source_prefix + text for text in sources])["input_ids"], settings.max_source_length, "data.max_source_length"
            ),
            "targets": TokenSequence(data.tokenizer(text_target=targets)["input_ids"], settings.max_target_length, "data.max_target_length"),
        }

    def encode(self, batch: dict[str, list], data: TaskData, config: RunConfig, split: str) -> dict[str, list]:
        settings = config.data
        sources, targets = self.pairs(batch, config)
        encoded = data.tokenizer([settings.source_prefix + text for text in sources], max_length=settings.max_source_length, truncation=True)
        encoded["labels"] = data.tokenizer(text_target=targets, max_length=settings.max_target_length, truncation=True)["input_ids"]
        return encoded

    # -- head stage ----------------------------------------------------------------------

    def head_kwargs(self, data: TaskData, config: RunConfig) -> dict[str, Any]:
        """The prefix the model expects, in its saved config, where T5's own configs put it (and ``predict`` reads it)."""
        return {"task_specific_params": {self.params_name(config): {"prefix": config.data.source_prefix}}}

    # -- metric stage --------------------------------------------------------------------

    def postprocess(self, outputs: EvalPrediction, features: Any, examples: Any, data: TaskData, config: RunConfig) -> EvalPrediction:
        """Generated ids → ``{output_key, "tokens"}`` per example; the references are the target texts."""
        from transformers import EvalPrediction

        tokenizer = data.tokenizer
        # Generated ids come padded with -100 (which is no token) across batches.
        generated = np.where(outputs.predictions != -100, outputs.predictions, tokenizer.pad_token_id)
        texts = tokenizer.batch_decode(generated, skip_special_tokens=True)
        # Special tokens aside: beam search pads finished texts with </s>, not <pad>.
        lengths = np.count_nonzero(~np.isin(generated, tokenizer.all_special_ids), axis=-1)
        predictions = [{self.output_key: text.strip(), "tokens": int(length)} for text, length in zip(texts, lengths)]
        references = [text.strip() for text in self.pairs(examples[:], config)[1]] if outputs.label_ids is not None else None
        return EvalPrediction(predictions=predictions, label_ids=references)

    #: The metrics of ``[metrics] names`` when it names none; the first picks the best checkpoint.
    default_metrics: ClassVar[list[str]]

    def build_metrics(self, config: RunConfig, data: TaskData) -> Metrics:
        """``metrics.names`` of the generated texts (BLEU, chrF, ROUGE, ...), and their mean length in tokens (``gen_len``)."""
        names = config.metrics.names or self.default_metrics
        best = config.metrics.best or names[0]
        if best not in names:
            raise FtrunError(f"{config.where('metrics.best')}: {best!r} is not among metrics.names ({', '.join(names)})")
        score = generation_metrics(names, where=config.where("metrics.names"))

        def compute(prediction: EvalPrediction) -> dict[str, float]:
            texts = [generated[self.output_key] for generated in prediction.predictions]
            lengths = [generated["tokens"] for generated in prediction.predictions]
            return {**score(texts, prediction.label_ids), "gen_len": float(np.mean(lengths))}

        return Metrics(compute=compute, best=best)

    def plots(self, prediction: EvalPrediction, data: TaskData, config: RunConfig) -> dict[str, Figure]:
        """Each generated text's length against its reference's, in tokens (special tokens aside, as ``gen_len`` counts)."""
        from ftrun import plots

        references = data.tokenizer(text_target=list(prediction.label_ids), add_special_tokens=False)["input_ids"]
        return {"lengths": plots.lengths([generated["tokens"] for generated in prediction.predictions], [len(ids) for ids in references])}

    # -- trainer stage -------------------------------------------------------------------

    def data_collator(self, data: TaskData, model: PreTrainedModel | None, config: RunConfig) -> Callable:
        """Pads inputs with the pad token and labels with -100, which the loss ignores.

        As run_translation.py: given the model, the collator makes the decoder inputs from the
        labels, which the model no longer sees when the Trainer computes the loss itself
        (``label_smoothing_factor``).
        """
        from transformers import DataCollatorForSeq2Seq

        return DataCollatorForSeq2Seq(data.tokenizer, model=model, label_pad_token_id=-100)

    # -- predict -------------------------------------------------------------------------

    def predict(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, inputs: list[str], config: RunConfig) -> list[dict[str, str]]:
        """Texts generated with the model's saved prefix and generation config, decoded as at evaluation.

        What transformers 4's translation and summarization pipelines did; transformers 5 has neither.
        """
        import torch
        from transformers import EvalPrediction

        prefix = self.saved_prefix(model, config)
        data = TaskData(train=None, eval=None, tokenizer=tokenizer)
        out = []
        for start in range(0, len(inputs), PREDICT_BATCH):
            texts = [prefix + text for text in inputs[start : start + PREDICT_BATCH]]
            batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt").to(model.device)
            with torch.no_grad():
                generated = model.generate(**batch).cpu().numpy()
            outputs = self.postprocess(EvalPrediction(predictions=generated, label_ids=None), None, None, data, config).predictions
            out += [{self.output_key: output[self.output_key]} for output in outputs]
        return out

    def saved_prefix(self, model: PreTrainedModel, config: RunConfig) -> str:
        """The prefix the model was trained with: its saved ``task_specific_params`` entry's."""
        params = getattr(model.config, "task_specific_params", None) or {}
        return params.get(self.params_name(config), {}).get("prefix", "")

    def format_prediction(self, prediction: dict[str, str]) -> str:
        return prediction[self.output_key]

    def usage(self, model_dir: str, config: RunConfig) -> str:
        """transformers 5 has no translation or summarization pipeline: generate with the saved prefix and settings."""
        return (
            "from transformers import AutoModelForSeq2SeqLM, AutoTokenizer\n"
            f'model = AutoModelForSeq2SeqLM.from_pretrained("{model_dir}")\n'
            f'tokenizer = AutoTokenizer.from_pretrained("{model_dir}")\n'
            f'prefix = model.config.task_specific_params["{self.params_name(config)}"]["prefix"]\n'
            'inputs = tokenizer([prefix + "A text to turn into another."], return_tensors="pt")\n'
            "print(tokenizer.batch_decode(model.generate(**inputs), skip_special_tokens=True))"
        )


def model_type(config: RunConfig) -> str | None:
    """The family of the model ``[model]`` names, from its config alone (no weights loaded)."""
    if config.model.config is not None:
        return model_config_dict(config).get("model_type")
    return model_config_of(config).model_type
