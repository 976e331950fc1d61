"""Translation: a text in one language → its translation in another (T5 on WMT16 English→Romanian).

The flow of transformers' ``run_translation.py``: a sequence-to-sequence head, T5's task prefix
on the source texts, sources and targets truncated separately, labels padded with -100, and a
``Seq2SeqTrainer`` that evaluates generated translations with BLEU and chrF (sacrebleu).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field
from transformers import AutoModelForSeq2SeqLM

from ftrun import (
    DataConfig,
    FtrunError,
    Metrics,
    RunConfig,
    Splits,
    Task,
    TaskData,
    TokenSequence,
    check_text_column,
    hookimpl,
    merge,
    model_config_dict,
    model_config_of,
    require_columns,
    where_row,
)
from ftrun.data import describe_value

from ..metrics import generation_metrics

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import EvalPrediction, PreTrainedModel, PreTrainedTokenizerBase

DEMO_DIR = Path(__file__).parent / "data"

#: English names of language codes, for T5's task prefix ("translate English to German: ").
LANGUAGE_NAMES = {
    "ar": "Arabic", "cs": "Czech", "de": "German", "en": "English", "es": "Spanish", "et": "Estonian",
    "fi": "Finnish", "fr": "French", "hi": "Hindi", "it": "Italian", "ja": "Japanese", "kk": "Kazakh",
    "lt": "Lithuanian", "lv": "Latvian", "nl": "Dutch", "pl": "Polish", "pt": "Portuguese", "ro": "Romanian",
    "ru": "Russian", "tr": "Turkish", "uk": "Ukrainian", "zh": "Chinese",
}  # fmt: skip


class TranslationData(DataConfig):
    source_lang: str = Field(description="Language code of the source texts, e.g. en.")
    target_lang: str = Field(description="Language code of the target texts, e.g. de.")
    translation_column: str = Field("translation", description="Column of {language code: text} pairs, as in the Hub's translation datasets.")
    source_column: str | None = Field(None, description="Flat form: column of source texts (instead of translation_column).")
    target_column: str | None = Field(None, description="Flat form: column of target texts (instead of translation_column).")
    source_prefix: str | None = Field(
        None, description='Put before every source text; default: "translate English to German: " (etc.) for T5 models, none for others.'
    )
    max_source_length: int = Field(1024, gt=0, description="Truncate source texts to this many tokens.")
    max_target_length: int = Field(128, gt=0, description="Truncate target texts to this many tokens; also how long generated translations may be.")


class TranslationTask(Task):
    name = "translation"
    description = "translate texts from one language to another (sequence to sequence)"
    pipeline_tag = "translation"
    auto_model = AutoModelForSeq2SeqLM
    data_config = TranslationData

    @property
    def training_arguments_class(self) -> type:
        from transformers import Seq2SeqTrainingArguments  # on first use, as Task's (ftrun tasks imports no Trainer)

        return Seq2SeqTrainingArguments

    @property
    def trainer_class(self) -> type:
        from ftrun import Seq2SeqTrainer

        return Seq2SeqTrainer

    #: The metrics score generated text, not the logits of the references' tokens.
    required_training = {"predict_with_generate": True}
    #: run_translation.py's example (t5-small on WMT16 English→Romanian, 3 epochs, batches of 4),
    #: on 1,000 of the 610,000 training pairs: minutes on a laptop, not days.
    defaults = {
        # Translations are scored case-sensitively: a tokenizer trained for a model from a config keeps case.
        "model": {"name": "t5-small", "tokenizer_lowercase": False},
        "data": {
            "dataset": "wmt16",
            "dataset_config": "ro-en",
            "train_split": "train",
            "eval_split": "validation",
            "source_lang": "en",
            "target_lang": "ro",
            "max_train_samples": 1000,
            "max_eval_samples": 200,
        },
        "training": {
            "num_train_epochs": 3,
            "per_device_train_batch_size": 4,
            "per_device_eval_batch_size": 4,
            # T5's own beam size for translation.
            "generation_num_beams": 4,
        },
        "metrics": {"names": ["bleu", "chrf"], "best": "bleu"},
        "predict": {"examples": ["The weather is nice today.", "A man is riding a bike."]},
    }

    #: A real Multi30k English→German sample shipped in the package and a small T5 trained from scratch on it.
    demo = {
        "model": {
            # T5 v1.1's gated feed-forward, without dropout: learns fastest in a short run.
            "config": {
                "model_type": "t5",
                "d_model": 128,
                "d_ff": 256,
                "d_kv": 32,
                "num_heads": 4,
                "num_layers": 2,
                "feed_forward_proj": "gated-gelu",
                "dropout_rate": 0.0,
            },
            "tokenizer_vocab_size": 3000,
            "tokenizer_lowercase": False,
        },
        "data": {
            "train_file": str(DEMO_DIR / "multi30k-train.jsonl.gz"),
            "eval_file": str(DEMO_DIR / "multi30k-eval.jsonl.gz"),
            "source_lang": "en",
            "target_lang": "de",
            # Longer than 99% of the sample's sentences, in tokens.
            "max_source_length": 48,
            "max_target_length": 40,
        },
        # A model trained from scratch wants a higher rate, larger batches and no warmup.
        "training": {
            "num_train_epochs": 3,
            "learning_rate": 3e-3,
            "warmup_steps": 0,
            "per_device_train_batch_size": 32,
            "per_device_eval_batch_size": 64,
        },
        "predict": {"examples": ["A man is riding a bike.", "Two dogs are playing in the snow."]},
    }

    def settle(self, config: RunConfig) -> RunConfig:
        """The source prefix for the model's family, and generation up to ``max_target_length`` tokens unless told otherwise.

        Settled once here, the prefix is the same in encoding, pre-flight and the saved model,
        and is written into the run's manifest. Left alone, generation stops at the model's
        default of 20 tokens and cuts BLEU several-fold.
        """
        settings: TranslationData = config.data
        prefix = source_prefix(settings, model_type(config) if settings.source_prefix is None else None)
        manifest = merge(config.manifest, {"data": {"source_prefix": prefix}})
        training = {"generation_max_length": settings.max_target_length, **config.training}
        return dataclasses.replace(config, data=settings.model_copy(update={"source_prefix": prefix}), training=training, manifest=manifest)

    # -- data stage --------------------------------------------------------------------

    def check_data(self, splits: Splits, config: RunConfig) -> None:
        data: TranslationData = config.data
        if data.max_length is not None:
            raise FtrunError(f"{config.where('data.max_length')}: translation truncates with max_source_length and max_target_length")
        if data.source_lang == data.target_lang:
            raise FtrunError(f"{config.where('data.target_lang')}: the same language as source_lang ({data.source_lang!r})")
        if (data.source_column is None) != (data.target_column is None):
            missing = "target_column" if data.source_column else "source_column"
            raise FtrunError(f"{config.where('data.' + missing)}: needed as well when texts come from flat columns")
        columns = (
            {"source_column": data.source_column, "target_column": data.target_column}
            if data.source_column
            else {"translation_column": data.translation_column}
        )
        for name, split in (("train", splits.train), ("eval", splits.eval)):
            require_columns(split, columns, config, name)
            check_texts(split, config, name)

    def inputs_of(self, split: Dataset, config: RunConfig) -> list[tuple[str, ...]]:
        """The source texts: a source in both splits is an eval example the model was trained on."""
        return [(source,) for batch in batches(split, config.data) for source in pairs_of(batch, config.data)[0]]

    def sequences(self, split: Dataset, data: TaskData, config: RunConfig) -> dict[str, TokenSequence]:
        """Sources (prefixed, as the model reads them) cut at ``max_source_length``, targets at ``max_target_length``."""
        settings: TranslationData = config.data
        sources, targets = pairs_of(split[:], settings)
        return {
            "sources": TokenSequence(
                data.tokenizer([settings.source_prefix + text for text in sources])["input_ids"], settings.max_source_length, "data.max_source_length"
            ),
            "targets": TokenSequence(data.tokenizer(text_target=targets)["input_ids"], settings.max_target_length, "data.max_target_length"),
        }

    def text_of(self, split: Dataset, config: RunConfig) -> Iterable[str]:
        """Sources (prefixed, as the model reads them) and targets: one vocabulary for both languages, as T5's."""
        prefix = config.data.source_prefix
        for batch in batches(split, config.data):
            sources, targets = pairs_of(batch, config.data)
            yield from (prefix + text for text in sources)
            yield from targets

    def encode(self, batch: dict[str, list], data: TaskData, config: RunConfig, split: str) -> dict[str, list]:
        settings: TranslationData = config.data
        sources, targets = pairs_of(batch, settings)
        encoded = data.tokenizer([settings.source_prefix + text for text in sources], max_length=settings.max_source_length, truncation=True)
        encoded["labels"] = data.tokenizer(text_target=targets, max_length=settings.max_target_length, truncation=True)["input_ids"]
        return encoded

    # -- head stage --------------------------------------------------------------------

    def head_kwargs(self, data: TaskData, config: RunConfig) -> dict[str, Any]:
        """The prefix the model expects, in its saved config.

        ``task_specific_params["translation_en_to_de"]["prefix"]`` is where T5's own configs put
        it, and what ``predict`` (and transformers 4's translation pipelines) read.
        """
        return {"task_specific_params": {pair_name(config.data): {"prefix": config.data.source_prefix}}}

    # -- metric stage ------------------------------------------------------------------

    def postprocess(self, outputs: EvalPrediction, features: Any, examples: Any, data: TaskData, config: RunConfig) -> EvalPrediction:
        """Generated ids → ``{"translation", "tokens"}`` per example; the references are the target texts."""
        from transformers import EvalPrediction

        tokenizer = data.tokenizer
        # Generated ids come padded with -100 (which is no token) across batches.
        generated = np.where(outputs.predictions != -100, outputs.predictions, tokenizer.pad_token_id)
        texts = tokenizer.batch_decode(generated, skip_special_tokens=True)
        # Special tokens aside: beam search pads finished translations with </s>, not <pad>.
        lengths = np.count_nonzero(~np.isin(generated, tokenizer.all_special_ids), axis=-1)
        predictions = [{"translation": text.strip(), "tokens": int(length)} for text, length in zip(texts, lengths)]
        references = [text.strip() for text in pairs_of(examples[:], config.data)[1]] if outputs.label_ids is not None else None
        return EvalPrediction(predictions=predictions, label_ids=references)

    def build_metrics(self, config: RunConfig, data: TaskData) -> Metrics:
        """BLEU and chrF of the generated translations, and their mean length in tokens (``gen_len``)."""
        names = config.metrics.names or ["bleu", "chrf"]
        best = config.metrics.best or names[0]
        if best not in names:
            raise FtrunError(f"{config.where('metrics.best')}: {best!r} is not among metrics.names ({', '.join(names)})")
        score = generation_metrics(names, where=config.where("metrics.names"))

        def compute(prediction: EvalPrediction) -> dict[str, float]:
            texts = [translation["translation"] for translation in prediction.predictions]
            lengths = [translation["tokens"] for translation in prediction.predictions]
            return {**score(texts, prediction.label_ids), "gen_len": float(np.mean(lengths))}

        return Metrics(compute=compute, best=best)

    # -- trainer stage -----------------------------------------------------------------

    def data_collator(self, data: TaskData, model: PreTrainedModel | None, config: RunConfig) -> Callable:
        """Pads inputs with the pad token and labels with -100, which the loss ignores.

        As run_translation.py: given the model, the collator makes the decoder inputs from the
        labels, which the model no longer sees when the Trainer computes the loss itself
        (``label_smoothing_factor``).
        """
        from transformers import DataCollatorForSeq2Seq

        return DataCollatorForSeq2Seq(data.tokenizer, model=model, label_pad_token_id=-100)

    # -- predict -----------------------------------------------------------------------

    def predict(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, inputs: list[str], config: RunConfig) -> list[dict[str, str]]:
        """Translations generated with the model's saved prefix and generation config, decoded as at evaluation.

        What transformers 4's translation pipeline did; transformers 5 has no such pipeline.
        """
        import torch
        from transformers import EvalPrediction

        prefix = saved_prefix(model)
        data = TaskData(train=None, eval=None, tokenizer=tokenizer)
        out = []
        for start in range(0, len(inputs), PREDICT_BATCH):
            texts = [prefix + text for text in inputs[start : start + PREDICT_BATCH]]
            batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt").to(model.device)
            with torch.no_grad():
                generated = model.generate(**batch).cpu().numpy()
            translations = self.postprocess(EvalPrediction(predictions=generated, label_ids=None), None, None, data, config).predictions
            out += [{"translation": translation["translation"]} for translation in translations]
        return out

    def format_prediction(self, prediction: dict[str, str]) -> str:
        return prediction["translation"]

    def usage(self, model_dir: str, config: RunConfig) -> str:
        """transformers 5 has no translation pipeline: generate with the saved prefix and settings."""
        return (
            "from transformers import AutoModelForSeq2SeqLM, AutoTokenizer\n"
            f'model = AutoModelForSeq2SeqLM.from_pretrained("{model_dir}")\n'
            f'tokenizer = AutoTokenizer.from_pretrained("{model_dir}")\n'
            f'prefix = model.config.task_specific_params["{pair_name(config.data)}"]["prefix"]\n'
            'inputs = tokenizer([prefix + "A short sentence to translate."], return_tensors="pt")\n'
            "print(tokenizer.batch_decode(model.generate(**inputs), skip_special_tokens=True))"
        )


