"""LoRA and QLoRA adapters for every task, with the peft library: a plugin that is not a task.

A ``[peft]`` table turns it on. The head stage's model, whichever plugin built it, is wrapped
in LoRA adapters (``peft.get_peft_model``): only the adapters and the task's new output layer
train, so checkpoints hold those and their optimizer state alone, and the Trainer resumes
them exactly. The final save writes, by default, the adapters merged into a standard model
directory (what ``transformers.pipeline`` and ``ftrun predict`` load as any other), with the
adapter itself in ``adapter/``; with ``merge = false``, the adapter alone, which
``ftrun predict`` loads on its base model. peft is imported only in a run that has the table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from ftrun import FtrunError, Section, first_line, hookimpl, model_config_of

if TYPE_CHECKING:
    from torch import nn

ftrun_requires = ">=0.1,<0.2"

#: Where a merged run keeps its adapter, inside the output directory.
ADAPTER_DIR = "adapter"
#: The learning rates LoRA adapters usually train at (the LoRA and QLoRA papers: 1e-4 to 2e-4 on
#: large models; small ones go higher), far above full fine-tuning's; a rate more than 3 times
#: outside them is a warning in place of the pre-flight report's own.
LEARNING_RATES = (5e-5, 3e-3)


class PeftTable(Section):
    """[peft]: train LoRA adapters (peft) instead of every weight of the model."""

    method: Literal["lora", "qlora"] = Field("lora", description="lora, or qlora: the base model loaded in 4 bits (bitsandbytes, CUDA GPUs only).")
    r: int = Field(8, gt=0, description="Rank of the adapter matrices.")
    alpha: float = Field(16, gt=0, description="LoRA's scaling numerator (lora_alpha): the adapters' output is scaled by alpha / r.")
    # peft's default: dropout draws a random mask over every adapted layer's input, which on a CPU
    # is a large share of a step (docs/performance.md); raise it against overfitting.
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the adapters' input (peft's default: none).")
    target_modules: list[str] | None = Field(
        None, description="Names of the layers to adapt; default: peft's for the model's family (query and value for BERT, q and v for T5)."
    )
    modules_to_save: list[str] | None = Field(
        None, description="Layers trained whole and saved with the adapter; default: the task's output layer (classifier, qa_outputs, ...)."
    )
    merge: bool | None = Field(
        None, description="Save the adapters merged into a standard model (adapter in adapter/); default true for lora, false for qlora."
    )

    def merged(self) -> bool:
        # Merging into a 4-bit base would round the adapters away: QLoRA saves its adapter alone.
        return self.merge if self.merge is not None else self.method == "lora"


@hookimpl
def ftrun_register_tables(register):
    register("peft", PeftTable)


@hookimpl
def ftrun_preflight(task, config, data, report):
    settings = config.tables.get("peft")
    if settings is None:
        return
    import importlib.util

    if importlib.util.find_spec("peft") is None:
        report.fail("peft", "LoRA needs the peft library: pip install 'ftrun[peft]'")
    low, high = LEARNING_RATES
    rate = report.schedule.learning_rate
    report.findings = [finding for finding in report.findings if finding.key != "training.learning_rate"]  # full fine-tuning's range
    if rate > 3 * high or rate < low / 3:
        report.warn("training.learning_rate", f"{rate:g} is far {'above' if rate > high else 'below'} the usual {low:g} to {high:g} for LoRA adapters")
    if config.model.name is None:
        report.fail("model.config", "LoRA adapts pretrained weights, and a model built from a config has none: name a pretrained model (model.name)")
    if settings.method == "qlora":
        import torch

        if not torch.cuda.is_available():
            report.fail(
                "peft.method", 'qlora loads the base model in 4 bits with bitsandbytes, which needs a CUDA GPU, and this machine has none: use method = "lora"'
            )
        elif importlib.util.find_spec("bitsandbytes") is None:
            report.fail("peft.method", "qlora needs the bitsandbytes library: pip install bitsandbytes")
        if settings.merge:
            report.fail("peft.merge", "merging adapters into a 4-bit base model rounds them away: qlora saves its adapter alone (merge = false)")


@hookimpl(specname="ftrun_build_head", tryfirst=True)
def base_model(task, config, data):
    """The base model of a run whose head this plugin cannot wrap from what the default stage loads.

    In training, QLoRA's 4-bit base; in ``ftrun predict``, an adapter saved alone (``merge = false``) on its base.
    """
    settings = config.tables.get("peft")
    if settings is None:
        return None
    if data.train is None:
        return load_adapter(task, Path(config.model.name))
    if settings.method == "qlora":
        return quantized_base(task, config, data)
    return None


@hookimpl(specname="ftrun_build_head", wrapper=True)
def adapted_head(task, config, data):
    model = yield  # whichever plugin built it, or the task itself
    settings = config.tables.get("peft")
    if settings is None or data.train is None:  # in ftrun predict: the saved model, merged or with its adapter
        return model
    return with_adapters(model, settings, config)


def with_adapters(model: nn.Module, settings: PeftTable, config: Any) -> nn.Module:
    """``model`` with LoRA adapters on ``target_modules``, its task's output layer trained whole."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        modules_to_save=settings.modules_to_save if settings.modules_to_save is not None else head_modules(model),
    )
    try:
        return get_peft_model(model, lora)
    except ValueError as exc:  # target modules the model has not: peft's message is a paragraph
        if settings.target_modules is None:
            raise FtrunError(f"{config.where('peft')}: {first_line(exc)}") from exc
        raise FtrunError(
            f"{config.where('peft.target_modules')}: {settings.target_modules} names no layer of the model; its linear layers: {', '.join(linear_layers(model))}"
        ) from exc


