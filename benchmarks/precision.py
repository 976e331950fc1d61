"""fp32 against bf16 autocast on the CPU, side by side: train steps/s of models of several sizes.

ftrun's default precision on a CPU with bf16 instructions (AVX512-BF16 or AMX) follows what
this measures (ftrun.util.precision). Each model is built from a config with random weights and fed
random inputs (token ids; pixels for the ViTs): a train step is the forward pass, the loss, the
backward pass and an AdamW step, as the Trainer takes it, under ``torch.autocast("cpu",
torch.bfloat16)`` for bf16 (what the Trainer's ``bf16`` does on a CPU), with malloc set up as ftrun's
runs have it (``ftrun.util.memory.keep_freed_memory``). In one process, the two
precisions alternate round by round on the same model and batch (the machine is noisy: paired
measurements, not runs minutes apart); each figure is the median of the rounds.

    python benchmarks/precision.py --threads 2
    python benchmarks/precision.py --models bert-tiny vit-tiny --rounds 5 --steps 10
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import time
from typing import Any

import torch

#: The models measured, each ``(family, config, batch size, sequence length or image size)``: BERT encoders
#: from a 2-layer toy to all-MiniLM-L6-v2's and BERT-base's shapes, and two ViTs (the size of an image
#: classification plugin's tests, and DeiT-tiny's shape).
MODELS: dict[str, tuple[str, dict[str, Any], int, int]] = {
    "bert-tiny": ("bert", {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128}, 8, 128),
    "bert-small": ("bert", {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 1024}, 8, 128),
    "bert-minilm": ("bert", {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536}, 8, 128),
    "bert-base": ("bert", {}, 8, 128),
    "vit-tiny": (
        "vit",
        {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128, "image_size": 32, "patch_size": 4},
        16,
        32,
    ),
    "vit-deit-tiny": (
        "vit",
        {"hidden_size": 192, "num_hidden_layers": 12, "num_attention_heads": 3, "intermediate_size": 768, "image_size": 224, "patch_size": 16},
        8,
        224,
    ),
}


def build(name: str) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """The model ``name`` with random weights, two labels, and one batch of random inputs."""
    from transformers import AutoConfig, AutoModelForImageClassification, AutoModelForSequenceClassification

    family, settings, batch, size = MODELS[name]
    config = AutoConfig.for_model(family, num_labels=2, **settings)
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (batch,), generator=generator)
    if family == "vit":
        model = AutoModelForImageClassification.from_config(config)
        inputs = {"pixel_values": torch.randn(batch, 3, size, size, generator=generator)}
    else:
        model = AutoModelForSequenceClassification.from_config(config)
        inputs = {"input_ids": torch.randint(0, config.vocab_size, (batch, size), generator=generator)}
    return model, {**inputs, "labels": labels}


def steps_per_second(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: dict[str, torch.Tensor], bf16: bool, steps: int) -> float:
    """Train steps per second over ``steps`` steps, after one untimed step (autocast's first casts)."""

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - start)


def measure(name: str, rounds: int, steps: int) -> dict[str, Any]:
    """fp32 and bf16 train steps/s of ``name``, alternating which goes first from round to round."""
    torch.manual_seed(0)
    model, batch = build(name)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    speeds: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for round_ in range(rounds):
        for precision in ("fp32", "bf16") if round_ % 2 == 0 else ("bf16", "fp32"):
            speeds[precision].append(steps_per_second(model, optimizer, batch, precision == "bf16", steps))
    fp32, bf16 = statistics.median(speeds["fp32"]), statistics.median(speeds["bf16"])
    config = model.config
    return {
        "model": name,
        "hidden_size": config.hidden_size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "batch": MODELS[name][2],
        "fp32_steps_per_second": fp32,
        "bf16_steps_per_second": bf16,
        "bf16_over_fp32": bf16 / fp32,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS), help="the models to measure (default: all)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the two precisions, alternating (default 3)")
    parser.add_argument("--steps", type=int, default=5, help="timed train steps per precision and round (default 5)")
    parser.add_argument("--threads", type=int, help="torch's intra-op threads (default: torch's)")
    parser.add_argument("--output", help="also write the figures, with the machine, to this JSON file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from ftrun.util.memory import keep_freed_memory
    from ftrun.util.precision import cpu_computes_in_bf16

    machine = {
        "cpu": platform.processor() or platform.machine(),
        "bf16_instructions": cpu_computes_in_bf16(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    print(f"CPU {machine['cpu']}, bf16 instructions: {machine['bf16_instructions']}, {machine['threads']} threads, torch {machine['torch']}")
    print(f"{'model':<14} {'hidden':>6} {'parameters':>11} {'batch':>5} {'fp32 steps/s':>12} {'bf16 steps/s':>12} {'bf16 / fp32':>11}")
    results = []
    for name in args.models:
        with keep_freed_memory(torch.device("cpu")):
            result = measure(name, args.rounds, args.steps)
        results.append(result)
        print(
            f"{name:<14} {result['hidden_size']:>6} {result['parameters']:>11,} {result['batch']:>5} "
            f"{result['fp32_steps_per_second']:>12.2f} {result['bf16_steps_per_second']:>12.2f} {result['bf16_over_fp32']:>10.2f}x",
            flush=True,
        )
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            json.dump({"machine": machine, "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()
