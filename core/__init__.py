"""ftrun: fine-tune Hugging Face transformers for any task, from one command or one TOML file.

Everything a plugin needs is importable from here (and fixtures from ``ftrun.testing``);
docs/plugins.md describes it. The package is laid out by layer, each importing only those
below it (docs/architecture.md; import-linter checks it):

- ``ftrun.util``: errors, the terminal, the Hub, memory, precision
- ``ftrun.manifest``: configuration and schema
- ``ftrun.stages``: data, head, metrics, trainer, predict, outputs
- ``ftrun.api``: the ``Task`` base class, the hook specs, the plugin manager
- ``ftrun.runner``: one run, top to bottom
- ``ftrun.commands`` and ``ftrun.cli``: the commands
"""

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

import pluggy

__version__ = "0.1.0"

#: Marks a function as an implementation of an ``ftrun_…`` hook.
hookimpl = pluggy.HookimplMarker("ftrun")

#: Public names and the modules that define them, imported on first use (PEP 562) so that
#: ``ftrun --help`` and ``ftrun --version`` answer without importing torch.
_PUBLIC = {
    "DataConfig": "manifest.config",
    "TextDataConfig": "manifest.config",
    "MetricsConfig": "manifest.config",
    "ModelConfig": "manifest.config",
    "TextModelConfig": "manifest.config",
    "PredictConfig": "manifest.config",
    "Section": "manifest.config",
    "RunConfig": "manifest.config",
    "did_you_mean": "manifest.config",
    "load_run": "api.load",
    "merge": "manifest.config",
    "FtrunError": "util.errors",
    "first_line": "util.errors",
    "Splits": "stages.data",
    "load_splits": "stages.data",
    "require_columns": "stages.data",
    "check_text_column": "stages.data",
    "where_row": "stages.data",
    "source_row": "stages.data",
    "split_source": "stages.data",
    "describe_value": "stages.data",
    "describe_feature": "stages.data",
    "text_lines": "stages.data",
    "TaskData": "stages.data",
    "Metrics": "api.task",
    "ModelCard": "stages.output",
    "Task": "api.task",
    "BaseTask": "api.task",
    "model_config_dict": "stages.head",
    "model_config_of": "stages.head",
    "Preflight": "stages.preflight",
    "TokenSequence": "stages.preflight",
    "check_eval_size": "stages.preflight",
    "tokenizer_limit": "stages.preflight",
    "predict_with_pipeline": "stages.predict",
    "Trainer": "stages.training",
    "lengths_of": "stages.training",
    "tokens_of": "stages.training",
    "Seq2SeqTrainer": "stages.training",
    "TrainerMixin": "stages.training",
    "load_data": "stages.data",
    "load_tokenizer": "stages.data",
    "encode_batch": "stages.data",
    "build_head": "stages.head",
    "check_model": "stages.head",
    "build_trainer": "stages.training",
    "get_plugin_manager": "api.plugin_manager",
    "plots": "stages.plots",
}
#: Public names that differ from the name in their module.
_RENAMED = {"generic_preflight": ("stages.preflight", "preflight")}

__all__ = ["__version__", "hookimpl", *_PUBLIC, *_RENAMED]


def __getattr__(name: str):
    if name in _RENAMED:
        module, attribute = _RENAMED[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
    if name not in _PUBLIC:
        raise AttributeError(f"module 'ftrun' has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_PUBLIC[name]}")
    return module if module.__name__.endswith(f".{name}") else getattr(module, name)


#: Modules of the flat layout before the layers (ftrun 0.1), and where they went.
MOVED = {
    "errors": "util.errors",
    "display": "util.display",
    "hub": "util.hub",
    "memory": "util.memory",
    "precision": "util.precision",
    "config": "manifest.config",
    "schema": "manifest.schema",
    "data": "stages.data",
    "tokenizer": "stages.tokenizer",
    "head": "stages.head",
    "preflight": "stages.preflight",
    "training": "stages.training",
    "predict": "stages.predict",
    "output": "stages.output",
    "output_dir": "stages.output_dir",
    "plots": "stages.plots",
    "distributed": "stages.distributed",
    "evaluation": "commands.evaluate",
    "task": "api.task",
    "hookspecs": "api.hookspecs",
    "plugin_manager": "api.plugin_manager",
    "default_stages": "api.default_stages",
    "tune": "commands.tune",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``import ftrun.data`` (a path of the flat layout) still works, with a warning naming the module's new place.

    The old name is bound to the module itself, so its objects are the same ones.
    """

    def find_spec(self, fullname: str, path: object, target: object = None) -> importlib.machinery.ModuleSpec | None:
        old = fullname.removeprefix(f"{__name__}.")
        if old == fullname or old not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> object:
        new = f"{__name__}.{MOVED[spec.name.removeprefix(f'{__name__}.')]}"
        warnings.warn(f"{spec.name} moved to {new}; import public names from ftrun (docs/plugins.md lists them)", DeprecationWarning, stacklevel=2)
        return _Alias(importlib.import_module(new))

    def exec_module(self, module: object) -> None:
        sys.modules[module.__name__] = module.target  # the module itself from now on


class _Alias:
    """What the import system fills in for an old name, for the moment before ``exec_module`` replaces it with the module."""

    def __init__(self, target: object) -> None:
        self.target = target


sys.meta_path.append(_MovedModules())
