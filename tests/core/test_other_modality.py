"""A task on another modality runs through the same public API as a text task, and no tokenizer is ever loaded.

Tested from the outside, as a third party would write it: a ``BaseTask`` plugin on tiny PNG
images with a real image processor and a tiny ViT built from a config. ``ftrun check``, a run,
``ftrun predict`` and ``ftrun eval`` all work on it; its processor is what the data stage gives
the task, what the Trainer saves and what ``transformers.pipeline`` loads back.
"""

from __future__ import annotations

import collections
import json
import sys

import numpy as np
import pytest

from ftrun import FtrunError
from ftrun.testing import TINY_TRAINING, TINY_VIT, write_jsonl

MODULE = "ftrun_test_other_modality"

PLUGIN = """
from pathlib import Path

import numpy as np
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForImageClassification, ViTImageProcessor, default_data_collator

from ftrun import BaseTask, FtrunError, Metrics, hookimpl
from ftrun.stages.head import model_config_of

#: What the data stage gave the task's encode, per call: the processor's class.
PROCESSORS = []


class TinyImages(BaseTask):
    name = "tiny-images"
    pipeline_tag = "image-classification"
    auto_model = AutoModelForImageClassification
    processor_class = "AutoImageProcessor"
    processor_name = "image_processor"

    def check_data(self, splits, config):
        for name in ("train", "eval"):
            for row, path in enumerate(getattr(splits, name)["image"], 1):
                if not Path(path).is_file():
                    raise FtrunError(f"{config.where('data')}: row {row} of the {name} split: {path} does not exist")
        return sorted(set(splits.train["label"]))

    def labels_of(self, split, config):
        return [[label] for label in split["label"]]

    def load_processor(self, config, splits):
        if config.model.name:
            return AutoImageProcessor.from_pretrained(config.model.name)
        size = model_config_of(config).image_size  # sized to the model built from [model] config
        return ViTImageProcessor(size={"height": size, "width": size})

    def encode(self, batch, data, config, split):
        PROCESSORS.append(type(data.processor).__name__)
        images = [Image.open(path).convert("RGB") for path in batch["image"]]
        features = {"pixel_values": data.processor(images)["pixel_values"]}
        if split != "predict":
            features["labels"] = [data.label2id[label] for label in batch["label"]]
        return features

    def input_figures(self, split, data, config):
        sizes = sorted(Image.open(path).size for path in split["image"])
        size = data.processor.size
        return {"image size (w×h)": " to ".join(dict.fromkeys(f"{w}×{h}" for w, h in (sizes[0], sizes[-1]))), "model input": f"{size['width']}×{size['height']}"}

    def build_metrics(self, config, data):
        def compute(outputs):
            return {"accuracy": float(np.mean(np.argmax(outputs.predictions, axis=-1) == outputs.label_ids))}

        return Metrics(compute=compute, best="accuracy")

    def format_prediction(self, prediction):
        return prediction[0]["label"]


class LazyTinyImages(TinyImages):
    # The same task, encoding as examples are read; its collator records which split each batch was encoded as.

    name = "tiny-images-lazy"
    lazy_encoding = True

    def encode(self, batch, data, config, split):
        return {**super().encode(batch, data, config, split), "split": [split] * len(batch["image"])}

    def example_lengths(self, features, config):
        MEASURED.append(features.column_names)
        return None

    def data_collator(self, data, model, config):
        def collate(features):
            BATCHES.append({feature.pop("split") for feature in features})
            return default_data_collator(features)

        return collate


class TableTinyImages(LazyTinyImages):
    # Lazy, and no transformers pipeline: ftrun's own predict encodes tables of the raw columns as the "predict" split.
    name = "tiny-images-table"
    pipeline_tag = None

    def format_prediction(self, prediction):
        return ["bright", "dark"][prediction.argmax()]  # the logits of the labels, in check_data's (sorted) order


#: The splits each batch of the lazy task was encoded as.
BATCHES = []
#: The columns of each split the lazy task measured: its raw rows, in a run and in ftrun check alike.
MEASURED = []


@hookimpl
def ftrun_register_tasks(register):
    register(TinyImages())
    register(LazyTinyImages())
    register(TableTinyImages())
"""


