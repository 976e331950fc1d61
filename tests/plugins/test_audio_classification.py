"""The audio-classification task on tones generated here (no real audio ships with ftrun): decoding, resampling, the crop, a whole run, predict."""

from __future__ import annotations

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


def test_a_file_that_is_not_audio_is_refused(tmp_path):
    (tmp_path / "notes.wav").write_text("not a sound", encoding="utf-8")
    with pytest.raises(soundfile.LibsndfileError):
        waveform(tmp_path / "notes.wav", 16000)
