"""Waveforms from audio files: decoded, made mono, resampled to the model's rate, cropped to a duration.

Decoding is soundfile's (libsndfile: wav, flac, ogg/vorbis, mp3 in its recent builds), not
``datasets``' ``Audio`` feature: datasets 4 and later decode audio through torchcodec, which
needs the ffmpeg libraries installed on the system, and transformers' audio pipeline reads a
file by running the ffmpeg program. soundfile's wheels bring libsndfile with them, so a clip
reads on any machine that installed ftrun.

Resampling is scipy's ``resample_poly`` (scipy is installed with scikit-learn, which ftrun's
metrics need): a polyphase filter that is exact for the integer ratios between the usual rates
(44.1 kHz → 16 kHz is 160/441), where a second library (soxr, torchaudio) would add a
dependency for no better result on this job.
"""

from __future__ import annotations

import io
import math
import random
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np


def read_audio(file: str | Path | BinaryIO | bytes) -> tuple[np.ndarray, int]:
    """A file's samples, mono float32 (the channels averaged), and its sampling rate; soundfile's error for a file that is not audio."""
    import soundfile

    if isinstance(file, (bytes, bytearray)):
        file = io.BytesIO(file)
    samples, rate = soundfile.read(file, dtype="float32", always_2d=True)
    if samples.shape[0] == 0:
        raise ValueError("it holds no samples")
    return samples.mean(axis=1), rate


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """``samples`` at ``rate`` Hz, resampled to ``target`` Hz."""
    if rate == target:
        return samples
    from scipy.signal import resample_poly

    common = math.gcd(rate, target)
    return resample_poly(samples, target // common, rate // common).astype(np.float32)


def crop(samples: np.ndarray, length: int | None, at_random: bool) -> np.ndarray:
    """At most ``length`` samples: a random stretch of a longer clip (training, as run_audio_classification.py's
    ``random_subsample``), else its start (evaluation, prediction: the same every time)."""
    if length is None or len(samples) <= length:
        return samples
    start = random.randint(0, len(samples) - length) if at_random else 0
    return samples[start : start + length]


def waveform(file: Any, rate: int, max_seconds: float | None = None, at_random: bool = False) -> np.ndarray:
    """A file (a path, a binary file object or its bytes) as the model reads it: mono, at ``rate`` Hz, at most ``max_seconds`` long."""
    samples, found = read_audio(file)
    # Cropped first: a long recording is resampled only where it is kept.
    samples = crop(samples, None if max_seconds is None else round(max_seconds * found), at_random)
    return resample(samples, found, rate)
