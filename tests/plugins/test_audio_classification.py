"""The audio-classification task on tones generated here (no real audio ships with ftrun): decoding, resampling, the crop, a whole run, predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from ftrun.plugins.audio_classification.audio import crop, waveform
from ftrun.plugins.audio_classification.tones import tone


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])


@pytest.mark.parametrize("rate", [8000, 16000, 44100])
@pytest.mark.parametrize("suffix", ["wav", "flac"])
def test_a_tone_keeps_its_pitch_resampled_to_the_model_s_rate(tmp_path, rate, suffix):
    path = tmp_path / f"tone.{suffix}"
    soundfile.write(path, 0.5 * np.sin(2 * np.pi * 700 * np.arange(rate) / rate), rate)
    samples = waveform(path, 16000)
    assert samples.dtype == np.float32 and len(samples) == 16000  # one second at the model's rate
    assert abs(dominant_frequency(samples, 16000) - 700) <= 2


def test_channels_are_averaged_to_mono(tmp_path):
    t = np.arange(8000) / 8000
    stereo = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), np.zeros_like(t)], axis=1)
    soundfile.write(tmp_path / "stereo.wav", stereo, 8000)
    samples = waveform(tmp_path / "stereo.wav", 8000)
    assert samples.shape == (8000,) and abs(np.abs(samples).max() - 0.25) < 0.01


def test_the_crop_is_random_in_training_and_the_start_otherwise(tmp_path):
    samples = np.arange(1000, dtype=np.float32)
    starts = {int(crop(samples, 100, at_random=True)[0]) for _ in range(50)}
    assert len(starts) > 10 and all(0 <= start <= 900 for start in starts)
    assert {int(crop(samples, 100, at_random=False)[0]) for _ in range(5)} == {0}
    assert len(crop(samples, 2000, at_random=True)) == 1000  # a clip within the limit is kept whole


def test_a_long_clip_is_cut_to_the_maximum_duration_at_the_model_s_rate(tmp_path):
    soundfile.write(tmp_path / "long.flac", tone(440, 44100, 3.0, np.random.default_rng(0)), 44100)
    assert len(waveform(tmp_path / "long.flac", 16000, max_seconds=1.0, at_random=True)) == 16000


# -- the task, from its manifest to predict ------------------------------------------------

TASK_NAME = "audio-classification"
#: Quarter-second clips: a run of seconds.
SECONDS = 0.25


def tiny_model() -> dict:
    """The demo's small wav2vec2, built from a config, its feature encoder trained too."""
    from ftrun.plugins.audio_classification import TASK

    return {"config": TASK.demo["model"]["config"], "freeze_feature_encoder": False}


@pytest.fixture
def tones(tmp_path):
    """train/ (tones of four pitches at 8, 16 and 44.1 kHz, wav and flac, one subfolder per class) and eval/ (at 22.05 kHz)."""
    from ftrun.plugins.audio_classification.tones import write_tones

    for rate, suffix, seed in ((8000, "wav", 0), (16000, "flac", 1), (44100, "flac", 2)):
        write_tones(tmp_path / "train", per_class=3, rate=rate, seconds=SECONDS, suffix=suffix, seed=seed)
    write_tones(tmp_path / "eval", per_class=3, rate=22050, seconds=SECONDS, suffix="wav", seed=3)
    return tmp_path / "train", tmp_path / "eval"


def manifest_of(ftrun_manifest, data: dict, model: dict | None = None, **tables) -> Path:
    training = {"num_train_epochs": 3, "per_device_train_batch_size": 12, "gradient_accumulation_steps": 1, "learning_rate": 3e-3, "warmup_steps": 0}
    return ftrun_manifest({"task": TASK_NAME, "model": model or tiny_model(), "data": {"max_duration_seconds": 1.0, **data}, "training": training, **tables})


