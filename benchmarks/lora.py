"""LoRA against full fine-tuning, side by side: trainable parameters, train samples/s, checkpoint size, accuracy.

In one process, on the same IMDB reviews, model, seed and batches, ftrun's real runner
(``ftrun.runner.run``) fine-tunes the model twice per round, once whole and once with a
``[peft]`` table, alternating which goes first from round to round (the machine is noisy:
paired runs, not runs minutes apart). Each run's learning rate is its own (LoRA's adapters
want a higher one).

    python benchmarks/lora.py                                   # ../shared's MiniLM and IMDB
    python benchmarks/lora.py --model path/to/model --data path/to/imdb --train-samples 1000 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from ftrun import hookimpl, load_run
from ftrun.runner import run
from ftrun.util.display import Display

SHARED = Path(__file__).resolve().parents[2] / "shared"


class Counter:
    """A plugin that records the trainable and total parameters of the model the run trains."""

    def __init__(self) -> None:
        self.trainable = self.total = 0

    @hookimpl(wrapper=True)
    def ftrun_build_head(self, task, config, data):
        model = yield
        self.trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        self.total = sum(p.numel() for p in model.parameters())
        return model


def manifest(args: argparse.Namespace, lora: bool) -> dict[str, Any]:
    tables: dict[str, Any] = {
        "task": "text-classification",
        "model": {"name": str(args.model)},
        "data": {
            "train_file": str(args.data / "train.jsonl.gz"),
            "eval_file": str(args.data / "dev.jsonl.gz"),
            "label_names": ["neg", "pos"],
            "max_train_samples": args.train_samples,
            "max_eval_samples": args.eval_samples,
            "max_length": args.max_length,
        },
        "training": {
            "num_train_epochs": args.epochs,
            "per_device_train_batch_size": 16,
            "per_device_eval_batch_size": 32,
            "learning_rate": args.lora_rate if lora else args.rate,
            "warmup_steps": 0.1,
            "save_total_limit": 1,
        },
        "predict": {"examples": []},
    }
    if lora:
        tables["peft"] = {"r": args.rank}
    return tables


def one_run(args: argparse.Namespace, lora: bool, scratch: Path) -> dict[str, float]:
    counter = Counter()
    plugins, config = load_run(manifest=manifest(args, lora), plugins=[counter])
    out = scratch / ("lora" if lora else "full")
    result = run(config, plugins, out, overwrite=True, display=Display(quiet=True))
    checkpoint = max(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    return {
        "trainable": counter.trainable,
        "total": counter.total,
        "samples_per_second": result.train_metrics["train_samples_per_second"],
        "checkpoint_mb": sum(f.stat().st_size for f in checkpoint.rglob("*") if f.is_file()) / 1e6,
        "accuracy": result.eval_metrics["eval_accuracy"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=SHARED / "models" / "all-MiniLM-L6-v2")
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "imdb", help="a folder with train.jsonl.gz and dev.jsonl.gz")
    parser.add_argument("--train-samples", type=int, default=400)
    parser.add_argument("--eval-samples", type=int, default=200)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--rate", type=float, default=1e-4, help="learning rate of the full fine-tuning")
    parser.add_argument("--lora-rate", type=float, default=1e-3, help="learning rate of the LoRA run")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--output", type=Path, default=Path("lora-benchmark.json"))
    args = parser.parse_args(argv)
    for path in (args.model, args.data):
        if not path.exists():
            print(f"lora.py: {path} does not exist (--model / --data)", file=sys.stderr)
            return 2
    runs: dict[str, list[dict[str, float]]] = {"full": [], "lora": []}
    with tempfile.TemporaryDirectory(prefix="ftrun-lora-benchmark-") as scratch:
        for round_ in range(args.rounds):
            for lora in (False, True) if round_ % 2 == 0 else (True, False):
                runs["lora" if lora else "full"].append(one_run(args, lora, Path(scratch)))
    median = {name: {key: statistics.median(r[key] for r in rows) for key in rows[0]} for name, rows in runs.items()}
    full, lora = median["full"], median["lora"]
    print(
        f"{args.train_samples} IMDB reviews, {args.epochs:g} epochs, {args.max_length} tokens, {args.rounds} round(s); {platform.processor() or platform.machine()}, torch {torch.__version__}"
    )
    print(f"{'':<22}{'full':>14}{'lora':>14}{'lora / full':>14}")
    rows = [
        ("trainable parameters", "trainable", "{:,.0f}"),
        ("train samples/s", "samples_per_second", "{:.2f}"),
        ("checkpoint MB", "checkpoint_mb", "{:.1f}"),
        ("eval accuracy", "accuracy", "{:.3f}"),
    ]
    for label, key, form in rows:
        print(f"{label:<22}{form.format(full[key]):>14}{form.format(lora[key]):>14}{lora[key] / full[key]:>13.3f}x")
    args.output.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs, "median": median}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
