"""The image-classification task on images made in the test and on its embedded digits: every data layout, bad images, training, predict and the pipeline."""

import json
import random
from pathlib import Path

import pytest

from ftrun.api.plugin_manager import get_plugin_manager
from ftrun.manifest.config import build_config
from ftrun.stages.data import load_data, load_splits
from ftrun.testing import TINY_TRAINING

#: A ViT small enough to train in seconds, on inputs of 8×8 (ftrun.testing's TINY_VIT takes 32×32).
VIT_8PX = {
    "model_type": "vit",
    "image_size": 8,
    "patch_size": 4,
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}
#: Image modes that are not RGB, each converted to RGB.
MODES = ["L", "RGBA", "P", "CMYK", "RGB"]


@pytest.fixture(scope="module")
def task():
    return get_plugin_manager().task("image-classification")


def make_image(path: Path, label: str, seed: int, mode: str = "RGB", size: tuple[int, int] = (8, 8)) -> Path:
    """A noisy image, dark for ``dark`` and light for ``light``: a class a tiny model learns at once."""
    from PIL import Image

    rng = random.Random(seed)
    level = 40 if label == "dark" else 210
    image = Image.new("L", size)
    image.putdata([min(255, max(0, level + rng.randint(-30, 30))) for _ in range(size[0] * size[1])])
    path.parent.mkdir(parents=True, exist_ok=True)
    image.convert(mode).save(path, format="JPEG" if path.suffix == ".jpg" else "PNG")
    return path


def make_folder(folder: Path, count: int, seed: int = 0) -> Path:
    """``folder/<label>/<n>.png``: ``count`` images, half dark, half light, in modes that vary."""
    for i in range(count):
        label = ("dark", "light")[i % 2]
        mode = MODES[i % len(MODES)] if mode_fits(MODES[i % len(MODES)]) else "RGB"
        make_image(folder / label / f"{i}.png", label, seed + i, mode=mode)
    return folder


def mode_fits(mode: str) -> bool:
    return mode != "CMYK"  # PNG holds no CMYK: a JPEG does (see test_every_mode_becomes_rgb_pixels)


def make_table(folder: Path, name: str, count: int, seed: int = 0) -> Path:
    """``name``.csv in ``folder``: columns image (a path relative to the table) and label."""
    import pandas as pd

    rows = []
    for i in range(count):
        label = ("dark", "light")[i % 2]
        make_image(folder / "images" / f"{name}-{i}.png", label, seed + i)
        rows.append({"image": f"images/{name}-{i}.png", "label": label})
    path = folder / f"{name}.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def config_for(task, tmp_path: Path, data: dict, model: dict | None = None, **tables):
    manifest = {"task": task.name, "model": model or {"config": VIT_8PX}, "data": data, **tables}
    return build_config(task, manifest, source="test.toml", base_dir=tmp_path)


# -- the processor ---------------------------------------------------------------------------


def test_the_processor_of_a_model_from_a_config_is_sized_to_it(task, tmp_path):
    config = config_for(task, tmp_path, {"dataset": "unused"}, model={"config": {**VIT_8PX, "image_size": 12, "patch_size": 4}})
    processor = task.load_processor(config, None)
    assert processor.size == {"height": 12, "width": 12} and processor.do_convert_rgb


def test_a_model_type_without_an_image_processor_is_one_line(ftrun_cli, ftrun_manifest, tmp_path):
    make_folder(tmp_path / "train", 4)
    manifest = ftrun_manifest(
        {
            "task": "image-classification",
            "model": {"config": {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}},
            "data": {"train_file": str(tmp_path / "train"), "eval_file": str(tmp_path / "train")},
        }
    )
    result = ftrun_cli("check", "--manifest", manifest)
    assert result.code == 2 and "Traceback" not in result.err
    assert "run.toml: model.config: model type 'bert' has no image processor in transformers" in result.err


# -- bad data: one line, before training -----------------------------------------------------


def bad_check(ftrun_cli, ftrun_manifest, data: dict) -> str:
    result = ftrun_cli("check", "--manifest", ftrun_manifest({"task": "image-classification", "model": {"config": VIT_8PX}, "data": data}))
    assert result.code == 2 and "Traceback" not in result.err and "internal error" not in result.err, result
    (line,) = result.err.strip().splitlines()
    return line