def test_a_run_learns_the_tones_at_any_rate_and_predicts_on_files(ftrun_cli, ftrun_manifest, tones, tmp_path):
    from transformers import pipeline

    from ftrun.plugins.audio_classification.tones import PITCHES

    train, evaluation = tones
    example = str(evaluation / "A3" / "22050-000.wav")
    manifest = manifest_of(ftrun_manifest, {"train_file": str(train), "eval_file": str(evaluation)}, predict={"examples": [example]})
    result = ftrun_cli("--manifest", manifest, "--output-dir", tmp_path / "out")
    assert result.code == 0, result
    metrics = json.loads((result.output_dir / "eval_results.json").read_text())
    assert metrics["eval_accuracy"] >= 0.75 and "eval_f1" in metrics  # chance is 0.25
    assert (result.output_dir / "plots" / "confusion_matrix.png").is_file()
    assert 'pipeline("audio-classification"' in (result.output_dir / "README.md").read_text() and (result.output_dir / "preprocessor_config.json").is_file()
    assert result.run.predictions[0][0]["label"] == "A3"

    # ftrun eval reads the eval folder again, and gives the run's final evaluation.
    again = ftrun_cli("eval", "--model", result.output_dir, "--output-dir", tmp_path / "again")
    assert again.code == 0, again
    assert json.loads((tmp_path / "again" / "eval_results.json").read_text())["eval_loss"] == pytest.approx(metrics["eval_loss"], abs=1e-6)

    # The output is a model directory transformers' pipeline loads, with the real label names and the feature extractor.
    pipe = pipeline("audio-classification", model=str(result.output_dir))
    assert sorted(pipe.model.config.id2label.values()) == sorted(PITCHES)
    rate = pipe.feature_extractor.sampling_rate
    clip = waveform(evaluation / "A5" / "22050-001.wav", rate)
    assert pipe({"raw": clip, "sampling_rate": rate})[0]["label"] == "A5"

    # ftrun predict on files, and on a table of paths relative to it.
    files = [str(evaluation / label / "22050-002.wav") for label in ("A4", "A6")]
    predicted = ftrun_cli("predict", "--model", result.output_dir, *files, "--json")
    assert predicted.code == 0, predicted
    assert [json.loads(line)["prediction"][0]["label"] for line in predicted.out.splitlines()] == ["A4", "A6"]
    (tmp_path / "clips.csv").write_text("audio\neval/A6/22050-001.wav\neval/A3/22050-001.wav\n", encoding="utf-8")
    table = ftrun_cli("predict", "--model", result.output_dir, "--input", tmp_path / "clips.csv", "--output", tmp_path / "predicted.jsonl")
    assert table.code == 0, table
    rows = [json.loads(line) for line in (tmp_path / "predicted.jsonl").read_text().splitlines()]
    assert [row["prediction"][0]["label"] for row in rows] == ["A6", "A3"]


def test_clips_shorter_than_the_model_reads_are_padded_to_its_least_input(ftrun_cli, ftrun_manifest, tmp_path):
    """30 ms clips: fewer samples than the demo wav2vec2's convolutions and SpecAugment's time mask need (905 at 16 kHz)."""
    from ftrun.plugins.audio_classification.tones import write_tones

    write_tones(tmp_path / "short", per_class=2, rate=16000, seconds=0.03, suffix="wav")
    folder = str(tmp_path / "short")
    example = str(tmp_path / "short" / "A3" / "16000-000.wav")
    manifest = manifest_of(ftrun_manifest, {"train_file": folder, "eval_file": folder}, predict={"examples": [example]})
    result = ftrun_cli(
        "--manifest", manifest, "--output-dir", tmp_path / "out", "--set", "training.num_train_epochs=1", "--set", "training.per_device_train_batch_size=4"
    )
    assert result.code == 0, result
    assert result.run.predictions[0][0]["label"] in ("A3", "A4", "A5", "A6")