#: Inputs translated at once by ``predict``.
PREDICT_BATCH = 32


def model_type(config: RunConfig) -> str | None:
    """The family of the model ``[model]`` names, from its config alone (no weights loaded)."""
    if config.model.config is not None:
        return model_config_dict(config).get("model_type")
    return model_config_of(config).model_type


def source_prefix(data: TranslationData, model_type: str | None) -> str:
    """``source_prefix`` if set; else T5's task prefix for T5 models (pre-trained with it; mT5 was not), none for others."""
    if data.source_prefix is not None:
        return data.source_prefix
    if model_type != "t5":
        return ""
    source, target = (LANGUAGE_NAMES.get(lang, lang) for lang in (data.source_lang, data.target_lang))
    return f"translate {source} to {target}: "


def pair_name(data: TranslationData) -> str:
    """The language pair as transformers names it: ``translation_en_to_de``."""
    return f"translation_{data.source_lang}_to_{data.target_lang}"


def saved_prefix(model: PreTrainedModel) -> str:
    """The prefix a model trained by this task expects: its one ``translation_*`` entry's."""
    params = getattr(model.config, "task_specific_params", None) or {}
    pairs = [value for key, value in params.items() if key.startswith("translation_")]
    return pairs[0].get("prefix", "") if len(pairs) == 1 else ""


