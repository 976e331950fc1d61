"""Causal language modelling: continue a text (GPT-2 on WikiText-2), as ``run_clm.py`` and TRL's SFT do it.

Three forms of data, by the columns ``[data]`` names:

- plain text (``text_column``): each text ended with the end-of-text token, then packed into
  blocks of ``block_size`` tokens, the loss on every token (run_clm.py's ``group_texts``);
- prompt and completion (``prompt_column``, ``completion_column``): the loss on the completion
  and its end-of-text token only (TRL's completion-only loss);
- chat (``messages_column``: lists of ``{role, content}`` turns): formatted with the tokenizer's
  chat template, the loss on the assistant turns only.

Prompt/completion and chat examples are packed too: each batch is one row of its examples
end to end, with position ids restarting per example, which transformers' models turn into a
mask that keeps the examples from attending to each other (``DataCollatorWithFlattening``).
Where a model does not (its logits on a packed row differ from those on the examples alone),
they are padded instead, and the run's summary says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field, model_validator

from ftrun import (
    FtrunError,
    Metrics,
    MetricsConfig,
    Preflight,
    RunConfig,
    Section,
    Splits,
    Task,
    TaskData,
    TextDataConfig,
    TokenSequence,
    check_text_column,
    describe_value,
    hookimpl,
    require_columns,
    where_row,
)

from ..metrics import generation_metrics

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DEMO_DIR = Path(__file__).parent / "data"

#: ChatML, for a tokenizer that has no chat template of its own (one trained here, GPT-2's).
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

CHATML_MARKERS = ("<|im_start|>", "<|im_end|>")

#: run_clm.py's largest default block: longer ones cost memory quadratically for little gain.
MAX_DEFAULT_BLOCK = 1024


class CausalLMData(TextDataConfig):
    text_column: str = Field("text", description="Column of plain texts: ended with the end-of-text token and packed into blocks.")
    prompt_column: str | None = Field(None, description="Column of prompts (with completion_column): the loss is on the completion only.")
    completion_column: str | None = Field(None, description="Column of completions of the prompts.")
    messages_column: str | None = Field(
        None, description="Column of chats (lists of {role, content} turns), formatted with the chat template: the loss is on the assistant turns only."
    )
    chat_template: str | None = Field(None, description="Jinja chat template; default: the tokenizer's own, else ChatML.")
    block_size: int | None = Field(
        None, gt=0, description="Tokens per packed block of plain text; default: the model's length, at most 1024. Other forms: max_length."
    )
    packing: bool = Field(True, description="Pack examples (plain text into blocks; prompt/completion and chat into batches without padding).")

    @model_validator(mode="after")
    def _one_form(self) -> CausalLMData:
        if (self.prompt_column is None) != (self.completion_column is None):
            missing = "completion_column" if self.prompt_column else "prompt_column"
            raise ValueError(f"{missing}: needed as well for prompt/completion data")
        if self.messages_column and self.prompt_column:
            raise ValueError("messages_column: give either chats (messages_column) or prompt_column/completion_column, not both")
        return self

    @property
    def form(self) -> str:
        """``text``, ``prompt`` or ``chat``: which columns the examples come from."""
        return "chat" if self.messages_column else "prompt" if self.prompt_column else "text"


class CausalLMMetrics(MetricsConfig):
    generate_examples: int = Field(
        0, ge=0, description="Eval examples (prompt/completion or chat) whose completions are generated and scored at each evaluation."
    )


class GenerationSettings(Section):
    """``[generation]``: how ``ftrun predict`` and the saved model generate (the model's generation_config.json)."""

    max_new_tokens: int = Field(50, gt=0, description="Tokens generated at most.")
    do_sample: bool = Field(False, description="Sample (true) or take the most likely token (false: greedy, or beam search).")
    temperature: float | None = Field(None, gt=0, description="Sampling temperature.")
    top_k: int | None = Field(None, gt=0, description="Sample from the k most likely tokens.")
    top_p: float | None = Field(None, gt=0, le=1, description="Sample from the tokens of this much probability mass.")
    num_beams: int | None = Field(None, gt=0, description="Beam search with this many beams.")
    repetition_penalty: float | None = Field(None, gt=0, description="Penalty of tokens already generated (1.0: none).")


#: Names ``metrics.names`` may hold: the loss's and the generated completions'.
LOSS_METRICS = ("loss", "perplexity")
GENERATION_METRICS = ("exact_match", "chrf", "bleu")


class CausalLMTask(Task):
    name = "causal-lm"
    description = "continue a text: language modelling on plain text, prompt/completion pairs or chats (decoder-only)"
    pipeline_tag = "text-generation"
    data_config = CausalLMData
    metrics_config = CausalLMMetrics
    #: run_clm.py's example: GPT-2 on WikiText-2 (raw), on 2,000 of its 36,718 training lines.
    defaults = {
        "model": {"name": "gpt2", "tokenizer_lowercase": False},
        "data": {
            "dataset": "wikitext",
            "dataset_config": "wikitext-2-raw-v1",
            "train_split": "train",
            "eval_split": "validation",
            "max_train_samples": 2000,
            "max_eval_samples": 500,
        },
        "training": {"num_train_epochs": 3, "per_device_train_batch_size": 8, "per_device_eval_batch_size": 8},
        "metrics": {"names": ["perplexity"], "best": "perplexity"},
        "predict": {"examples": ["The history of the city begins"]},
    }
    #: A real sample of English captions shipped in the package and a small GPT-2 built from a config.
    demo = {
        "model": {
            "config": {"model_type": "gpt2", "n_embd": 128, "n_layer": 2, "n_head": 4, "n_positions": 128, "resid_pdrop": 0.0, "embd_pdrop": 0.0},
            "tokenizer_vocab_size": 2000,
            "tokenizer_lowercase": False,
        },
        "data": {
            "train_file": str(DEMO_DIR / "captions-train.jsonl.gz"),
            "eval_file": str(DEMO_DIR / "captions-eval.jsonl.gz"),
            "block_size": 64,
        },
        "training": {
            "num_train_epochs": 8,
            "learning_rate": 2e-3,
            "warmup_steps": 0,
            "per_device_train_batch_size": 16,
            "per_device_eval_batch_size": 32,
        },
        "predict": {"examples": ["A man in a blue shirt", "Two dogs are"]},
    }

    @property
    def auto_model(self) -> type:
        # Imported on first use: transformers' model classes import torch, which listing the tasks must not.
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM

    # -- data stage --------------------------------------------------------------------

    def logits_over_labels(self, config: RunConfig) -> bool:
        """The next token: the logits score each token of the vocabulary."""
        return True

    def check_data(self, splits: Splits, config: RunConfig) -> None:
        data: CausalLMData = config.data
        keys = {"text": ("text_column",), "prompt": ("prompt_column", "completion_column"), "chat": ("messages_column",)}[data.form]
        for name in ("train", "eval"):
            split = getattr(splits, name)
            try:
                require_columns(split, {key: getattr(data, key) for key in keys}, config, name)
            except FtrunError as exc:
                raise FtrunError(f"{exc}{other_form(split.column_names)}") from None
            if data.form == "chat":
                check_chats(split, config, name)
            else:
                for key in keys:
                    check_text_column(split, config, key, name)

    def check_tokenizer(self, tokenizer: PreTrainedTokenizerBase, config: RunConfig, where: str) -> None:
        """An end-of-text token (where a text ends, and generation stops), padding by it where there is no pad token (GPT-2's), and a chat template for chats."""
        if tokenizer.eos_token_id is None:
            raise FtrunError(f"{where}: the tokenizer has no end-of-text (eos) token, which a causal LM ends each text with")
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token  # padded positions are never in the loss (labels -100)
        if config.data.form == "chat":
            tokenizer.chat_template = config.data.chat_template or tokenizer.chat_template or CHATML_TEMPLATE
            if config.model.name is None and tokenizer.chat_template == CHATML_TEMPLATE:
                # A tokenizer trained here learns ChatML's markers as tokens of their own, as chat models' have them.
                tokenizer.add_special_tokens({"additional_special_tokens": list(CHATML_MARKERS)})
        if not tokenizer.is_fast:
            raise FtrunError(f"{where}: needs a fast tokenizer (its offsets tell prompt tokens from completion tokens)")

    def text_of(self, split: Dataset, config: RunConfig) -> Iterable[str]:
        data: CausalLMData = config.data
        if data.form == "chat":
            for chats in split.select_columns([data.messages_column]).iter(batch_size=1000):
                yield from (text for chat in chats[data.messages_column] for turn in chat for text in (turn["role"], turn["content"]))
            return
        columns = [data.prompt_column, data.completion_column] if data.form == "prompt" else [data.text_column]
        for batch in split.select_columns(columns).iter(batch_size=1000):
            for column in columns:
                yield from batch[column]

    def inputs_of(self, split: Dataset, config: RunConfig) -> list[tuple[str, ...]] | None:
        """The prompts of prompt/completion data (an eval prompt seen in training); plain texts are packed, chats many-turned: none."""
        data: CausalLMData = config.data
        if data.form != "prompt":
            return None
        return [(prompt,) for prompt in split.select_columns([data.prompt_column])[:][data.prompt_column]]

    def encode(self, batch: dict[str, list], data: TaskData, config: RunConfig, split: str) -> dict[str, list]:
        settings: CausalLMData = config.data
        tokenizer = data.tokenizer
        if settings.form == "text":
            ids = [ended(tokenizer(text)["input_ids"], tokenizer) for text in batch[settings.text_column] if text.strip()]
            if settings.packing:
                return pack(ids, block_size(settings, tokenizer))
            ids = [sequence[: max_length(settings, tokenizer)] for sequence in ids]
            return {"input_ids": ids, "attention_mask": [[1] * len(s) for s in ids], "labels": ids}
        texts, spans = zip(*(loss_spans(example, settings, tokenizer) for example in rows(batch, settings)))
        # A chat template writes the special tokens itself; a prompt gets the tokenizer's (Llama's <s>, none for GPT-2).
        encoded = tokenizer(list(texts), add_special_tokens=settings.form == "prompt", return_offsets_mapping=True)
        limit = max_length(settings, tokenizer)
        out: dict[str, list] = {"input_ids": [], "attention_mask": [], "labels": []}
        for ids, offsets, example_spans in zip(encoded["input_ids"], encoded["offset_mapping"], spans):
            labels = [token if any(start <= begin < end for start, end in example_spans) else -100 for token, (begin, _) in zip(ids, offsets)]
            if settings.form == "prompt":  # the completion ends with the end-of-text token, which it learns to generate
                ids = ended(ids, tokenizer)
                labels = labels[: len(ids) - 1] + [tokenizer.eos_token_id]
            if all(label == -100 for label in labels[:limit]):
                continue  # a prompt longer than max_length leaves nothing to learn (the pre-flight report counts the cut examples)
            out["input_ids"].append(ids[:limit])
            out["labels"].append(labels[:limit])
            out["attention_mask"].append([1] * len(ids[:limit]))
        return out

    def sequences(self, split: Dataset, data: TaskData, config: RunConfig) -> dict[str, TokenSequence]:
        """Prompt/completion and chat examples, each cut at ``max_length``; packed plain text is never cut."""
        settings: CausalLMData = config.data
        if settings.form == "text" and settings.packing:
            return {}
        if settings.form == "text":
            texts = split.select_columns([settings.text_column])[:][settings.text_column]
        else:
            texts = [loss_spans(example, settings, data.tokenizer)[0] for example in rows(split[:], settings)]
        ids = data.tokenizer(texts, add_special_tokens=settings.form != "chat")["input_ids"]
        return {"examples": TokenSequence(ids, max_length(settings, data.tokenizer), "data.max_length")}

    def preflight(self, config: RunConfig, data: TaskData) -> Preflight:
        """The generic report, less the eval-size check (perplexity is measured over tokens, not a share of examples), and blocks the model can take."""
        from ftrun import check_eval_size, generic_preflight

        report = generic_preflight(self, config, data, skip=(check_eval_size,))
        settings: CausalLMData = config.data
        positions = report.model.get("max_position_embeddings")
        if settings.form == "text" and settings.packing and settings.block_size and positions and settings.block_size > positions:
            # Packed blocks are never cut: a block longer than the model's positions fails in its first step, as an index error.
            report.fail(
                "data.block_size",
                f"blocks of {settings.block_size} tokens are more than the model takes ({positions} positions): set it to {positions} or less",
            )
        return report

    # -- trainer stage -----------------------------------------------------------------

    def data_collator(self, data: TaskData, model: PreTrainedModel | None, config: RunConfig) -> Callable:
        """Prompt/completion and chat examples packed without padding where the model keeps them apart; else padded (labels with -100).

        Blocks of plain text are all ``block_size`` long but each map batch's last: padding is for those.
        """
        from transformers import DataCollatorForSeq2Seq, DataCollatorWithFlattening

        if packs_apart(config) and model is not None and isolates_packed_examples(model):
            return DataCollatorWithFlattening()
        return DataCollatorForSeq2Seq(data.tokenizer, label_pad_token_id=-100)

    # -- metric stage ------------------------------------------------------------------

    def build_metrics(self, config: RunConfig, data: TaskData) -> Metrics:
        """Loss and perplexity (``exp`` of the mean eval loss) from the loss alone; exact match, chrF or BLEU of generated completions."""
        settings: CausalLMMetrics = config.metrics
        names = config.metrics.names or ["perplexity"]
        unknown = [name for name in names if name not in LOSS_METRICS + GENERATION_METRICS]
        if unknown:
            raise FtrunError(f"{config.where('metrics.names')}: {unknown[0]!r}: not a causal-lm metric ({', '.join(LOSS_METRICS + GENERATION_METRICS)})")
        generated = [name for name in names if name in GENERATION_METRICS]
        if generated and not settings.generate_examples:
            raise FtrunError(f"{config.where('metrics.names')}: {generated[0]} scores generated completions: set metrics.generate_examples")
        if settings.generate_examples and config.data.form == "text":
            raise FtrunError(f"{config.where('metrics.generate_examples')}: needs prompts to complete (prompt/completion or chat data)")
        best = config.metrics.best or names[0]
        if best not in names and best != "loss":
            raise FtrunError(f"{config.where('metrics.best')}: {best!r} is not among metrics.names ({', '.join(names)})")
        prompts = completion_prompts(data, config, settings.generate_examples) if generated else []
        score = generation_metrics([name for name in generated if name != "exact_match"], where=config.where("metrics.names"))

        def derive(metrics: dict[str, float], model: PreTrainedModel) -> dict[str, float]:
            out = {"perplexity": perplexity(metrics["eval_loss"])} if "perplexity" in names else {}
            if prompts:
                texts = complete(model, data.tokenizer, [prompt for prompt, _ in prompts])
                references = [reference for _, reference in prompts]
                out.update(score(texts, references))
                if "exact_match" in generated:
                    out["exact_match"] = float(np.mean([text.strip() == reference.strip() for text, reference in zip(texts, references)]))
            return out

        return Metrics(compute=None, best=best, greater_is_better=best in GENERATION_METRICS, derive=derive)

    # -- predict -----------------------------------------------------------------------

    def read_input(self, value: str | dict[str, Any], where: str, config: RunConfig | None = None) -> str | dict[str, Any]:
        """A text to continue, or a chat to answer: ``{"messages": [{role, content}, ...]}`` (``ftrun predict --json-input``)."""
        if isinstance(value, dict):
            chat = value.get("messages")
            if (
                set(value) != {"messages"}
                or not isinstance(chat, list)
                or not all(isinstance(turn, dict) and {"role", "content"} <= set(turn) for turn in chat)
            ):
                raise FtrunError(f'{where}: task causal-lm predicts on a text, or on {{"messages": [{{"role": ..., "content": ...}}, ...]}}')
            return value
        return super().read_input(value, where, config)

    def inputs_from(self, batch: dict[str, list], config: RunConfig, source: Path | None = None) -> list[Any]:
        """Each row's text, prompt, or chat (its turns before the last assistant one, which is what the model is to write)."""
        settings: CausalLMData = config.data
        if settings.form == "chat":
            chats = batch[settings.messages_column]
            return [{"messages": chat[: max((i for i, turn in enumerate(chat) if turn.get("role") == "assistant"), default=len(chat))]} for chat in chats]
        return list(batch[settings.prompt_column if settings.form == "prompt" else settings.text_column])

    def predict(self, model: Any, tokenizer: Any, inputs: list[Any], config: RunConfig) -> list[dict[str, str]]:
        """The continuation of each text, or the answer to each chat, generated as the model's generation config says.

        A model trained on chats answers a plain text as a user's turn, in its chat template.
        """
        from ftrun import predict_with_pipeline

        inputs = [value["messages"] if isinstance(value, dict) else value for value in inputs]  # a chat, as read_input keeps it
        if config.data.form == "chat":
            inputs = [[{"role": "user", "content": value}] if isinstance(value, str) else value for value in inputs]
        side, tokenizer.padding_side = tokenizer.padding_side, "left"  # a batch of prompts, each continued from its end
        try:
            outputs = predict_with_pipeline(self, model, tokenizer, inputs, return_full_text=False)
        finally:
            tokenizer.padding_side = side
        return [{"generated_text": output[0]["generated_text"]} for output in outputs]

    def format_prediction(self, prediction: dict[str, str]) -> str:
        return prediction["generated_text"]


def packs_apart(config: RunConfig) -> bool:
    """Whether the run asks for examples packed apart: prompt/completion or chat data, packing on, and no cache
    in training (with one, a model reads no packed examples from the position ids)."""
    return config.data.packing and config.data.form != "text" and not config.training.get("use_cache")


def perplexity(loss: float) -> float:
    """``exp`` of the mean loss per token, as run_clm.py reports it (infinite past what a float holds)."""
    try:
        return math.exp(loss)
    except OverflowError:
        return math.inf


def block_size(settings: CausalLMData, tokenizer: PreTrainedTokenizerBase) -> int:
    """``block_size``, or run_clm.py's default: the model's length, at most 1024."""
    from ftrun import tokenizer_limit

    return settings.block_size or min(tokenizer_limit(tokenizer) or MAX_DEFAULT_BLOCK, MAX_DEFAULT_BLOCK)


def max_length(settings: CausalLMData, tokenizer: PreTrainedTokenizerBase) -> int:
    """Where an example that is not packed into blocks is cut: ``max_length``, else as ``block_size``."""
    return settings.max_length or block_size(settings, tokenizer)


def ended(ids: list[int], tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """``ids`` ending with the end-of-text token: as they are where the tokenizer adds it itself, else with it appended."""
    return ids if ids and ids[-1] == tokenizer.eos_token_id else [*ids, tokenizer.eos_token_id]


def pack(ids: list[list[int]], size: int) -> dict[str, list]:
    """Texts' tokens end to end, cut into blocks of ``size`` (run_clm.py's ``group_texts``); the last, shorter block is kept."""
    flat = [token for sequence in ids for token in sequence]
    blocks = [flat[start : start + size] for start in range(0, len(flat), size)]
    return {"input_ids": blocks, "attention_mask": [[1] * len(block) for block in blocks], "labels": blocks}


def rows(batch: dict[str, list], settings: CausalLMData) -> Iterable[Any]:
    """A batch's examples: (prompt, completion) pairs, or chats."""
    if settings.form == "chat":
        return batch[settings.messages_column]
    return zip(batch[settings.prompt_column], batch[settings.completion_column])


def loss_spans(example: Any, settings: CausalLMData, tokenizer: PreTrainedTokenizerBase) -> tuple[str, list[tuple[int, int]]]:
    """An example as the model reads it, and the character spans of it the loss is on.

    A chat's assistant turn runs from where the template would prompt for it (its header, e.g.
    ``<|im_start|>assistant``, left to the prompt) to where the turn ends, end-of-turn included:
    the model learns to write a turn and to stop.
    """
    if settings.form == "prompt":
        prompt, completion = example
        return prompt + completion, [(len(prompt), len(prompt) + len(completion))]
    text = tokenizer.apply_chat_template(example, tokenize=False)
    spans = []
    for i, turn in enumerate(example):
        if turn["role"] == "assistant":
            start = len(tokenizer.apply_chat_template(example[:i], tokenize=False, add_generation_prompt=True)) if i else 0
            spans.append((start, len(tokenizer.apply_chat_template(example[: i + 1], tokenize=False))))
    return text, spans


def completion_prompts(data: TaskData, config: RunConfig, count: int) -> list[tuple[str, str]]:
    """The first ``count`` eval examples as (prompt, reference completion): a chat's last assistant turn is its completion."""
    settings: CausalLMData = config.data
    examples = data.raw.eval.select(range(min(count, len(data.raw.eval))))[:]
    if settings.form == "prompt":
        return list(zip(examples[settings.prompt_column], examples[settings.completion_column]))
    tokenizer = data.tokenizer
    out = []
    for chat in examples[settings.messages_column]:
        last = max((i for i, turn in enumerate(chat) if turn["role"] == "assistant"), default=None)
        if last is not None:
            out.append((tokenizer.apply_chat_template(chat[:last], tokenize=False, add_generation_prompt=True), chat[last]["content"]))
    return out


def complete(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: list[str], batch: int = 16) -> list[str]:
    """Greedy completions of ``prompts`` (as the model's generation config bounds them), without the prompts.

    Left-padded, as a decoder-only model must be to continue every prompt of a batch from its end.
    """
    import torch

    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    was_training = model.training
    model.eval()
    texts = []
    try:
        for start in range(0, len(prompts), batch):
            encoded = tokenizer(prompts[start : start + batch], add_special_tokens=False, padding=True, return_tensors="pt").to(model.device)
            with torch.no_grad():
                generated = model.generate(**encoded, do_sample=False, pad_token_id=tokenizer.pad_token_id)
            texts += tokenizer.batch_decode(generated[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return texts


def isolates_packed_examples(model: PreTrainedModel) -> bool:
    """Whether the model keeps examples packed into one row apart, given position ids that restart per example.

    transformers' models that build their masks with its masking utilities (GPT-2, Llama, Qwen,
    ...) read packed examples from the position ids; others let them attend to each other. Asked
    of the model itself, on two short examples, rather than of a list that would go stale.
    """
    import torch

    first, second = torch.tensor([[1, 2, 3, 4]]), torch.tensor([[5, 6, 7]])
    packed = torch.cat([first, second], dim=1)
    positions = torch.tensor([[0, 1, 2, 3, 0, 1, 2]])
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            alone = model(input_ids=second.to(model.device), use_cache=False).logits
            together = model(input_ids=packed.to(model.device), position_ids=positions.to(model.device), use_cache=False).logits[:, 4:]
    except (TypeError, ValueError, RuntimeError):  # a model that takes no position ids
        return False
    finally:
        model.train(was_training)
    return torch.allclose(alone.float(), together.float(), atol=1e-4, rtol=1e-3)


def other_form(columns: list[str]) -> str:
    """A hint, where plain texts are missing, for columns of the usual names of another form (TRL's: prompt/completion, messages)."""
    if {"prompt", "completion"} <= set(columns):
        return ': for prompt/completion data, set data.prompt_column and data.completion_column ("prompt", "completion")'
    if "messages" in columns:
        return ': for chats, set data.messages_column ("messages")'
    return ""


def check_chats(split: Dataset, config: RunConfig, name: str) -> None:
    """Every chat is a list of ``{role, content}`` turns with texts, one of them the assistant's: else one line naming the row."""
    column = config.data.messages_column
    for row, chat in enumerate(split.select_columns([column])[:][column]):
        problem = None
        if not isinstance(chat, list) or not chat:
            problem = f"holds {describe_value(chat)}, not a list of {{role, content}} turns"
        elif not all(isinstance(turn, dict) and isinstance(turn.get("role"), str) and isinstance(turn.get("content"), str) for turn in chat):
            problem = "has a turn without a role or a content text"
        elif not any(turn["role"] == "assistant" for turn in chat):
            problem = "has no assistant turn to learn"
        if problem:
            raise FtrunError(f"{config.where('data.messages_column')}: {where_row(config, split, name, row)} {problem}")


TASK = CausalLMTask()


@hookimpl
def ftrun_register_tasks(register):
    register(TASK)


@hookimpl
def ftrun_register_tables(register):
    register("generation", GenerationSettings)


@hookimpl
def ftrun_preflight(task, config, data, report):
    if "generation" in config.tables and not isinstance(task, CausalLMTask):
        report.fail("generation", f"read by the causal-lm task only; task {task.name} generates as its own keys say")


@hookimpl(specname="ftrun_build_head", wrapper=True)
def generating_head(task, config, data):
    """The head with ``[generation]``'s settings in its generation config: saved as generation_config.json, which
    ``pipeline("text-generation")`` and ``ftrun predict`` generate by."""
    model = yield
    if isinstance(task, CausalLMTask):
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        settings = config.tables.get("generation") or GenerationSettings()
        base.generation_config.update(pad_token_id=data.tokenizer.pad_token_id, **settings.model_dump(exclude_none=True))
    return model


@hookimpl
def ftrun_after_training(task, config, trainer):
    """Say how prompt/completion and chat examples were batched: packed apart, or padded because the model cannot keep packed ones apart."""
    from transformers import DataCollatorWithFlattening

    settings = config.data
    if not isinstance(task, CausalLMTask) or settings.form == "text" or not settings.packing:
        return None
    if isinstance(trainer.data_collator, DataCollatorWithFlattening):
        return "packing: each batch's examples end to end in one row, position ids restarting per example (no example attends to another)"
    if not packs_apart(config):
        return "packing: off, examples padded: with training.use_cache, a model cannot tell packed examples apart"
    model_type = getattr(trainer.model.config, "model_type", "this model")
    return f"packing: off, examples padded: {model_type} lets examples packed into one row attend to each other"