def test_a_missing_image_names_its_row_and_file(ftrun_cli, ftrun_manifest, tmp_path):
    train = make_table(tmp_path, "train", 4)
    (tmp_path / "images" / "train-2.png").unlink()
    line = bad_check(ftrun_cli, ftrun_manifest, {"train_file": str(train), "eval_file": str(train)})
    assert line == f"ftrun: error: run.toml: data.image_column: row 3 of train.csv: {tmp_path / 'images' / 'train-2.png'} does not exist"


def test_a_file_that_is_not_an_image_names_its_row_and_file(ftrun_cli, ftrun_manifest, tmp_path):
    train = make_table(tmp_path, "train", 4)
    (tmp_path / "images" / "train-1.png").write_text("not an image")
    line = bad_check(ftrun_cli, ftrun_manifest, {"train_file": str(train), "eval_file": str(train)})
    assert line.startswith(f"ftrun: error: run.toml: data.image_column: row 2 of train.csv: {tmp_path / 'images' / 'train-1.png'} is not an image file (")


def test_a_truncated_image_in_a_folder_names_its_file(ftrun_cli, ftrun_manifest, tmp_path):
    folder = make_folder(tmp_path / "train", 4)
    broken = folder / "light" / "1.png"
    broken.write_bytes(broken.read_bytes()[:40])
    line = bad_check(ftrun_cli, ftrun_manifest, {"train_file": str(folder), "eval_file": str(folder)})
    assert "data.image_column: row " in line and f"of train: {broken} is not an image file (" in line


def test_a_missing_column_names_the_key(ftrun_cli, ftrun_manifest, tmp_path):
    train = make_table(tmp_path, "train", 4)
    line = bad_check(ftrun_cli, ftrun_manifest, {"train_file": str(train), "eval_file": str(train), "image_column": "picture"})
    assert line == "ftrun: error: run.toml: data.image_column: column 'picture' not in the train split (columns: image, label)"


def test_an_empty_cell_is_a_row_without_an_image(ftrun_cli, ftrun_manifest, tmp_path):
    train = make_table(tmp_path, "train", 4)
    train.write_text(train.read_text().replace("images/train-3.png", ""))
    line = bad_check(ftrun_cli, ftrun_manifest, {"train_file": str(train), "eval_file": str(train)})
    assert line.startswith("ftrun: error: run.toml: data.image_column: row 4 of train.csv has no image")


def test_a_folder_for_a_text_task_is_still_no_data_file(ftrun_cli, ftrun_manifest, tmp_path):
    folder = make_folder(tmp_path / "train", 2)
    manifest = ftrun_manifest({"task": "text-classification", "model": {"config": VIT_8PX}, "data": {"train_file": str(folder), "eval_file": str(folder)}})
    result = ftrun_cli("check", "--manifest", manifest)
    assert result.code == 2 and f"data.train_file: {folder} is a directory, not a data file" in result.err


# -- data layouts ----------------------------------------------------------------------------


def test_a_folder_with_a_subfolder_per_class_is_a_split_its_subfolders_the_labels(task, tmp_path):
    train, evaluation = make_folder(tmp_path / "train", 8), make_folder(tmp_path / "eval", 4, seed=100)
    config = config_for(task, tmp_path, {"train_file": str(train), "eval_file": str(evaluation)})
    data = load_data(task, config)
    assert data.labels == ["dark", "light"]
    batch = data.train[:3]
    assert [tuple(pixels.shape) for pixels in batch["pixel_values"]] == [(3, 8, 8)] * 3
    assert sorted(set(data.train[:]["labels"])) == [0, 1]


def test_a_table_of_paths_relative_to_it_read_from_any_folder(task, tmp_path, monkeypatch):
    train, evaluation = make_table(tmp_path / "data", "train", 6), make_table(tmp_path / "data", "eval", 4, seed=50)
    monkeypatch.chdir(tmp_path)  # not the tables' folder: their paths are relative to them
    config = config_for(task, tmp_path, {"train_file": str(train), "eval_file": str(evaluation)})
    data = load_data(task, config)
    assert data.labels == ["dark", "light"] and len(data.eval) == 4
    assert tuple(data.eval[0]["pixel_values"].shape) == (3, 8, 8)