def write_images(folder, count: int, offset: int = 0) -> list[dict[str, str]]:
    """PNG images of two classes a model tells apart at once: dark and bright, grayscale and palette ones among them."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    rng = np.random.default_rng(offset)
    for i in range(count):
        label = "bright" if i % 2 else "dark"
        pixels = (rng.integers(160, 255, (12, 12)) if label == "bright" else rng.integers(0, 90, (12, 12))).astype(np.uint8)
        image = Image.fromarray(pixels, mode="L")
        image = image.convert("P") if i % 3 == 0 else image  # other modes than RGB: the processor converts them
        path = folder / f"{offset + i}.png"
        image.save(path)
        rows.append({"image": str(path), "label": label})
    return rows


@pytest.fixture
def image_run(tmp_path, ftrun_plugin_module, ftrun_manifest, monkeypatch):
    """image_run(task, model) -> a manifest of a tiny run of one of this file's tasks, with every way to load a tokenizer made to fail."""
    import transformers

    def no_tokenizer(*args, **kwargs):
        raise AssertionError("a tokenizer was loaded for a task on images")

    for loader in (transformers.AutoTokenizer, transformers.PreTrainedTokenizerBase):
        monkeypatch.setattr(loader, "from_pretrained", no_tokenizer)
    module = ftrun_plugin_module(MODULE, PLUGIN)
    train = write_jsonl(tmp_path / "train.jsonl", write_images(tmp_path / "train", 16))
    evaluation = write_jsonl(tmp_path / "eval.jsonl", write_images(tmp_path / "eval", 8, offset=100))

    def make(task: str = "tiny-images", model: dict | None = None):
        return ftrun_manifest(
            {
                "task": task,
                "plugins": [module],
                "model": model or {"config": TINY_VIT},
                "data": {"train_file": str(train), "eval_file": str(evaluation)},
                "training": {**TINY_TRAINING, "num_train_epochs": 3, "learning_rate": 3e-3},
            },
            name=f"{task}.toml",
        )

    return make


@pytest.fixture
def images(image_run):
    return image_run()


def test_ftrun_check_encodes_a_sample_with_the_image_processor(images, ftrun_cli):
    result = ftrun_cli("check", "--manifest", images, "--json")
    assert result.code == 0, result
    report = json.loads(result.out)
    assert report["schedule"]["grouped"] is False  # images of one size: random batches, said
    assert report["splits"]["train"]["labels"] == {"dark": 8, "bright": 8}
    assert {name.startswith("ViTImageProcessor") for name in sys.modules[MODULE].PROCESSORS} == {True}  # the image processor, no tokenizer
    assert report["splits"]["eval"]["figures"] == {"image size (w×h)": "12×12", "model input": "32×32"}  # the task's own figures
    assert report["splits"]["train"]["unknown"] is None and report["splits"]["train"]["lengths"] == {}  # no token figures
    shown = ftrun_cli("check", "--manifest", images)
    assert "│ image size (w×h) │ 12×12 │ 12×12 │" in " ".join(shown.out.split()), shown.out


def test_a_run_saves_the_image_processor_and_predict_and_eval_load_it(images, ftrun_cli, tmp_path):
    from transformers import pipeline

    out = tmp_path / "out"
    result = ftrun_cli("--manifest", images, "--output-dir", out)
    assert result.code == 0, result
    saved = json.loads((out / "preprocessor_config.json").read_text())
    assert saved["image_processor_type"].startswith("ViTImageProcessor") and saved["size"] == {"height": 32, "width": 32}
    assert not list(out.glob("tokenizer*")) and not (out / "vocab.txt").exists()
    assert "AutoImageProcessor" not in (out / "README.md").read_text()  # a pipeline exists: the card's usage is the pipeline's
    assert 'pipeline("image-classification"' in (out / "README.md").read_text()

    bright, dark = str(tmp_path / "eval" / "101.png"), str(tmp_path / "eval" / "100.png")
    assert [top[0]["label"] for top in pipeline("image-classification", model=str(out))([bright, dark])] == ["bright", "dark"]
    predicted = ftrun_cli("predict", "--plugin", MODULE, "--model", out, bright, dark)
    assert predicted.code == 0, predicted
    assert [line.split("\t") for line in predicted.out.splitlines()] == [["bright", bright], ["dark", dark]]

    evaluated = ftrun_cli("eval", "--plugin", MODULE, "--model", out, "--output-dir", tmp_path / "eval-out")
    assert evaluated.code == 0, evaluated
    assert json.loads((tmp_path / "eval-out" / "eval_results.json").read_text())["eval_accuracy"] == 1.0


def test_predict_refuses_a_processor_no_pipeline_takes():
    from ftrun.stages.predict import pipeline_processor

    with pytest.raises(FtrunError, match="a object is no processor a transformers pipeline takes"):
        pipeline_processor(object())


def encoded_bytes(train_file) -> int:
    """The bytes of encoded splits cached beside the rows of ``train_file``."""
    import datasets

    from ftrun.stages.tokenizer import cache_dir_of

    folder = cache_dir_of(datasets.load_dataset("json", data_files=str(train_file), split="train"))
    return sum(path.stat().st_size for path in folder.glob("ftrun-tokenized-*.arrow"))


