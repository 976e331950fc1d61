"""Generated tones: the audio-classification demo's data, and its tests'.

No recording of real sound is shipped with ftrun or available offline, so the demo classifies
pure tones by pitch, each clip of its own loudness, phase and a slight detuning. It shows the
task run from files to a saved model; it measures nothing about real audio. The demo's files
(``data/``) were written by ``python -m ftrun.plugins.audio_classification.tones``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

#: The demo's classes: the note A in four octaves, and its pitch in Hz.
PITCHES = {"A3": 220.0, "A4": 440.0, "A5": 880.0, "A6": 1760.0}


def tone(pitch: float, rate: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A sine of about ``pitch`` Hz (detuned by up to 2%), at a random loudness and phase, float32 at ``rate`` Hz."""
    t = np.arange(round(rate * seconds)) / rate
    frequency = pitch * rng.uniform(0.98, 1.02)
    return (rng.uniform(0.2, 0.8) * np.sin(2 * np.pi * frequency * t + rng.uniform(0, 2 * np.pi))).astype(np.float32)


def write_tones(folder: Path, per_class: int, rate: int = 8000, seconds: float = 0.5, suffix: str = "flac", seed: int = 0) -> list[dict[str, str]]:
    """``per_class`` clips of each of ``PITCHES`` in ``folder``, one subfolder per class; their rows (path relative to ``folder``, label)."""
    import soundfile

    rng = np.random.default_rng(seed)
    rows = []
    for label, pitch in PITCHES.items():
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            name = f"{label}/{rate}-{i:03d}.{suffix}"
            soundfile.write(folder / name, tone(pitch, rate, seconds, rng), rate)
            rows.append({"audio": name, "label": label})
    return rows


if __name__ == "__main__":  # the demo's data: 12 training and 4 evaluation clips of each class, half a second at 8 kHz
    data = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "data")
    write_tones(data / "train", per_class=12, seed=0)
    write_tones(data / "eval", per_class=4, seed=1)
