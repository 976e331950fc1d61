"""ftrun: fine-tune Hugging Face transformers for any task, from one command or one TOML file.

Everything a plugin needs is importable from here; docs/plugins.md describes it.
"""

import importlib

import pluggy

__version__ = "0.1.0"

#: Marks a function as an implementation of an ``ftrun_…`` hook.
hookimpl = pluggy.HookimplMarker("ftrun")

#: Public names and their modules, imported on first use (PEP 562) so that
#: ``ftrun --help`` and ``ftrun --version`` answer without importing torch.
_PUBLIC = {
    "DataConfig": "config",
    "MetricsConfig": "config",
    "ModelConfig": "config",
    "PredictConfig": "config",
    "Section": "config",
    "RunConfig": "config",
    "load_run": "config",
    "merge": "config",
    "FtrunError": "errors",
    "first_line": "errors",
    "Splits": "data",
    "load_splits": "data",
    "require_columns": "data",
    "check_text_column": "data",
    "where_row": "data",
    "TaskData": "data",
    "Metrics": "task",
    "ModelCard": "output",
    "Task": "task",
    "model_config_dict": "head",
    "model_config_of": "head",
    "Preflight": "preflight",
    "TokenSequence": "preflight",
    "Trainer": "training",
    "Seq2SeqTrainer": "training",
    "TrainerMixin": "training",
}

__all__ = ["__version__", "hookimpl", *_PUBLIC]


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'ftrun' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