def test_a_table_of_image_bytes_with_integer_labels_named(task, tmp_path):
    import pandas as pd

    paths = {}
    for name, count in (("train", 6), ("eval", 4)):
        rows = [{"picture": make_image(tmp_path / "made" / f"{name}{i}.png", ("dark", "light")[i % 2], i).read_bytes(), "class": i % 2} for i in range(count)]
        paths[f"{name}_file"] = str(tmp_path / f"{name}.parquet")
        pd.DataFrame(rows).to_parquet(paths[f"{name}_file"])
    config = config_for(task, tmp_path, {**paths, "image_column": "picture", "label_column": "class", "label_names": ["dark", "light"]})
    data = load_data(task, config)
    assert data.labels == ["dark", "light"]
    assert data.train[:6]["labels"] == [0, 1, 0, 1, 0, 1]


def test_a_dataset_folder_of_split_subfolders_holds_images_as_an_image_feature(task, tmp_path):
    make_folder(tmp_path / "digits" / "train", 6)
    make_folder(tmp_path / "digits" / "test", 4, seed=100)
    config = config_for(task, tmp_path, {"dataset": str(tmp_path / "digits")})
    splits = load_splits(config, task.read_file)
    assert type(splits.train.features["image"]).__name__ == "Image"  # decoded by datasets, read here undecoded
    data = load_data(task, config)
    assert data.labels == ["dark", "light"] and len(data.train) == 6
    assert tuple(data.train[0]["pixel_values"].shape) == (3, 8, 8)  # as datasets decoded it


def test_every_mode_becomes_rgb_pixels(task, tmp_path):
    images = [make_image(tmp_path / "train" / "dark" / f"{mode}.{'jpg' if mode == 'CMYK' else 'png'}", "dark", 1, mode) for mode in MODES]
    make_image(tmp_path / "train" / "light" / "0.png", "light", 2)
    config = config_for(task, tmp_path, {"train_file": str(tmp_path / "train"), "eval_file": str(tmp_path / "train")})
    data = load_data(task, config)
    from PIL import Image

    assert sorted(Image.open(path).mode for path in images) == sorted(MODES)
    assert {tuple(pixels.shape) for pixels in data.eval[:]["pixel_values"]} == {(3, 8, 8)}


def test_augmentation_is_random_at_train_time_only(task, tmp_path):
    make_folder(tmp_path / "train", 4)
    folder = str(tmp_path / "train")
    settings = {"train_file": folder, "eval_file": folder, "random_resized_crop": True, "horizontal_flip": True}
    data = load_data(task, config_for(task, tmp_path, settings))
    train = [data.train[:4]["pixel_values"] for _ in range(3)]
    evaluation = [data.eval[:4]["pixel_values"] for _ in range(2)]
    assert any(not a.equal(b) for a, b in zip(train[0], train[1])) or any(not a.equal(b) for a, b in zip(train[0], train[2]))
    assert all(a.equal(b) for a, b in zip(*evaluation))
    plain = load_data(task, config_for(task, tmp_path, {"train_file": folder, "eval_file": folder}))
    assert all(a.equal(b) for a, b in zip(plain.train[:4]["pixel_values"], plain.train[:4]["pixel_values"]))


def test_pixels_are_never_cached_only_the_rows_paths(task, tmp_path):
    make_folder(tmp_path / "train", 4)
    folder = str(tmp_path / "train")
    data = load_data(task, config_for(task, tmp_path, {"train_file": folder, "eval_file": folder}))
    assert data.stats["train"].lazy
    assert data.train.column_names == data.eval.column_names == ["image", "label"]  # what is stored: paths and labels


# -- a run, its model directory, predict -----------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny ViT trained on made images: (the model directory, the folder of eval images)."""
    import tomli_w

    from ftrun.cli import main

    root = tmp_path_factory.mktemp("trained")
    train, evaluation = make_folder(root / "train", 24), make_folder(root / "eval", 8, seed=500)
    manifest = root / "run.toml"
    manifest.write_text(
        tomli_w.dumps(
            {
                "task": "image-classification",
                "model": {"config": VIT_8PX},
                "data": {"train_file": str(train), "eval_file": str(evaluation)},
                "training": {**TINY_TRAINING, "num_train_epochs": 3, "learning_rate": 3e-3},
                "predict": {"examples": [str(evaluation / "dark" / "0.png")]},
            }
        )
    )
    assert main(["--manifest", str(manifest), "--output-dir", str(root / "out")]) == 0
    return root / "out", evaluation


