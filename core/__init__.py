"""ftrun: fine-tune Hugging Face transformers for any task, from one command or one TOML file.

Everything a plugin needs is importable from here.
"""

import pluggy

__version__ = "0.1.0"

#: Marks a function as an implementation of an ``ftrun_…`` hook.
hookimpl = pluggy.HookimplMarker("ftrun")

from .config import DataConfig, ModelConfig, RunConfig  # noqa: E402
from .data import Splits, load_splits, require_columns  # noqa: E402
from .errors import FtrunError  # noqa: E402
from .task import Metrics, Task, TaskData  # noqa: E402

__all__ = [
    "DataConfig",
    "FtrunError",
    "Metrics",
    "ModelConfig",
    "RunConfig",
    "Splits",
    "Task",
    "TaskData",
    "__version__",
    "hookimpl",
    "load_splits",
    "require_columns",
]
