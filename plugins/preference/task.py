"""Preference tuning: a causal LM learns to prefer the chosen completion of a prompt to the rejected one, by DPO (TRL's ``DPOTrainer``).

The step after supervised fine-tuning (``causal-lm``): the run starts from a model, which is
also the reference the DPO loss measures the tuned model against. Rows hold a ``prompt``, a
``chosen`` and a ``rejected`` completion (columns renamable in ``[data]``), as plain texts or
as chat messages (lists of ``{role, content}`` turns) rendered with the model's chat template.
``[training]`` is TRL's ``DPOConfig`` (``beta``, ``loss_type``, ``max_length``, ...): TRL is an
optional library (``pip install 'ftrun[trl]'``), imported only when a run needs it.

ftrun's data stage encodes the pairs as TRL's own ``_prepare_dataset`` does (the prompt's tokens,
then each completion's, ended with the end-of-text token), so that they are cached, checked by
the pre-flight report and grouped by length like any task's.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from ftrun import (
    FtrunError,
    Metrics,
    Preflight,
    RunConfig,
    Splits,
    TaskData,
    TextDataConfig,
    TokenSequence,
    check_text_column,
    describe_value,
    hookimpl,
    require_columns,
    where_row,
)

from ..causal_lm.task import CHATML_TEMPLATE, GeneratingTask, ended

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DEMO_DIR = Path(__file__).parent / "data"
#: The columns of a pair, by their ``[data]`` keys.
COLUMNS = ("prompt_column", "chosen_column", "rejected_column")
#: What the encoded pairs hold: the names TRL's DPOTrainer and its collator read.
FEATURES = ("prompt_ids", "chosen_ids", "rejected_ids")
#: What TRL logs at each evaluation (``eval_`` aside), and may be ``metrics.best``.
LOGGED = (
    "loss",
    "rewards/accuracies",
    "rewards/margins",
    "rewards/chosen",
    "rewards/rejected",
    "logps/chosen",
    "logps/rejected",
    "logits/chosen",
    "logits/rejected",
    "entropy",
    "mean_token_accuracy",
)
#: Of those, the ones lower is better.
LOWER_IS_BETTER = ("loss", "rewards/rejected", "logps/rejected")


class PreferenceData(TextDataConfig):
    prompt_column: str = Field(
        "prompt",
        description="Column of prompts: a text, or a chat's turns before the answer (a list of {role, content}). "
        "Chats may have none: the turns their chosen and rejected begin with alike are the prompt (TRL's implicit prompt).",
    )
    chosen_column: str = Field("chosen", description="Column of the preferred completions: a text, or the assistant's turns.")
    rejected_column: str = Field("rejected", description="Column of the dispreferred completions: a text, or the assistant's turns.")
    chat_template: str | None = Field(None, description="Jinja chat template for chat rows; default: the tokenizer's own, else ChatML.")


class PreferenceTask(GeneratingTask):
    name = "preference"
    description = "prefer the chosen completion of a prompt to the rejected one: DPO on TRL, after causal-lm's supervised fine-tuning (decoder-only)"
    data_config = PreferenceData
    #: TRL's DPO example: a small instruction-tuned model on UltraFeedback's binarized pairs.
    defaults = {
        "model": {"name": "Qwen/Qwen2.5-0.5B-Instruct", "tokenizer_lowercase": False},
        "data": {
            "dataset": "trl-lib/ultrafeedback_binarized",
            "train_split": "train",
            "eval_split": "test",
            "max_train_samples": 2000,
            "max_eval_samples": 200,
        },
        "training": {"num_train_epochs": 1, "per_device_train_batch_size": 4, "per_device_eval_batch_size": 4, "max_length": 512},
        "metrics": {"best": "rewards/accuracies"},
        "predict": {"examples": ["The movie was"]},
    }
    #: IMDB pairs shipped in the package (examples/preference/build_imdb_pairs.py) and a small GPT-2 built from a config.
    demo = {
        "model": {
            "config": {"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 128},
            "tokenizer_vocab_size": 2000,
            "tokenizer_lowercase": False,
        },
        "data": {"train_file": str(DEMO_DIR / "pairs-train.jsonl.gz"), "eval_file": str(DEMO_DIR / "pairs-eval.jsonl.gz")},
        "training": {
            "num_train_epochs": 2,
            "learning_rate": 1e-3,
            "warmup_steps": 0,
            "per_device_train_batch_size": 16,
            "per_device_eval_batch_size": 20,
            "max_length": 128,
            "activation_checkpointing": False,
        },
        "predict": {"examples": ["This movie was one of the"]},
    }

    # TRL is imported on first use, as the Trainer classes of every task are: listing the tasks must not import it.

    @property
    def training_arguments_class(self) -> type:
        """TRL's ``DPOConfig``: ``[training]`` takes every field of it."""
        return import_trl().DPOConfig

    @property
    def trainer_class(self) -> type:
        from .trainer import PreferenceTrainer

        return PreferenceTrainer

    # -- data stage --------------------------------------------------------------------

    def check_data(self, splits: Splits, config: RunConfig) -> None:
        """Each split has the three columns (chats may leave the prompt implicit), every row of them texts, or every row chats."""
        for name in ("train", "eval"):
            split = getattr(splits, name)
            require_columns(split, {key: getattr(config.data, key) for key in COLUMNS[1:]}, config, name)
            keys = columns_of(split, config)
            require_columns(split, {key: getattr(config.data, key) for key in keys}, config, name)
            if is_chat(split, config):
                check_chats(split, config, name, keys)
            else:
                for key in keys:
                    check_text_column(split, config, key, name)

    def check_tokenizer(self, tokenizer: PreTrainedTokenizerBase, config: RunConfig, where: str) -> None:
        """The generating task's end-of-text and padding, and a chat template for chat rows (the tokenizer's own, else ChatML)."""
        super().check_tokenizer(tokenizer, config, where)
        tokenizer.chat_template = config.data.chat_template or tokenizer.chat_template or CHATML_TEMPLATE

    def text_of(self, split: Dataset, config: RunConfig) -> Iterable[str]:
        columns = [getattr(config.data, key) for key in columns_of(split, config)]
        for batch in split.select_columns(columns).iter(batch_size=1000):
            for column in columns:
                for value in batch[column]:
                    yield from ([turn["content"] for turn in value] if isinstance(value, list) else [value])

    def inputs_of(self, split: Dataset, config: RunConfig) -> list[tuple[str, ...]] | None:
        """The prompts of plain-text pairs (an eval prompt seen in training); chats: none."""
        if is_chat(split, config):
            return None
        column = config.data.prompt_column
        return [(prompt,) for prompt in split.select_columns([column])[:][column]]

    def encode(self, batch: dict[str, list], data: TaskData, config: RunConfig, split: str) -> dict[str, list]:
        """Each pair as TRL's ``DPOTrainer`` tokenizes one: the prompt's tokens, and each completion's after it, ended with the end-of-text token.

        The completion starts where the prompt's tokens and those of prompt and completion
        together part (tokens may merge across the boundary), as in TRL.
        """
        tokenizer = data.tokenizer
        out: dict[str, list] = {name: [] for name in FEATURES}
        for prompt, chosen, rejected in pairs_of(batch, config):
            prompt_ids, chosen_ids, rejected_ids = (
                tokenize(tokenizer, text, chat=not isinstance(prompt, str)) for text in rendered(tokenizer, prompt, chosen, rejected)
            )
            if isinstance(prompt, str):  # a chat template ends each turn itself
                chosen_ids, rejected_ids = ended(chosen_ids, tokenizer), ended(rejected_ids, tokenizer)
            start = min(common_prefix(prompt_ids, chosen_ids), common_prefix(prompt_ids, rejected_ids))
            out["prompt_ids"].append(prompt_ids[:start])
            out["chosen_ids"].append(chosen_ids[start:])
            out["rejected_ids"].append(rejected_ids[start:])
        return out

    def sequences(self, split: Dataset, data: TaskData, config: RunConfig) -> dict[str, TokenSequence]:
        """Each pair's longer sequence, its prompt and its longer completion, as TRL's collator cuts it at ``training.max_length``."""
        encoded = self.encode(split[:], data, config, "train")
        longer = [prompt + max(chosen, rejected, key=len) for prompt, chosen, rejected in zip(*(encoded[name] for name in FEATURES))]
        return {"pairs": TokenSequence(longer, config.training.get("max_length", self.training_arguments_class.max_length), "training.max_length")}

    def example_lengths(self, features: Any, config: RunConfig) -> list[int] | None:
        """A pair's length as the collator pads it: its prompt and the longer of its completions."""
        from ftrun import lengths_of  # with the Trainer's module, which imports optional libraries: not when the tasks are listed

        prompt, chosen, rejected = (lengths_of(features, name) for name in FEATURES)
        if prompt is None or chosen is None or rejected is None:
            return None
        return [p + max(c, r) for p, c, r in zip(prompt, chosen, rejected)]

    def preflight(self, config: RunConfig, data: TaskData) -> Preflight:
        """The generic report, and TRL's defaults that do not fit the machine."""
        import torch

        from ftrun import generic_preflight

        report = generic_preflight(self, config, data)
        if config.data.max_length is not None:
            report.fail("data.max_length", "TRL's collator cuts the pairs of the preference task: set training.max_length instead")
        training = config.training
        if not torch.cuda.is_available():
            if not {"activation_checkpointing", "gradient_checkpointing"} & set(training):
                report.warn(
                    "training.activation_checkpointing",
                    "TRL's default (gradient_checkpointing = true) recomputes each layer's activations to save GPU memory: "
                    "on a CPU it only slows training (set activation_checkpointing = false)",
                )
            if training.get("bf16"):
                report.warn(
                    "training.bf16",
                    "bf16 autocast on a CPU rounds the log-probabilities the rewards are made of: the logged rewards differ from the model's in fp32",
                )
        return report

    # -- trainer stage -----------------------------------------------------------------

    def trainer_kwargs(self, model: PreTrainedModel, data: TaskData, config: RunConfig) -> dict[str, Any]:
        """The reference model: the model the run starts from, ``[model]`` as the run's ``ftrun.toml`` records it (and in ``ftrun eval``, the eval split as TRL's train split).

        With LoRA adapters (``[peft]``, or a saved adapter in ``ftrun eval``) none: TRL computes the
        reference with the adapters off, the base model, without a second copy in memory. Otherwise
        a frozen copy built as the head stage built the run's model, under the run's seed (the same
        weights, from a config too): in ``ftrun eval`` the same reference as in the run.
        """
        from transformers import set_seed

        from ftrun import build_head

        # TRL's DPOTrainer wants a train split even to evaluate, and ftrun eval loads the eval split alone.
        kwargs: dict[str, Any] = {} if data.train is not None else {"train_dataset": data.eval}
        if hasattr(model, "peft_config"):
            return {**kwargs, "ref_model": None}
        set_seed(config.training["seed"])  # as the runner seeds the head stage
        reference = build_head(self, config, data)
        reference.requires_grad_(False)
        return {**kwargs, "ref_model": reference.eval()}

    def data_collator(self, data: TaskData, model: PreTrainedModel | None, config: RunConfig) -> None:
        """None: TRL's DPOTrainer builds its own collator from ``[training]`` (each pair's chosen and rejected sequences in one batch, cut at ``max_length``, the completions marked)."""
        return None

    # -- metric stage ------------------------------------------------------------------

    def build_metrics(self, config: RunConfig, data: TaskData) -> Metrics:
        """The rewards TRL logs at each evaluation: ``rewards/accuracies`` (the share of pairs the model prefers as labelled) picks the best checkpoint."""
        if config.metrics.names:
            raise FtrunError(f"{config.where('metrics.names')}: the preference task's metrics are the rewards TRL logs ({', '.join(LOGGED)}): leave it out")
        best = config.metrics.best or "rewards/accuracies"
        if best not in LOGGED:
            raise FtrunError(f"{config.where('metrics.best')}: {best!r} is not a metric TRL logs ({', '.join(LOGGED)})")
        return Metrics(compute=None, best=best, greater_is_better=best not in LOWER_IS_BETTER)

    # -- predict -----------------------------------------------------------------------

    def inputs_from(self, batch: dict[str, list], config: RunConfig, source: Path | None = None) -> list[Any]:
        """Each row's prompt: a text, or a chat (``{"messages": [...]}``)."""
        return [{"messages": prompt} if isinstance(prompt, list) else prompt for prompt, _, _ in pairs_of(batch, config)]


