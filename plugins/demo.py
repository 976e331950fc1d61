"""What the built-in tasks' embedded demos share: the small BERT they train from scratch."""

from __future__ import annotations

from typing import Any


def small_bert(max_positions: int) -> dict[str, Any]:
    """A ``[model] config`` table: a 2-layer BERT of width 128 that learns a demo sample in minutes on a CPU."""
    return {
        "model_type": "bert",
        "hidden_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 256,
        "max_position_embeddings": max_positions,
    }
