"""ftrun's own test setup: everything offline, in a throwaway datasets cache.

The fixtures (cli, write_manifest, tiny_manifest, tiny_bert, ...) come from ftrun's pytest
plugin, ``ftrun.testing``, which plugin authors use too.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Before any Hugging Face library is imported: never touch the network, and keep the
# datasets cache (where tokenized splits are cached) out of the user's home. pytest imports
# ftrun.testing before this file, which is why that module imports none of them.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="ftrun-test-datasets-"))
os.environ["TOKENIZERS_PARALLELISM"] = "false"

# Loaded through its pytest11 entry point already; named here too, so that ftrun's own tests
# keep their fixtures where entry points are not loaded (PYTEST_DISABLE_PLUGIN_AUTOLOAD).
pytest_plugins = ["ftrun.testing"]

SHARED = Path(__file__).resolve().parents[2] / "shared"


def pytest_terminal_summary(terminalreporter):
    """Show the figures integration tests measured (accuracy, throughput) at the end of the run."""
    figures = [value for report in terminalreporter.stats.get("passed", []) for key, value in report.user_properties if key == "figure"]
    if figures:
        terminalreporter.section("measured figures")
        for figure in figures:
            terminalreporter.write_line(figure)