def test_a_run_saves_a_model_the_pipeline_loads_with_the_label_names(trained):
    from transformers import pipeline

    out, evaluation = trained
    assert (out / "preprocessor_config.json").is_file()
    assert json.loads((out / "config.json").read_text())["id2label"] == {"0": "dark", "1": "light"}
    results = json.loads((out / "eval_results.json").read_text())
    assert {"eval_accuracy", "eval_f1"} <= set(results)
    assert (out / "plots" / "confusion_matrix.png").stat().st_size > 0
    pipe = pipeline("image-classification", model=str(out))
    labels = {top["label"] for top in pipe(str(evaluation / "dark" / "0.png"))}
    assert labels == {"dark", "light"}


def test_predict_on_paths_a_table_and_a_folder(ftrun_cli, trained, tmp_path):
    out, evaluation = trained
    image = evaluation / "light" / "1.png"
    result = ftrun_cli("predict", "--model", out, "--json", str(image))
    assert result.code == 0, result
    record = json.loads(result.out)
    assert record["input"] == str(image) and record["prediction"][0]["label"] in {"dark", "light"}

    table = make_table(tmp_path, "new", 3)
    result = ftrun_cli("predict", "--model", out, "--input", table, "--output", tmp_path / "table.jsonl")
    assert result.code == 0, result
    rows = [json.loads(line) for line in (tmp_path / "table.jsonl").read_text().splitlines()]
    assert [row["input"] for row in rows] == [str(tmp_path / "images" / f"new-{i}.png") for i in range(3)]

    result = ftrun_cli("predict", "--model", out, "--input", evaluation, "--output", tmp_path / "folder.jsonl")
    assert result.code == 0, result
    assert len((tmp_path / "folder.jsonl").read_text().splitlines()) == 8


def test_predict_on_a_missing_or_broken_image_is_one_line(ftrun_cli, trained, tmp_path):
    out, _ = trained
    result = ftrun_cli("predict", "--model", out, str(tmp_path / "nowhere.png"))
    assert result.code == 2 and result.err.strip() == f"ftrun: error: predict: argument 1: {tmp_path / 'nowhere.png'} does not exist"
    (tmp_path / "text.png").write_text("hello")
    result = ftrun_cli("predict", "--model", out, str(tmp_path / "text.png"))
    assert result.code == 2 and f"predict: argument 1: {tmp_path / 'text.png'} is not an image file (" in result.err


# Slow (a minute): by default, tests/integration/test_integration_images.py trains the same ViT on the real digits.
@pytest.mark.slow
def test_the_demo_learns_the_digits(ftrun_cli, tmp_path):
    """The embedded default as it is: real digits, a ViT built from a config, well above chance."""
    result = ftrun_cli("--task", "image-classification", "--demo", "--output-dir", tmp_path / "demo")
    assert result.code == 0, result
    assert result.run.eval_metrics["eval_accuracy"] > 0.6  # ten classes: chance is 0.1


def test_the_pre_flight_shows_the_image_sizes_and_warns_of_upscaling(ftrun_cli, ftrun_manifest, tmp_path):
    folder = make_folder(tmp_path / "train", 6)
    manifest = ftrun_manifest(
        {
            "task": "image-classification",
            "model": {"config": {**VIT_8PX, "image_size": 32, "patch_size": 8}},
            "data": {"train_file": str(folder), "eval_file": str(folder)},
        }
    )
    result = ftrun_cli("check", "--json", "--manifest", manifest)
    assert result.code == 0, result
    report = json.loads(result.out)
    assert report["splits"]["train"]["figures"] == {"image size (w×h)": "8×8 (all), made 32×32"}
    (warning,) = [w["line"] for w in report["warnings"] if w["key"] == "data.image_column"][:1]
    assert "the train images are at most 8 pixels a side (most 8×8 (all)), upscaled to the model's 32×32" in warning
