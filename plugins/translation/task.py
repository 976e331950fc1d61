"""Translation: a text in one language → its translation in another (T5 on WMT16 English→Romanian).

A thin task on the sequence-to-sequence base (``ftrun.plugins.seq2seq``), as ``run_translation.py``:
T5's ``translate English to German: `` prefix, texts from {language: text} pairs or two flat
columns, BLEU and chrF (sacrebleu) of the generated translations.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from ftrun import FtrunError, RunConfig, Splits, check_text_column, describe_value, hookimpl, require_columns, where_row

from ..seq2seq import DEMO_T5, Seq2SeqData, Seq2SeqTask

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedModel

DEMO_DIR = Path(__file__).parent / "data"

#: English names of language codes, for T5's task prefix ("translate English to German: ").
LANGUAGE_NAMES = {
    "ar": "Arabic", "cs": "Czech", "de": "German", "en": "English", "es": "Spanish", "et": "Estonian",
    "fi": "Finnish", "fr": "French", "hi": "Hindi", "it": "Italian", "ja": "Japanese", "kk": "Kazakh",
    "lt": "Lithuanian", "lv": "Latvian", "nl": "Dutch", "pl": "Polish", "pt": "Portuguese", "ro": "Romanian",
    "ru": "Russian", "tr": "Turkish", "uk": "Ukrainian", "zh": "Chinese",
}  # fmt: skip


class TranslationData(Seq2SeqData):
    source_lang: str = Field(description="Language code of the source texts, e.g. en.")
    target_lang: str = Field(description="Language code of the target texts, e.g. de.")
    translation_column: str = Field("translation", description="Column of {language code: text} pairs, as in the Hub's translation datasets.")
    source_column: str | None = Field(None, description="Flat form: column of source texts (instead of translation_column).")
    target_column: str | None = Field(None, description="Flat form: column of target texts (instead of translation_column).")
    source_prefix: str | None = Field(
        None, description='Put before every source text; default: "translate English to German: " (etc.) for T5 models, none for others.'
    )
    max_target_length: int = Field(128, gt=0, description="Truncate target texts to this many tokens; also how long generated translations may be.")


class TranslationTask(Seq2SeqTask):
    name = "translation"
    description = "translate texts from one language to another (sequence to sequence)"
    pipeline_tag = "translation"
    data_config = TranslationData
    output_key = "translation"
    default_metrics = ["bleu", "chrf"]
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
            "config": DEMO_T5,
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

    # -- where the texts are -------------------------------------------------------------

    def pairs(self, batch: dict[str, list], config: RunConfig) -> tuple[list, list]:
        """The source and target texts of a batch, from flat columns or from {language: text} pairs."""
        data: TranslationData = config.data
        if data.source_column:
            return batch[data.source_column], batch[data.target_column]
        pairs = batch[data.translation_column]
        return [pair.get(data.source_lang) for pair in pairs], [pair.get(data.target_lang) for pair in pairs]

    def columns(self, split: Dataset, config: RunConfig) -> list[str]:
        data: TranslationData = config.data
        return [data.source_column, data.target_column] if data.source_column else [data.translation_column]

    def t5_prefix(self, config: RunConfig) -> str:
        source, target = (LANGUAGE_NAMES.get(lang, lang) for lang in (config.data.source_lang, config.data.target_lang))
        return f"translate {source} to {target}: "

    def params_name(self, config: RunConfig) -> str:
        """The language pair as transformers names it: ``translation_en_to_de``."""
        return f"translation_{config.data.source_lang}_to_{config.data.target_lang}"

    def saved_prefix(self, model: PreTrainedModel, config: RunConfig) -> str:
        """The prefix of the model's one ``translation_*`` entry: ``ftrun predict --task translation`` knows no language pair."""
        params = getattr(model.config, "task_specific_params", None) or {}
        pairs = [value for key, value in params.items() if key.startswith("translation_")]
        return pairs[0].get("prefix", "") if len(pairs) == 1 else ""

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
