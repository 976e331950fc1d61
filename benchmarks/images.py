"""Image classification, side by side: ftrun against a hand-written ``Trainer`` script, and cached against lazy encoding.

1. On the real handwritten digits (../shared/data/digits: 1,200 train, 297 dev images), in one
   process, the same ViT built from a config (the task's demo model), seed, batch size, epochs
   and learning rate, round after round, alternating which goes first (the machine is noisy:
   paired runs, not runs minutes apart):

   - ``script``: what ``run_image_classification.py`` does, written by hand: ``imagefolder``,
     the model's image processor applied with ``set_transform``, a ``Trainer`` with a collator
     that stacks the pixels, accuracy from its predictions;
   - ``ftrun``: the built-in ``image-classification`` task through ftrun's real runner.

   For each, eval accuracy and train images/s over the median training step, timed from the end
   of one step to the end of the next, so that reading and encoding each batch counts, but not
   the first steps, evaluations or checkpoints.

2. The data stage alone on the same 1,200 images upscaled to 224×224 (a ViT-base's input), each
   mode in a fresh process: ``cached`` (every image encoded once and stored, as a text task's
   tokens are) against ``lazy`` (the task's default: only paths and labels stored, pixels made
   as batches are drawn). For each, the bytes the encoding wrote to the cache, the process's
   peak memory, the seconds to encode, and the seconds of one epoch of batches read.

    python benchmarks/images.py                                  # ../shared/data/digits
    python benchmarks/images.py --rounds 1 --epochs 1 --train path/to/train --eval path/to/dev

Each folder holds one subfolder per class. Results: the tables on the terminal, and JSON
(``--output``, default ``images-benchmark.json``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parents[2] / "shared"
DIGITS = SHARED / "data" / "digits"


# -- 1. ftrun against a hand-written Trainer script ------------------------------------------------


def step_timer() -> Any:
    """A ``TrainerCallback`` timing training steps end to end (batch reading included), evaluations and checkpoints left out."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.seconds: list[float] = []
            self.last: float | None = None
            self.skip = 2  # the first steps: allocation, the first batches' workers

        def on_epoch_begin(self, args, state, control, **kwargs):
            self.last = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            now = time.perf_counter()
            if self.skip:
                self.skip -= 1
            elif self.last is not None:
                self.seconds.append(now - self.last)
            self.last = now

        def on_evaluate(self, args, state, control, **kwargs):
            self.last = None

        def on_save(self, args, state, control, **kwargs):
            self.last = None

        def images_per_second(self, batch_size: int) -> float:
            """Over the median step: on a shared machine, a step that another process held up says nothing of either side."""
            return batch_size / statistics.median(self.seconds)

    return StepTimer()


def demo_model() -> dict[str, Any]:
    from ftrun.plugins.image_classification import ImageClassificationTask

    return ImageClassificationTask.demo["model"]["config"]


def run_ftrun(args: argparse.Namespace, scratch: Path) -> dict[str, float]:
    from ftrun import load_run
    from ftrun.runner import run
    from ftrun.util.display import Display

    manifest = {
        "task": "image-classification",
        "model": {"config": demo_model()},
        "data": {"train_file": str(args.train), "eval_file": str(args.eval)},
        "training": training_settings(args),
        "predict": {"examples": []},
    }
    plugins, config = load_run(manifest=manifest)
    timer = step_timer()
    result = run(config, plugins, scratch / "ftrun", overwrite=True, display=Display(quiet=True), callbacks=[timer])
    return {"accuracy": result.eval_metrics["eval_accuracy"], "images_per_second": timer.images_per_second(args.batch_size)}


def training_settings(args: argparse.Namespace) -> dict[str, Any]:
    """What both sides train with: the demo's schedule, at the benchmark's epochs; the task's weight decay, and ftrun's logging interval."""
    return {
        "num_train_epochs": args.epochs,
        "learning_rate": args.rate,
        "warmup_steps": 0,
        "weight_decay": 0.01,
        "logging_steps": 10,
        "per_device_train_batch_size": args.batch_size,
        "per_device_eval_batch_size": 64,
        "seed": 42,
        "eval_strategy": "epoch",
        "save_strategy": "no",
        "load_best_model_at_end": False,
    }