def import_trl() -> Any:
    """TRL, or one line saying how to install it."""
    try:
        import trl
    except ImportError as exc:
        raise FtrunError("task preference needs TRL: pip install 'ftrun[trl]'") from exc
    return trl


def is_chat(split: Dataset, config: RunConfig) -> bool:
    """Whether a split's pairs are chats (lists of turns), by its first chosen completion; ``check_chats`` holds every row to it."""
    column = config.data.chosen_column
    return len(split) > 0 and isinstance(split[0][column], list)


def columns_of(split: Dataset, config: RunConfig) -> tuple[str, ...]:
    """The ``[data]`` keys of the columns a split's pairs are read from: all three, or for chats without a prompt
    column, the chosen and rejected ones, whose leading turns in common are the prompt (TRL's implicit prompt)."""
    if config.data.prompt_column in split.column_names or not is_chat(split, config):
        return COLUMNS
    return COLUMNS[1:]


def pairs_of(batch: dict[str, list], config: RunConfig) -> Iterable[tuple[Any, Any, Any]]:
    """A batch's pairs as (prompt, chosen, rejected); an implicit prompt is taken out of the chats by TRL's ``extract_prompt``."""
    chosen, rejected = batch[config.data.chosen_column], batch[config.data.rejected_column]
    if config.data.prompt_column in batch:
        return zip(batch[config.data.prompt_column], chosen, rejected)
    from trl.data_utils import extract_prompt

    split = [extract_prompt({"chosen": c, "rejected": r}) for c, r in zip(chosen, rejected)]
    return [(pair["prompt"], pair["chosen"], pair["rejected"]) for pair in split]