def test_a_lazy_task_caches_no_pixels_and_augments_only_training_batches(image_run, ftrun_cli, tmp_path):
    lazy = image_run("tiny-images-lazy")
    result = ftrun_cli("--manifest", lazy, "--output-dir", tmp_path / "lazy")
    assert result.code == 0, result
    assert "encoded as they are read" in result.out + result.err
    assert encoded_bytes(tmp_path / "train.jsonl") == 0  # nothing encoded was written: the cache holds the raw rows alone
    # Each batch is encoded as one split: 3 epochs of 2 training batches as "train", and one batch at each
    # of the 3 evaluations and the final one as "eval". (The collator cannot ask the model: the
    # first batch of an epoch is drawn before the Trainer puts the model back in training mode.)
    batches = collections.Counter(frozenset(splits) for splits in sys.modules[MODULE].BATCHES)
    assert batches == {frozenset({"train"}): 6, frozenset({"eval"}): 4}
    assert json.loads((tmp_path / "lazy" / "eval_results.json").read_text())["eval_accuracy"] == 1.0
    assert ftrun_cli("check", "--manifest", lazy).code == 0
    assert sys.modules[MODULE].MEASURED and all(columns == ["image", "label"] for columns in sys.modules[MODULE].MEASURED)

    cached = ftrun_cli("--manifest", image_run(), "--output-dir", tmp_path / "cached")
    assert cached.code == 0, cached
    assert encoded_bytes(tmp_path / "train.jsonl") > 16 * 3 * 32 * 32 * 4  # the same images, encoded and cached: every pixel of the train split


def test_each_task_shows_and_takes_its_own_keys_only(images, ftrun_cli, ftrun_fails):
    schema = json.loads(ftrun_cli("schema", "--plugin", MODULE).out)
    definitions = schema["$defs"]

    def table(task: str, name: str) -> set[str]:
        return set(definitions[definitions[f"task:{task}"]["properties"][name]["$ref"].rsplit("/", 1)[1]]["properties"])

    text_keys = {"max_length", "tokenizer", "tokenizer_vocab_size", "tokenizer_lowercase"}
    assert not text_keys & (table("tiny-images", "model") | table("tiny-images", "data"))
    assert text_keys <= table("text-classification", "model") | table("text-classification", "data")
    pages = {task: ftrun_cli("schema", "--markdown", "--task", task, "--plugin", MODULE).out for task in ("tiny-images", "text-classification")}
    assert "### `[model]`" in pages["tiny-images"] and not any(f"| `{key}` |" in pages["tiny-images"] for key in text_keys)  # its docs page
    assert all(f"| `{key}` |" in pages["text-classification"] for key in text_keys)
    ftrun_fails("check", "--manifest", images, "--set", "data.max_length=16", words=("--set data.max_length: unknown key",))
    ftrun_fails("check", "--manifest", images, "--set", 'model.tokenizer="bert-base-uncased"', words=("--set model.tokenizer: unknown key",))


def test_a_text_task_whose_data_table_subclasses_data_config_keeps_max_length():
    from ftrun import DataConfig, TextDataConfig
    from ftrun.plugins.text_classification import TextClassificationTask

    class ScoredData(DataConfig):
        score_column: str = "score"

    with pytest.warns(DeprecationWarning, match="ScoredTask.data_config subclasses DataConfig: a text task's should subclass TextDataConfig"):

        class ScoredTask(TextClassificationTask):
            name = "scored"
            data_config = ScoredData

    assert issubclass(ScoredTask.data_config, ScoredData) and issubclass(ScoredTask.data_config, TextDataConfig)
    assert ScoredTask.data_config(score_column="s", max_length=8).max_length == 8


def test_a_lazy_task_without_a_pipeline_predicts_through_its_encode(image_run, ftrun_cli, tmp_path):
    bright, dark = str(tmp_path / "eval" / "101.png"), str(tmp_path / "eval" / "100.png")
    table = image_run("tiny-images-table")
    result = ftrun_cli("--manifest", table, "--output-dir", tmp_path / "out")
    assert result.code == 0, result
    module = sys.modules[MODULE]
    module.BATCHES.clear()
    rows = [json.dumps({"image": path}) for path in (bright, dark)]
    predicted = ftrun_cli("predict", "--plugin", MODULE, "--model", tmp_path / "out", "--json-input", *rows)
    assert predicted.code == 0, predicted
    assert [line.split("\t")[0] for line in predicted.out.splitlines()] == ["bright", "dark"]
    assert module.BATCHES == [{"predict"}]  # encoded as it was read, as the predict split


def test_a_pretrained_image_model_is_fine_tuned_with_its_own_processor(image_run, ftrun_cli, ftrun_tiny_vit, tmp_path):
    result = ftrun_cli("--manifest", image_run(model={"name": str(ftrun_tiny_vit)}), "--output-dir", tmp_path / "out")
    assert result.code == 0, result
    saved = json.loads((tmp_path / "out" / "preprocessor_config.json").read_text())
    assert saved == json.loads((ftrun_tiny_vit / "preprocessor_config.json").read_text())  # the model's own, saved with it
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["id2label"] == {"0": "bright", "1": "dark"}
