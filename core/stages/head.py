"""The head stage: the model with the task's output layer, from pretrained weights or built from a config.

``[model]`` names exactly one source: ``name`` (a Hub id or a local directory of weights) or
``config`` (a table or a config.json, to build a fresh model from). Everything that reads the
source goes through :func:`model_config_of`, so a run, ``ftrun check`` and the pre-flight report
agree on what the model is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftrun.manifest.config import looks_like_path
from ftrun.util.errors import FtrunError, first_line

if TYPE_CHECKING:
    from transformers import PreTrainedConfig, PreTrainedModel

    from ftrun.api.task import BaseTask
    from ftrun.manifest.config import RunConfig
    from ftrun.stages.data import TaskData


def build_head(task: BaseTask, config: RunConfig, data: TaskData) -> PreTrainedModel:
    """Pretrained weights with a fresh output layer, or a model built from a config; the task's labels wired in."""
    kwargs = task.head_kwargs(data, config)
    if named_model(config) is not None:
        model = config.model
        # The settings go on the config, not to from_pretrained, which hands the ones a config
        # class does not declare to the model's constructor.
        model_config = model_config_of(config, **kwargs)
        try:
            return task.auto_model.from_pretrained(model.name, config=model_config, revision=model.revision, trust_remote_code=model.trust_remote_code)
        except (OSError, ValueError) as exc:
            raise FtrunError(f"{config.where('model.name')}: cannot load {model.name!r}: {first_line(exc)}") from exc
    kwargs.update(task.processor_settings(data, config))
    model_config = model_config_of(config, **kwargs)
    if model_config.is_encoder_decoder and getattr(model_config, "decoder_start_token_id", None) is None:
        # T5-family configs leave it to their checkpoints, which start decoding from the pad token.
        model_config.decoder_start_token_id = model_config.pad_token_id
    try:
        return task.auto_model.from_config(model_config)
    except (ValueError, TypeError, KeyError) as exc:
        raise FtrunError(f"{config.where('model.config')}: {first_line(exc)}") from exc


def check_model(config: RunConfig) -> None:
    """What a run and ``ftrun check`` verify of ``[model]`` before loading weights: it exists, and fits the data and tokenizer.

    The length and tokenizer checks apply where the task's tables have those keys (``Task``'s, for text).
    """
    from transformers import AutoTokenizer

    model = config.model
    max_length, tokenizer = getattr(config.data, "max_length", None), getattr(model, "tokenizer", None)
    if named_model(config) is not None:
        path = Path(model.name)
        if path.is_dir() and not any(any(path.glob(pattern)) for pattern in ("*.safetensors", "*.bin", "*.safetensors.index.json")):
            raise FtrunError(f"{config.where('model.name')}: {path} has no model weights (*.safetensors or *.bin)")
    model_config = model_config_of(config)
    # Both would only fail in the middle of training, as an index error deep in the model.
    positions = getattr(model_config, "max_position_embeddings", None)
    if max_length is not None and positions is not None and max_length > positions:
        raise FtrunError(f"{config.where('data.max_length')}: {max_length} tokens is more than the model takes ({positions})")
    if tokenizer and model.name:
        check_local(config, "model.tokenizer", tokenizer)
        try:
            tokens = len(AutoTokenizer.from_pretrained(tokenizer, revision=model.revision, trust_remote_code=model.trust_remote_code))
        except (OSError, ValueError) as exc:
            raise FtrunError(f"{config.where('model.tokenizer')}: cannot load tokenizer {tokenizer!r}: {first_line(exc)}") from exc
        if tokens > model_config.vocab_size:
            raise FtrunError(
                f"{config.where('model.tokenizer')}: has {tokens} tokens, more than the {model_config.vocab_size} "
                f"of {model.name}'s vocabulary: the tokenizer does not belong to the model"
            )


def model_config_of(config: RunConfig, **overrides: Any) -> PreTrainedConfig:
    """The config of the model ``[model]`` names (no weights loaded): the one it is built from, or the pretrained model's.

    ``overrides`` (labels, vocabulary size, a task's own settings) are set on it.
    """
    from transformers import AutoConfig

    model = config.model
    if named_model(config) is not None:
        try:
            pretrained = AutoConfig.from_pretrained(model.name, revision=model.revision, trust_remote_code=model.trust_remote_code)
        except (OSError, ValueError) as exc:
            raise FtrunError(f"{config.where('model.name')}: cannot load {model.name!r}: {first_line(exc)}") from exc
        for key, value in overrides.items():  # in order: num_labels first, then the label names it would reset
            setattr(pretrained, key, value)
        return pretrained
    settings = model_config_dict(config)
    if "model_type" not in settings:
        raise FtrunError(f'{config.where("model.config")}: needs a model_type (e.g. "bert")')
    try:
        return AutoConfig.for_model(**{**settings, **overrides})
    except (ValueError, TypeError, KeyError) as exc:
        raise FtrunError(f"{config.where('model.config')}: {first_line(exc)}") from exc


def named_model(config: RunConfig) -> str | None:
    """The pretrained model ``[model]`` names (checked to exist where it is a path), or ``None`` for one built from a config.

    Exactly one of the two sources must be given.
    """
    model = config.model
    if model.config is None and model.name is None:
        raise FtrunError(f"{config.where('model')}: name a model (model.name) or give a model.config")
    if model.config is not None and model.name is not None:
        raise FtrunError(f"{config.where('model')}: give either name (pretrained) or config (from scratch), not both")
    if model.name is not None:
        check_local(config, "model.name", model.name)
    return model.name


def model_config_dict(config: RunConfig) -> dict[str, Any]:
    """``[model] config`` as a dict, read from a file or folder when it is a path."""
    value = config.model.config
    if value is None:
        return {}
    if isinstance(value, dict):
        return dict(value)
    path = Path(value)
    if path.is_dir():
        path = path / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FtrunError(f"{config.where('model.config')}: cannot read {path}: {first_line(exc)}") from exc


def check_local(config: RunConfig, key: str, value: str) -> None:
    """A value that is a local path must exist; Hub ids are left to the Hub."""
    if looks_like_path(value) and not Path(value).exists():
        raise FtrunError(f"{config.where(key)}: {value} does not exist")
