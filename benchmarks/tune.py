"""``ftrun tune`` on IMDB: wall time with and without pruning, and the best accuracy found against the task's defaults.

Three commands in one process, as a user types them: ``ftrun tune`` of a search over learning
rate × batch size with the median pruner, the same search without pruning, and one ``ftrun``
run with the task's default settings on the same reviews. The studies alternate which goes
first (``--order``), since the machine is noisy.

    python benchmarks/tune.py                                   # ../shared's MiniLM and IMDB
    python benchmarks/tune.py --model path/to/model --data path/to/imdb --trials 8 --train-samples 400
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import tomli_w
import torch

from ftrun.cli import main as ftrun

SHARED = Path(__file__).resolve().parents[2] / "shared"


def manifest(args: argparse.Namespace, pruner: str | None) -> dict[str, Any]:
    """The run; with a ``pruner``, its [search] table too. Evaluated (and checkpointed) four times a run, so a pruner has steps to act on."""
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
            "per_device_eval_batch_size": 64,
            "eval_strategy": "steps",
            "save_strategy": "steps",
            "eval_steps": 0.25,
            "save_steps": 0.25,
            "save_total_limit": 1,
        },
        "predict": {"examples": []},
    }
    if pruner is not None:
        tables["search"] = {
            "trials": args.trials,
            "pruner": pruner,
            "seed": args.seed,
            "space": {
                "training.learning_rate": {"low": 1e-5, "high": 1e-3, "log": True},
                "training.per_device_train_batch_size": {"choices": [8, 16, 32]},
            },
        }
    return tables


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    code = ftrun(command)
    if code != 0:
        raise SystemExit(f"tune.py: `ftrun {' '.join(command)}` failed with exit code {code}")
    return time.perf_counter() - start


def study(args: argparse.Namespace, scratch: Path, pruner: str) -> dict[str, Any]:
    path = scratch / f"{pruner}.toml"
    path.write_text(tomli_w.dumps(manifest(args, pruner)))
    out = scratch / f"tune-{pruner}"
    seconds = timed(["tune", "--manifest", str(path), "--output-dir", str(out)])
    with open(out / "trials.csv", newline="") as handle:
        trials = list(csv.DictReader(handle))
    accuracy = json.loads((out / "eval_results.json").read_text())["eval_accuracy"]
    return {"seconds": seconds, "best_accuracy": accuracy, "pruned": sum(row["state"] == "PRUNED" for row in trials), "trials": trials}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=SHARED / "models" / "all-MiniLM-L6-v2")
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "imdb", help="a folder with train.jsonl.gz and dev.jsonl.gz")
    parser.add_argument("--train-samples", type=int, default=200)
    parser.add_argument("--eval-samples", type=int, default=200)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--order", choices=["pruned-first", "unpruned-first"], default="pruned-first")
    parser.add_argument("--output", type=Path, default=Path("tune-benchmark.json"))
    args = parser.parse_args(argv)
    for path in (args.model, args.data):
        if not path.exists():
            print(f"tune.py: {path} does not exist (--model / --data)", file=sys.stderr)
            return 2
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ftrun-tune-benchmark-") as scratch:
        for pruner in ("median", "none") if args.order == "pruned-first" else ("none", "median"):
            results[pruner] = study(args, Path(scratch), pruner)
        default = Path(scratch) / "default.toml"
        default.write_text(tomli_w.dumps(manifest(args, None)))
        seconds = timed(["--manifest", str(default), "--output-dir", str(Path(scratch) / "default")])
        accuracy = json.loads((Path(scratch) / "default" / "eval_results.json").read_text())["eval_accuracy"]
        results["default"] = {"seconds": seconds, "best_accuracy": accuracy}
    print(
        f"\n{args.trials} trials of learning rate x batch size, {args.train_samples} IMDB reviews ({args.eval_samples} dev), {args.epochs:g} epoch(s), "
        f"{args.max_length} tokens; {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    print(f"{'':<26}{'wall s':>10}{'best accuracy':>16}{'pruned':>8}")
    for name, label in (("median", "tune, median pruner"), ("none", "tune, no pruning"), ("default", "one run, default settings")):
        row = results[name]
        print(f"{label:<26}{row['seconds']:>10.0f}{row['best_accuracy']:>16.3f}{row.get('pruned', ''):>8}")
    print(f"pruning / no pruning: wall time {results['median']['seconds'] / results['none']['seconds']:.2f}x")
    print(f"best found - default: accuracy {results['none']['best_accuracy'] - results['default']['best_accuracy']:+.3f} (no pruning), "
          f"{results['median']['best_accuracy'] - results['default']['best_accuracy']:+.3f} (median pruner)")  # fmt: skip
    args.output.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
