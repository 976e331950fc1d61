"""Image classification on real handwritten digits (needs ../shared; skipped without it): UCI optdigits, 8×8 grayscale PNGs.

No pretrained vision model is available offline: the demo's ViT is built from a config and
trained from scratch, on ../shared/data/digits read in the two layouts a user has: the
``labels.jsonl`` tables (paths relative to them), or the folder of split subfolders itself as a
dataset. Its accuracy is counted again, independently, from what ``pipeline("image-classification")``
answers on the saved model, image by image.
"""

import json

import pytest
from conftest import SHARED, short_and_full

from ftrun.plugins.image_classification import ImageClassificationTask

DIGITS = SHARED / "data" / "digits"

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not DIGITS.is_dir(), reason="../shared/data/digits is absent")]


@short_and_full(("layout", "samples", "epochs", "floor"), ("tables", 400, 8, 0.6), ("dataset", None, 15, 0.9))
def test_a_vit_from_a_config_reads_the_digits_and_the_pipeline_agrees(ftrun_cli, ftrun_manifest, tmp_path, record_property, layout, samples, epochs, floor):
    from transformers import pipeline

    demo = ImageClassificationTask.demo
    if layout == "tables":
        source = {"train_file": str(DIGITS / "train" / "labels.jsonl"), "eval_file": str(DIGITS / "dev" / "labels.jsonl")}
    else:  # train/ and dev/: datasets names dev the validation split
        source = {"dataset": str(DIGITS), "train_split": "train", "eval_split": "validation"}
    data = {"label_column": "label", **source, **({"max_train_samples": samples} if samples else {})}
    manifest = ftrun_manifest(
        {"task": "image-classification", "model": demo["model"], "data": data, "training": {**demo["training"], "num_train_epochs": epochs}}
    )
    out = tmp_path / "digits-vit"
    result = ftrun_cli("--manifest", manifest, "--output-dir", out)
    assert result.code == 0, result
    assert f"train: {samples or 1200} examples" in result.out and "eval: 297 examples" in result.out
    accuracy = json.loads((out / "eval_results.json").read_text())["eval_accuracy"]

    rows = [json.loads(line) for line in (DIGITS / "dev" / "labels.jsonl").read_text().splitlines()]
    classify = pipeline("image-classification", model=str(out))
    answers = classify([str(DIGITS / "dev" / row["image"]) for row in rows], batch_size=64, top_k=1)
    counted = sum(answer[0]["label"] == row["label"] for answer, row in zip(answers, rows)) / len(rows)
    train = json.loads((out / "train_results.json").read_text())
    record_property(
        "figure",
        f"ViT (2 layers, width 64, four 4×4 patches) from scratch on {samples or 1200} UCI digits ({layout}), {epochs} epochs: "
        f"eval accuracy {accuracy:.3f} on the 297 dev images, the pipeline's count {counted:.3f}; train {train['train_samples_per_second']:.0f} images/s",
    )
    assert counted == pytest.approx(accuracy, abs=1e-9)
    assert accuracy > floor