def run_script(args: argparse.Namespace, scratch: Path) -> dict[str, float]:
    """run_image_classification.py's flow, by hand, on the same folders and model."""
    import datasets
    import numpy as np
    import torch
    from transformers import AutoConfig, AutoModelForImageClassification, Trainer, TrainingArguments
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING_NAMES, get_image_processor_class_from_name
    from transformers.trainer_callback import PrinterCallback

    train = datasets.load_dataset("imagefolder", data_dir=str(args.train), split="train")
    evaluation = datasets.load_dataset("imagefolder", data_dir=str(args.eval), split="train")
    labels = train.features["label"].names
    settings = demo_model()
    processor = get_image_processor_class_from_name(IMAGE_PROCESSOR_MAPPING_NAMES["vit"]["pil"])(
        size={"height": settings["image_size"], "width": settings["image_size"]}, do_convert_rgb=True
    )

    def transform(batch: dict[str, list]) -> dict[str, Any]:
        return {"pixel_values": processor(batch["image"], return_tensors="pt")["pixel_values"], "labels": batch["label"]}

    train.set_transform(transform)
    evaluation.set_transform(transform)
    config = AutoConfig.for_model(**settings, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)})
    torch.manual_seed(42)
    model = AutoModelForImageClassification.from_config(config)
    trainer_args = TrainingArguments(
        output_dir=str(scratch / "script"), report_to="none", remove_unused_columns=False, disable_tqdm=True, **training_settings(args)
    )

    def collate(examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return {"pixel_values": torch.stack([e["pixel_values"] for e in examples]), "labels": torch.tensor([e["labels"] for e in examples])}

    def accuracy(prediction: Any) -> dict[str, float]:
        return {"accuracy": float(np.mean(np.argmax(prediction.predictions, axis=-1) == prediction.label_ids))}

    timer = step_timer()
    trainer = Trainer(
        model=model,
        args=trainer_args,
        train_dataset=train,
        eval_dataset=evaluation,
        data_collator=collate,
        compute_metrics=accuracy,
        processing_class=processor,
        callbacks=[timer],
    )
    trainer.remove_callback(PrinterCallback)  # its log lines, with no progress bar to show them
    trainer.train()
    return {"accuracy": trainer.evaluate()["eval_accuracy"], "images_per_second": timer.images_per_second(args.batch_size)}


# -- 2. cached against lazy encoding, each in a fresh process ------------------------------------


def encode_once(lazy: bool, train: str, side: int, cache: str, queue: Any) -> None:
    """The data stage of a run on ``train`` at ``side``×``side`` (encoded and cached, or lazily), then one epoch of batches read."""
    os.environ["HF_DATASETS_CACHE"] = cache
    import torch
    from torch.utils.data import DataLoader
    from transformers import default_data_collator

    from ftrun import hookimpl, load_run
    from ftrun.plugins.image_classification import ImageClassificationTask
    from ftrun.stages.data import load_data

    class CachedImages(ImageClassificationTask):
        """The task with its pixels encoded once and stored, as a text task's tokens are."""

        name = "image-classification-cached"
        lazy_encoding = False

    class Register:
        @hookimpl
        def ftrun_register_tasks(self, register):
            register(CachedImages())

    torch.set_num_threads(1)
    model = {**demo_model(), "image_size": side, "patch_size": 16}
    name = "image-classification" if lazy else CachedImages.name
    plugins, config = load_run(manifest={"task": name, "model": {"config": model}, "data": {"train_file": train, "eval_file": train}}, plugins=[Register()])
    before = folder_bytes(Path(cache))
    start = time.perf_counter()
    data = load_data(plugins.task(name), config, encode=("train",))
    encoded = time.perf_counter() - start
    written = folder_bytes(Path(cache)) - before
    start = time.perf_counter()
    for batch in DataLoader(data.train, batch_size=32, collate_fn=default_data_collator):
        assert batch["pixel_values"].shape[-1] == side
    queue.put(
        {
            "cache_mb": written / 1e6,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "encode_seconds": encoded,
            "epoch_seconds": time.perf_counter() - start,
        }
    )


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def cached_and_lazy(args: argparse.Namespace, scratch: Path) -> dict[str, dict[str, float]]:
    context = multiprocessing.get_context("spawn")  # a fresh process each: its peak memory is its own
    results = {}
    for mode in ("cached", "lazy"):
        queue = context.Queue()
        process = context.Process(target=encode_once, args=(mode == "lazy", str(args.train), args.side, str(scratch / f"cache-{mode}"), queue))
        process.start()
        results[mode] = queue.get()
        process.join()
    return results


# -- the whole ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=Path, default=DIGITS / "train", help="a folder with one subfolder per class")
    parser.add_argument("--eval", type=Path, default=DIGITS / "dev", help="a folder with one subfolder per class")
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--rate", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--side", type=int, default=224, help="the side images are upscaled to for the cached-against-lazy figures")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch's threads: one, on a shared machine where two threads wait on each other (see docs/performance.md)"
    )
    parser.add_argument("--output", type=Path, default=Path("images-benchmark.json"))
    args = parser.parse_args(argv)
    for path in (args.train, args.eval):
        if not path.is_dir():
            print(f"images.py: {path} is not a folder (--train / --eval)", file=sys.stderr)
            return 2
    import torch

    torch.set_num_threads(args.threads)
    runs: dict[str, list[dict[str, float]]] = {"script": [], "ftrun": []}
    with tempfile.TemporaryDirectory(prefix="ftrun-images-benchmark-") as folder:
        scratch = Path(folder)
        for round_ in range(args.rounds):
            for name in ("script", "ftrun") if round_ % 2 == 0 else ("ftrun", "script"):
                runs[name].append((run_script if name == "script" else run_ftrun)(args, scratch))
        encoding = cached_and_lazy(args, scratch)
    median = {name: {key: statistics.median(r[key] for r in rows) for key in rows[0]} for name, rows in runs.items()}
    script, ours = median["script"], median["ftrun"]
    print(
        f"{args.train} → {args.eval}: the demo's ViT, {args.epochs:g} epochs, batches of {args.batch_size}, {args.rounds} round(s), {args.threads} thread(s); "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    )
    print(f"{'':<22}{'script':>12}{'ftrun':>12}{'ftrun / script':>16}")
    for label, key, form in (("eval accuracy", "accuracy", "{:.3f}"), ("train images/s", "images_per_second", "{:.1f}")):
        print(f"{label:<22}{form.format(script[key]):>12}{form.format(ours[key]):>12}{ours[key] / script[key]:>15.3f}x")
    cached, lazy = encoding["cached"], encoding["lazy"]
    print(f"\nthe train images at {args.side}×{args.side}, the data stage and one epoch of batches, each in a fresh process")
    print(f"{'':<22}{'cached':>12}{'lazy':>12}{'lazy / cached':>16}")
    for label, key, form in (
        ("cache written, MB", "cache_mb", "{:.1f}"),
        ("peak memory, MB", "peak_rss_mb", "{:.0f}"),
        ("data stage, s", "encode_seconds", "{:.1f}"),
        ("one epoch read, s", "epoch_seconds", "{:.1f}"),
    ):
        ratio = f"{lazy[key] / cached[key]:>15.3f}x" if cached[key] else f"{'—':>16}"
        print(f"{label:<22}{form.format(cached[key]):>12}{form.format(lazy[key]):>12}{ratio}")
    args.output.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs, "median": median, "encoding": encoding}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
