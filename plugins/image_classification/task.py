"""Image classification: an image → one of N named labels (a ViT on beans, as run_image_classification.py).

Registered through the ``ftrun`` entry-point group, exactly as a third-party plugin is: a task
on another modality, written against the same public API (``BaseTask``) as the text tasks. Its
data is a folder with one subfolder per class, a table of image paths or bytes, or a Hub
dataset with an ``Image`` feature (``ftrun.plugins.media``, shared with audio classification).
Pixels are never cached: the rows hold paths, and images are read and augmented as batches are drawn.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from ftrun import BaseTask, DataConfig, Preflight, RunConfig, Splits, TaskData, hookimpl, model_config_of, require_columns

from ..classification import OneLabelPerExample
from ..labels import LabelNames
from ..media import as_file, base_folder, check_files, content_of, media_inputs, read_folder, read_media_input, source_of, undecoded
from .images import IMAGE, horizontal_flip, load_image_processor, random_resized_crop

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import BaseImageProcessor

DEMO_DIR = Path(__file__).parent / "data"

#: Images of each split whose size the pre-flight reads (their headers only).
SIZE_SAMPLE = 200


class ImageClassificationData(DataConfig):
    train_file: str | None = Field(
        None,
        min_length=1,
        description="A folder with one subfolder per class, or a csv, json, jsonl or parquet table of images.",
        json_schema_extra={"path": "local"},
    )
    eval_file: str | None = Field(
        None,
        min_length=1,
        description="A folder with one subfolder per class, or a csv, json, jsonl or parquet table of images.",
        json_schema_extra={"path": "local"},
    )
    image_column: str = Field(
        "image",
        description="Column holding each image: a path relative to the table file, the image's bytes, or a Hub dataset's Image feature "
        "(a folder with one subfolder per class gives the columns image and label).",
    )
    label_column: str = Field("label", description="Column holding the label: a ClassLabel, strings, or integers.")
    label_names: LabelNames = Field(None, description="Names of integer labels 0..N-1, when the data has none.")
    random_resized_crop: bool = Field(
        False,
        description="At train time, a random part of each image (8-100% of its area, aspect 3:4 to 4:3), resized to the model's input, "
        "as run_image_classification.py: for photos whose object fills the frame at any scale; not for small centred images (digits).",
    )
    horizontal_flip: bool = Field(
        False, description="At train time, mirror half of the images: for photos whose class does not depend on left and right; not for digits or text."
    )


class ImageClassificationTask(OneLabelPerExample, BaseTask):
    name = "image-classification"
    description = "classify an image into named labels"
    pipeline_tag = "image-classification"
    data_config = ImageClassificationData
    processor_class = "AutoImageProcessor"
    processor_name = "image_processor"
    #: Pixels are made as batches are drawn, from the paths the cache holds: random augmentation at train time only.
    lazy_encoding: ClassVar[bool] = True
    #: run_image_classification.py's example: a ViT pretrained on ImageNet-21k, fine-tuned on the
    #: Hub's beans (leaf photos of three classes), 5 epochs at 2e-5, batches of 8, with random
    #: resized crops and flips at train time.
    defaults = {
        "model": {"name": "google/vit-base-patch16-224-in21k"},
        "data": {
            "dataset": "beans",
            "train_split": "train",
            "eval_split": "validation",
            "label_column": "labels",
            "random_resized_crop": True,
            "horizontal_flip": True,
        },
        "training": {
            "num_train_epochs": 5,
            "learning_rate": 2e-5,
            "per_device_train_batch_size": 8,
            "per_device_eval_batch_size": 8,
            "weight_decay": 0.01,
        },
        "metrics": {"names": ["accuracy", "f1"], "best": "accuracy"},
    }

    #: Real handwritten digits shipped in the package (8×8) and a small ViT built from a config for them (four patches of 4×4).
    demo = {
        "model": {
            "config": {
                "model_type": "vit",
                "image_size": 8,
                "patch_size": 4,
                "hidden_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "intermediate_size": 128,
            },
        },
        "data": {
            "train_file": str(DEMO_DIR / "train"),
            "eval_file": str(DEMO_DIR / "eval"),
            "label_column": "label",
            "random_resized_crop": False,
            "horizontal_flip": False,
        },
        # A model trained from scratch wants a higher rate and no long warmup.
        "training": {"num_train_epochs": 15, "learning_rate": 1e-3, "warmup_steps": 0, "per_device_train_batch_size": 16},
        "predict": {"examples": [str(DEMO_DIR / "eval" / "3" / "0003.png"), str(DEMO_DIR / "eval" / "7" / "0043.png")]},
    }

    @property
    def auto_model(self) -> type:
        # Imported on first use: transformers' model classes import torch, which listing the tasks must not.
        from transformers import AutoModelForImageClassification

        return AutoModelForImageClassification

    # -- data stage --------------------------------------------------------------------

    def read_file(self, path: Path) -> Dataset | None:
        """A folder with one subfolder per class (``imagefolder``); tables are read as usual."""
        return read_folder(path, IMAGE)

    def check_data(self, splits: Splits, config: RunConfig) -> list[str]:
        """The columns, every image (it exists and opens as one: else its row and file, now), then the labels."""
        settings: ImageClassificationData = config.data
        for name in ("train", "eval"):
            split = getattr(splits, name)
            require_columns(split, {"image_column": settings.image_column, "label_column": settings.label_column}, config, name)
            check_files(split, config, name, IMAGE)
        return self.check_labels(splits, config)

    def load_processor(self, config: RunConfig, splits: Splits | None) -> BaseImageProcessor:
        return load_image_processor(config)

    def encode(self, batch: dict[str, list], data: TaskData, config: RunConfig, split: str) -> dict[str, list]:
        """Images → pixel values, as the processor makes them; at train time, randomly cropped and flipped first where ``[data]`` says so."""
        settings: ImageClassificationData = config.data
        base = base_folder(config, split) if split in ("train", "eval") else None
        images = [content_of(value, base, IMAGE) for value in batch[settings.image_column]]
        if split == "train":
            if settings.random_resized_crop:
                images = [random_resized_crop(image) for image in images]
            if settings.horizontal_flip:
                images = [horizontal_flip(image) for image in images]
        encoded = {"pixel_values": list(data.processor(images, return_tensors="pt")["pixel_values"])}
        if settings.label_column in batch:
            encoded["labels"] = self.label_ids(batch[settings.label_column], data, config)
        return encoded

    def preflight(self, config: RunConfig, data: TaskData) -> Preflight:
        """The shared report, and a word where the images are far smaller than the model's input (upscaled, as the digits) or larger."""
        report = super().preflight(config, data)
        model_config = model_config_of(config)
        side = model_config.image_size if isinstance(model_config.image_size, int) else max(model_config.image_size)
        for name in ("train", "eval"):
            sizes = image_sizes(getattr(data.raw, name), config, name)
            if not sizes:
                continue
            (common, count), *_ = sizes.most_common(1)
            shown = f"{common[0]}×{common[1]}" + ("" if count == sum(sizes.values()) else f" ({count / sum(sizes.values()):.0%}; {len(sizes)} sizes)")
            largest = max(max(size) for size in sizes)
            if largest * 2 <= side:
                report.warn(
                    "data.image_column",
                    f"the {name} images are at most {largest} pixels a side (most {shown}), upscaled to the model's {side}×{side}: "
                    "a model with a smaller image_size learns as well, faster",
                )
        return report

    def read_input(self, value: str | dict[str, Any], where: str, config: RunConfig | None = None) -> str:
        """An image file's path (made absolute; checked to open as an image), a URL, or a ``data:`` URI."""
        return read_media_input(value, where, IMAGE)

    def inputs_from(self, batch: dict[str, list], config: RunConfig, source: Path | None = None) -> list[str]:
        """Each row's image (``image_column``; a folder's images), its path relative to the table's folder."""
        return media_inputs(batch, config, source, IMAGE)

    def format_prediction(self, prediction: list[dict[str, Any]]) -> str:
        """The best label of the pipeline's top ones, and its score."""
        return super().format_prediction(prediction[0])


def image_sizes(split: Dataset, config: RunConfig, name: str) -> Counter:
    """How many of a sample of ``split``'s images have each (width, height): their headers read, not their pixels."""
    from PIL import Image

    column = config.data.image_column
    base = base_folder(config, name)
    values = undecoded(split.select(range(min(SIZE_SAMPLE, len(split)))), column, IMAGE)[column]
    sizes: Counter = Counter()
    for value in values:
        source = source_of(value, base)
        with Image.open(as_file(source)) as image:
            sizes[image.size] += 1
    return sizes


TASK = ImageClassificationTask()


@hookimpl
def ftrun_register_tasks(register):
    register(TASK)