def check_chats(split: Dataset, config: RunConfig, name: str, keys: tuple[str, ...]) -> None:
    """Every value of the columns ``keys`` of a chat split is a list of ``{role, content}`` turns with texts: else one line naming the row."""
    for key in keys:
        column = getattr(config.data, key)
        for row, chat in enumerate(split.select_columns([column])[:][column]):
            if not isinstance(chat, list) or not chat:
                problem = f"holds {describe_value(chat)}, not a list of {{role, content}} turns (the completions are chats)"
            elif not all(isinstance(turn, dict) and isinstance(turn.get("role"), str) and isinstance(turn.get("content"), str) for turn in chat):
                problem = "has a turn without a role or a content text"
            else:
                continue
            raise FtrunError(f"{config.where('data.' + key)}: {where_row(config, split, name, row)} {problem}")


def rendered(tokenizer: PreTrainedTokenizerBase, prompt: Any, chosen: Any, rejected: Any) -> tuple[str, str, str]:
    """The prompt, and the prompt with each completion, as the model reads them: plain texts, or chats in the chat template."""
    if isinstance(prompt, str):
        return prompt, prompt + chosen, prompt + rejected
    template = tokenizer.apply_chat_template
    return template(prompt, tokenize=False, add_generation_prompt=True), template(prompt + chosen, tokenize=False), template(prompt + rejected, tokenize=False)


def tokenize(tokenizer: PreTrainedTokenizerBase, text: str, chat: bool) -> list[int]:
    """A text's tokens: with the tokenizer's special tokens (Llama's <s>, none for GPT-2), but a chat template writes its own."""
    return tokenizer(text, add_special_tokens=not chat)["input_ids"]


def common_prefix(first: list[int], second: list[int]) -> int:
    """How many tokens two sequences begin with alike."""
    count = 0
    for a, b in zip(first, second):
        if a != b:
            break
        count += 1
    return count


TASK = PreferenceTask()


@hookimpl
def ftrun_register_tasks(register):
    register(TASK)