def linear_layers(model: nn.Module) -> list[str]:
    """The names LoRA can target: each linear layer's own name (``query``, ``dense``, GPT-2's ``c_attn``)."""
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    return sorted({name.rpartition(".")[2] for name, module in model.named_modules() if isinstance(module, (nn.Linear, Conv1D))})


def head_modules(model: nn.Module) -> list[str]:
    """The task's output layer: the model's top-level layers with weights, outside its base model and its output embeddings.

    ``classifier`` for BERT's sequence and token classifiers, ``qa_outputs`` for question
    answering; none for T5, whose language-model head is its (adapted) embeddings.
    """
    base = getattr(model, getattr(model, "base_model_prefix", ""), None)
    if base is None:
        return []
    output_embeddings = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return [name for name, child in model.named_children() if child is not base and child is not output_embeddings and any(True for _ in child.parameters())]


def quantized_base(task: Any, config: Any, data: Any) -> nn.Module:
    """The pretrained model in 4 bits (NF4, bf16 compute, as the QLoRA paper), ready for adapters."""
    import torch
    from peft import prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig

    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_use_double_quant=True)
    model = config.model
    try:
        base = task.auto_model.from_pretrained(
            model.name,
            config=model_config_of(config, **task.head_kwargs(data, config)),
            revision=model.revision,
            trust_remote_code=model.trust_remote_code,
            quantization_config=quantization,
        )
    except (OSError, ValueError) as exc:
        raise FtrunError(f"{config.where('model.name')}: cannot load {model.name!r} in 4 bits: {first_line(exc)}") from exc
    return prepare_model_for_kbit_training(base)


def load_adapter(task: Any, model_dir: Path) -> nn.Module | None:
    """An adapter saved alone (``merge = false``) on its base model, with the run's head config; ``None`` for a merged model."""
    if not (model_dir / "adapter_config.json").is_file():
        return None
    from peft import PeftModel
    from transformers import AutoConfig

    base_name = json.loads((model_dir / "adapter_config.json").read_text(encoding="utf-8")).get("base_model_name_or_path")
    try:
        base = task.auto_model.from_pretrained(base_name, config=AutoConfig.from_pretrained(model_dir))
        return PeftModel.from_pretrained(base, model_dir)
    except (OSError, ValueError) as exc:
        raise FtrunError(f"--model: cannot load the adapter in {model_dir} on its base model {base_name!r}: {first_line(exc)}") from exc


@hookimpl
def ftrun_after_training(task, config, trainer):
    settings = config.tables.get("peft")
    if settings is None:
        return None
    trainable, total = trainer.model.get_nb_trainable_parameters()
    lora = trainer.model.peft_config["default"]
    saved = f"merged into the saved model (adapter in {ADAPTER_DIR}/)" if settings.merged() else "the adapter saved alone"
    return (
        f"{settings.method}: trained {trainable:,} of {total:,} parameters ({trainable / total:.2%}): rank {settings.r} on "
        f"{', '.join(sorted(lora.target_modules))}, whole {', '.join(sorted(lora.modules_to_save or [])) or 'nothing else'}; {saved}"
    )


@hookimpl
def ftrun_save_model(task, config, trainer, output_dir):
    settings = config.tables.get("peft")
    if settings is None:
        return None
    output_dir = Path(output_dir)
    if not settings.merged():
        trainer.save_model(str(output_dir))  # the adapter and the tokenizer
        if trainer.is_world_process_zero():
            trainer.model.get_base_model().config.save_pretrained(output_dir)  # the labels, for ftrun predict
        return True
    trainer.save_model(str(output_dir / ADAPTER_DIR))
    if trainer.is_world_process_zero():
        trainer.model.merge_and_unload().save_pretrained(output_dir)
        trainer.processing_class.save_pretrained(output_dir)
    return True


@hookimpl
def ftrun_model_card(task, config, card):
    settings = config.tables.get("peft")
    if settings is None:
        return
    card.data.tags = [*(card.data.tags or []), "peft", settings.method]
    saved = (
        f"The adapters are merged into this model, which loads as any other; the adapter alone is in `{ADAPTER_DIR}/` "
        "(`peft.PeftModel.from_pretrained(base, path)`)."
        if settings.merged()
        else "This directory holds the adapter alone: load it on its base model with `peft.PeftModel.from_pretrained(base, path)`, or `ftrun predict`."
    )
    card.sections = {
        "LoRA": f"Trained with {settings.method} adapters of rank {settings.r} (alpha {settings.alpha:g}, dropout {settings.dropout:g}). {saved}",
        **card.sections,
    }
