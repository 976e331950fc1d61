"""The image-classification task on images made in the test and on its embedded digits: every data layout, bad images, training, predict and the pipeline."""

import random
from pathlib import Path

import pytest

from ftrun.api.plugin_manager import get_plugin_manager
from ftrun.manifest.config import build_config

#: A ViT small enough to train in seconds, on inputs of 8×8.
TINY_VIT = {
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
    manifest = {"task": task.name, "model": model or {"config": TINY_VIT}, "data": data, **tables}
    return build_config(task, manifest, source="test.toml", base_dir=tmp_path)


# -- the processor ---------------------------------------------------------------------------


def test_the_processor_of_a_model_from_a_config_is_sized_to_it(task, tmp_path):
    config = config_for(task, tmp_path, {"dataset": "unused"}, model={"config": {**TINY_VIT, "image_size": 12, "patch_size": 4}})
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
    result = ftrun_cli("check", "--manifest", ftrun_manifest({"task": "image-classification", "model": {"config": TINY_VIT}, "data": data}))
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
    manifest = ftrun_manifest({"task": "text-classification", "model": {"config": TINY_VIT}, "data": {"train_file": str(folder), "eval_file": str(folder)}})
    result = ftrun_cli("check", "--manifest", manifest)
    assert result.code == 2 and f"data.train_file: {folder} is a directory, not a data file" in result.err