def pairs_of(batch: dict[str, list], data: TranslationData) -> tuple[list, list]:
    """The source and target texts of a batch, from flat columns or from {language: text} pairs."""
    if data.source_column:
        return batch[data.source_column], batch[data.target_column]
    pairs = batch[data.translation_column]
    return [pair.get(data.source_lang) for pair in pairs], [pair.get(data.target_lang) for pair in pairs]


def batches(split: Dataset, data: TranslationData) -> Iterable[dict[str, list]]:
    """The split's text columns, a thousand rows at a time."""
    columns = [data.source_column, data.target_column] if data.source_column else [data.translation_column]
    return split.select_columns(columns).iter(batch_size=1000)


def check_texts(split: Dataset, config: RunConfig, name: str) -> None:
    """Every row needs a source and a target text (an empty one is a text): a missing one would fail mid-tokenization.

    Languages are read from the rows, not from the column's type: `datasets` loads JSON
    objects whose keys differ from row to row as a ``Json`` column, which lists none.
    """
    data: TranslationData = config.data
    if data.source_column:
        for key in ("source_column", "target_column"):
            check_text_column(split, config, key, name)
        return
    column = data.translation_column
    pairs = split.select_columns([column])[:][column]  # as a list: a Column reads row by row
    bad = next((row for row, pair in enumerate(pairs) if not isinstance(pair, dict)), None)
    if bad is not None:
        what = (
            f"has no {column!r} (null or missing)" if pairs[bad] is None else f"holds {describe_value(pairs[bad])} in {column!r}, not {{language: text}} pairs"
        )
        raise FtrunError(f"{config.where('data.translation_column')}: {where_row(config, split, name, bad)} {what}")
    languages = {lang for pair in pairs for lang, text in pair.items() if text is not None}
    for key in ("source_lang", "target_lang"):
        lang = getattr(data, key)
        if lang not in languages:
            raise FtrunError(
                f"{config.where('data.' + key)}: language {lang!r} not in column {column!r} of the {name} split (languages: {', '.join(sorted(languages))})"
            )
        row = next((row for row, pair in enumerate(pairs) if not isinstance(pair.get(lang), str)), None)
        if row is not None:
            text = pairs[row].get(lang)
            what = f"has no {lang!r} text (null or missing)" if text is None else f"holds {describe_value(text)} as its {lang!r} text"
            raise FtrunError(f"{config.where('data.' + key)}: {where_row(config, split, name, row)} {what}")


TASK = TranslationTask()


@hookimpl
def ftrun_register_tasks(register):
    register(TASK)