def test_waveforms_are_never_cached_and_the_crop_is_random_at_train_time_only(ftrun_config, ftrun_plugin_manager, tones):
    from ftrun import load_data

    train, evaluation = tones
    config = ftrun_config(
        {"task": TASK_NAME, "model": tiny_model(), "data": {"train_file": str(train), "eval_file": str(evaluation), "max_duration_seconds": 0.1}}
    )
    task = ftrun_plugin_manager().task(TASK_NAME)
    data = load_data(task, config)
    assert data.train.with_format(None).column_names == ["audio", "label"]  # what the cache holds: paths and labels
    rate = data.processor.sampling_rate
    assert {len(data.train[0]["input_values"]), len(data.eval[0]["input_values"])} == {round(0.1 * rate)}  # cut to the maximum duration

    long = [str(train / "A4" / "44100-000.flac")] * 2
    drawn = [task.encode({"audio": long}, data, config, "train")["input_values"] for _ in range(3)]
    assert not all(np.allclose(first, second) for first, second in zip(drawn[0], drawn[1]))  # a random stretch each time
    evaluated = task.encode({"audio": long}, data, config, "eval")["input_values"]
    start = data.processor([waveform(long[0], rate)[: round(0.1 * rate)]], sampling_rate=rate)["input_values"][0]
    assert np.array_equal(evaluated[0], evaluated[1])  # the same every time: the start (up to the resampling filter's edge)
    assert np.allclose(evaluated[0][:-100], start[:-100], atol=0.01)


