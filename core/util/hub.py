"""Knowing quickly whether the Hugging Face Hub can be reached.

Without this, every Hub call retries for about half a minute before failing offline.
When the Hub is unreachable ftrun switches the libraries to offline mode, so cached
models and datasets load at once and missing ones fail at once.
"""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlparse

TRUE = {"1", "on", "yes", "true"}


def offline_requested() -> bool:
    return any(os.environ.get(name, "").lower() in TRUE for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hub endpoint opens within ``timeout`` seconds."""
    if offline_requested():
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def go_offline_unless_reachable() -> bool:
    """Put huggingface_hub, transformers and datasets in offline mode if the Hub is unreachable.

    Returns whether the Hub is reachable.
    """
    if hub_reachable():
        return True
    os.environ["HF_HUB_OFFLINE"] = "1"
    import datasets.config
    import huggingface_hub.constants

    huggingface_hub.constants.HF_HUB_OFFLINE = True
    datasets.config.HF_HUB_OFFLINE = True
    return False


def unavailable_offline(model: str | None, dataset: str | None) -> list[str]:
    """Which of a model and a dataset cannot be loaded without the Hub (not in the local cache)."""
    missing = []
    if model:
        from transformers import AutoConfig

        try:
            AutoConfig.from_pretrained(model)
        except (OSError, ValueError):
            missing.append(f"model {model}")
    if dataset:
        import datasets

        try:
            datasets.load_dataset_builder(dataset)
        except Exception:  # datasets raises several kinds of error for "not cached"
            missing.append(f"dataset {dataset}")
    return missing
