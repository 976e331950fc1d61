"""Tokenizers trained on the training data, for models built from a config."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from ftrun.util.errors import FtrunError

if TYPE_CHECKING:
    from datasets import Dataset

SPECIAL_TOKENS = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]"}

#: Model families whose vocabulary is laid out as T5's (a SentencePiece Unigram model).
T5_FAMILY = ("t5", "mt5", "umt5", "longt5")
#: In T5's order: ``<pad>``=0 (also where the decoder starts), ``</s>``=1, ``<unk>``=2.
T5_SPECIAL_TOKENS = {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}
T5_SENTINELS = [f"<extra_id_{i}>" for i in range(100)]


#: GPT-2's one special token: it ends every text, and is where generation stops and starts.
END_OF_TEXT = "<|endoftext|>"


def train_tokenizer(texts: Iterable[str], model_type: str | None, vocab_size: int, model_max_length: int, lowercase: bool = True) -> PreTrainedTokenizerFast:
    """A tokenizer of the kind ``model_type``'s pretrained checkpoints have, trained on ``texts``.

    A SentencePiece Unigram for the T5 family, a byte-level BPE for decoder-only families
    (GPT-2, Llama, ...: generated text must round-trip, with case and spaces), WordPiece for
    the rest (BERT and the other encoders).
    """
    if model_type in T5_FAMILY:
        return train_t5_unigram(texts, vocab_size, model_max_length, lowercase)
    if is_decoder_only(model_type):
        return train_byte_level_bpe(texts, vocab_size, model_max_length, lowercase)
    return train_wordpiece(texts, vocab_size, model_max_length, lowercase)


def is_decoder_only(model_type: str | None) -> bool:
    """Whether transformers has a causal-LM head for ``model_type`` and no masked-LM one (GPT-2, Llama; not BERT, BART)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES

    return model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def train_byte_level_bpe(texts: Iterable[str], vocab_size: int, model_max_length: int, lowercase: bool = True) -> PreTrainedTokenizerFast:
    """A GPT-2-style byte-level BPE trained on ``texts``, with ``<|endoftext|>`` as its only special token.

    As GPT-2's: every byte is in the vocabulary (no unknown token), spaces are kept in the
    tokens, nothing is added around a text (a task appends the end-of-text token where it wants
    one), and ``<|endoftext|>`` is the beginning, end, and padding token.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    if lowercase:
        tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[END_OF_TEXT], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator(_batches(texts), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, model_max_length=model_max_length, bos_token=END_OF_TEXT, eos_token=END_OF_TEXT, pad_token=END_OF_TEXT
    )


def train_wordpiece(texts: Iterable[str], vocab_size: int, model_max_length: int, lowercase: bool = True) -> PreTrainedTokenizerFast:
    """A BERT-style WordPiece tokenizer trained on ``texts`` (about a second for a few MB).

    Built with the `tokenizers` library the way BERT's own was, so the saved directory
    loads with ``AutoTokenizer`` and works in ``transformers.pipeline``.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token=SPECIAL_TOKENS["unk_token"]))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    # No progress bar: where stdout is no terminal it prints blank lines, before `ftrun check --json`'s JSON.
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS.values()), show_progress=False)
    tokenizer.train_from_iterator(_batches(texts), trainer)
    cls, sep = SPECIAL_TOKENS["cls_token"], SPECIAL_TOKENS["sep_token"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}",
        pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, tokenizer.token_to_id(cls)), (sep, tokenizer.token_to_id(sep))],
    )
    tokenizer.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        model_max_length=model_max_length,
        # As BERT's: segment ids tell the two texts of a pair apart.
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
        **SPECIAL_TOKENS,
    )


def train_t5_unigram(texts: Iterable[str], vocab_size: int, model_max_length: int, lowercase: bool = True) -> PreTrainedTokenizerFast:
    """A T5-style SentencePiece Unigram tokenizer trained on ``texts``, laid out as T5's own.

    ``</s>`` ends every sequence, and the 100 ``<extra_id_N>`` sentinels of span corruption
    close the vocabulary in reverse order (``<extra_id_0>`` has the last id), where T5 code
    looks for them. Saved as a plain tokenizer.json: ``AutoTokenizer`` reloads it exactly,
    where ``T5Tokenizer`` would rebuild it from the vocabulary without its normalizer.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.Unigram())
    # NFKC is what SentencePiece's default normalization (nmt_nfkc) is built on.
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), *([normalizers.Lowercase()] if lowercase else [])])
    # As T5Tokenizer: split on whitespace, and mark the start of each word with "▁".
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)]
    )
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    special = list(T5_SPECIAL_TOKENS.values())
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=special, unk_token=T5_SPECIAL_TOKENS["unk_token"], show_progress=False)
    tokenizer.train_from_iterator(_batches(texts), trainer)
    tokenizer.add_special_tokens(T5_SENTINELS[::-1])
    eos = T5_SPECIAL_TOKENS["eos_token"]
    tokenizer.post_processor = processors.TemplateProcessing(single=f"$A {eos}", pair=f"$A {eos} $B {eos}", special_tokens=[(eos, tokenizer.token_to_id(eos))])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=model_max_length, extra_special_tokens=T5_SENTINELS, **T5_SPECIAL_TOKENS)


def _batches(texts: Iterable[str], size: int = 1000) -> Iterator[list[str]]:
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def cached_tokenizer(split: Any, key: Any, train: Callable[[], PreTrainedTokenizerBase], where: str) -> PreTrainedTokenizerBase:
    """A tokenizer trained on ``split`` once, then loaded from disk next to the split's cache.

    Training is not deterministic from run to run (ties in the merge order), so without
    this an identical second run would get another tokenizer, and tokenize again; and the
    processes of a distributed run, which load the one the first process saved, would each
    train a different one. ``where`` names the manifest key for an error.
    """
    from datasets.fingerprint import Hasher
    from transformers import AutoTokenizer

    from ftrun.stages.distributed import several_processes

    folder = cache_dir_of(split)
    if folder is None:
        if several_processes():
            raise FtrunError(
                f"{where}: none given, and the training data has no writable cache folder through which "
                "the processes could share the one trained on it: name a tokenizer, or train in one process"
            )
        return train()
    directory = folder / f"ftrun-tokenizer-{Hasher.hash((split._fingerprint, key))}"
    if not (directory / "tokenizer_config.json").exists():
        train().save_pretrained(directory)
    return AutoTokenizer.from_pretrained(directory)


def cache_dir_of(split: Dataset) -> Path | None:
    """The folder of a split's own Arrow cache, where derived files are cached too.

    ``None`` for an in-memory split or a read-only folder: then nothing is cached.
    """
    if not split.cache_files:
        return None
    folder = Path(split.cache_files[0]["filename"]).parent
    return folder if os.access(folder, os.W_OK) else None