def test_a_table_of_relative_paths_and_integer_labels_named_by_label_names(ftrun_config, ftrun_plugin_manager, tones, tmp_path):
    from ftrun import load_data

    rows = [{"clip": f"train/{label}/8000-00{i}.wav", "class": index} for index, label in enumerate(("A3", "A6")) for i in range(3)]
    (tmp_path / "clips.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    data_keys = {"train_file": str(tmp_path / "clips.jsonl"), "eval_file": str(tmp_path / "clips.jsonl"), "audio_column": "clip", "label_column": "class"}
    config = ftrun_config({"task": TASK_NAME, "model": tiny_model(), "data": {**data_keys, "label_names": ["low", "high"]}})
    data = load_data(ftrun_plugin_manager().task(TASK_NAME), config)
    assert data.labels == ["low", "high"]
    assert [example["labels"] for example in data.eval] == [0, 0, 0, 1, 1, 1]


def test_a_dataset_with_an_audio_feature_is_read_as_its_files_bytes_without_torchcodec(ftrun_config, ftrun_plugin_manager, tmp_path):
    """As a Hub dataset holds its clips (an Audio feature, which datasets decodes with torchcodec and the system's FFmpeg)."""
    import io

    from datasets import Audio, ClassLabel, Dataset, DatasetDict

    from ftrun import load_data

    def clip(pitch: float) -> bytes:
        written = io.BytesIO()
        soundfile.write(written, tone(pitch, 8000, SECONDS, np.random.default_rng(0)), 8000, format="WAV")
        return written.getvalue()

    split = Dataset.from_dict({"audio": [{"bytes": clip(pitch), "path": None} for pitch in (220, 1760) * 3], "label": [0, 1] * 3})
    split = split.cast_column("audio", Audio()).cast_column("label", ClassLabel(names=["low", "high"]))
    DatasetDict({"train": split, "validation": split}).save_to_disk(tmp_path / "clips")
    config = ftrun_config({"task": TASK_NAME, "model": tiny_model(), "data": {"dataset": str(tmp_path / "clips"), "eval_split": "validation"}})
    data = load_data(ftrun_plugin_manager().task(TASK_NAME), config)
    assert data.labels == ["low", "high"]
    assert len(data.train[0]["input_values"]) == round(SECONDS * 16000) and data.train[1]["labels"] == 1


def bad_table(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "train.csv"
    path.write_text("audio,label\n" + "".join(f"{row},A3\n" for row in rows), encoding="utf-8")
    return path


def test_bad_clips_and_columns_are_one_line_naming_the_row_and_file(ftrun_fails, ftrun_manifest, tones, tmp_path):
    train, evaluation = tones
    (tmp_path / "notes.wav").write_text("not a sound", encoding="utf-8")
    cases = [
        (["train/A3/8000-000.wav", "train/A3/missing.wav"], {}, ["data.audio_column", "row 2 of train.csv", "missing.wav does not exist"]),
        (["train/A3/8000-000.wav", "notes.wav"], {}, ["data.audio_column", "row 2 of train.csv", "notes.wav is not an audio file"]),
        (["train/A3/8000-000.wav"], {"audio_column": "sound"}, ["data.audio_column", "column 'sound' not in the train split"]),
    ]
    for rows, keys, words in cases:
        manifest = manifest_of(ftrun_manifest, {"train_file": str(bad_table(tmp_path, rows)), "eval_file": str(evaluation), **keys})
        ftrun_fails("check", "--manifest", manifest, words=words)
        (tmp_path / "train.csv").unlink()


def test_a_model_type_without_a_feature_extractor_is_one_line(ftrun_fails, ftrun_manifest, tones):
    train, evaluation = tones
    manifest = ftrun_manifest(
        {"task": TASK_NAME, "model": {"config": {"model_type": "bert"}}, "data": {"train_file": str(train), "eval_file": str(evaluation)}}
    )
    ftrun_fails("check", "--manifest", manifest, words=["model.config", "model type 'bert' has no feature extractor"])


@pytest.fixture
def tiny_pretrained(tmp_path):
    """A local "pretrained" wav2vec2 directory (weights, config, feature extractor at 16 kHz), built offline."""
    from transformers import AutoConfig, AutoModelForAudioClassification, Wav2Vec2FeatureExtractor

    folder = tmp_path / "tiny-wav2vec2"
    AutoModelForAudioClassification.from_config(AutoConfig.for_model(**tiny_model()["config"])).save_pretrained(folder)
    Wav2Vec2FeatureExtractor().save_pretrained(folder)
    return folder


def test_the_pre_flight_shows_durations_and_rates_and_says_which_clips_are_cut_and_which_a_pretrained_model_hears_upsampled(
    ftrun_cli, ftrun_manifest, tones, tiny_pretrained
):
    train, evaluation = tones
    data = {"train_file": str(train), "eval_file": str(evaluation), "max_duration_seconds": 0.2}
    result = ftrun_cli("check", "--manifest", manifest_of(ftrun_manifest, data, model={"name": str(tiny_pretrained)}), "--json")
    assert result.code == 0, result
    report = json.loads(result.out)
    assert report["splits"]["train"]["figures"] == {
        "clip duration (s)": "0.25 to 0.25, 36 cut to 0.2",
        "sampling rate (Hz)": "8000 to 44100, resampled to 16000",
    }
    assert report["splits"]["eval"]["figures"] == {"clip duration (s)": "0.25 to 0.25, 12 cut to 0.2", "sampling rate (Hz)": "22050, resampled to 16000"}
    warnings = {warning["key"]: [] for warning in report["warnings"]}
    for warning in report["warnings"]:
        warnings[warning["key"]].append(warning["line"].partition(f"{warning['key']}: ")[2])
    assert warnings["data.max_duration_seconds"] == [
        f"{count} of the {count} {name} clips are longer than 0.2 s and cut to it (training hears a random stretch of each, evaluation their start)"
        for name, count in (("train", 36), ("eval", 12))
    ]
    assert warnings["data.audio_column"] == [
        "12 of the 36 train clips are at 8000 Hz, below the model's 16000 Hz: resampled, they hold no sound above 4000 Hz, "
        "which the pretrained model may have learnt to hear"
    ]

    fresh = ftrun_cli("check", "--manifest", manifest_of(ftrun_manifest, data), "--json")  # a model built from a config has heard nothing yet
    assert fresh.code == 0, fresh
    assert "data.audio_column" not in {warning["key"] for warning in json.loads(fresh.out)["warnings"]}


@pytest.mark.parametrize("freeze", [True, False])
def test_the_feature_encoder_is_frozen_as_run_audio_classification_does_unless_asked_not_to(ftrun_config, ftrun_plugin_manager, freeze):
    from transformers import Wav2Vec2FeatureExtractor

    from ftrun import TaskData

    config = ftrun_config({"task": TASK_NAME, "model": {**tiny_model(), "freeze_feature_encoder": freeze}, "data": {"dataset": "any/clips"}})
    plugins = ftrun_plugin_manager()
    model = plugins.build_head(plugins.task(TASK_NAME), config, TaskData(train=None, eval=None, processor=Wav2Vec2FeatureExtractor(), labels=["a", "b"]))
    assert all(parameter.requires_grad != freeze for parameter in model.wav2vec2.feature_extractor.parameters())
    assert all(parameter.requires_grad for parameter in model.classifier.parameters())
