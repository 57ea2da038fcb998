"""Audio decoding: read any file soundfile understands, mix to mono, resample to the target rate."""

from __future__ import annotations

import os

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16_000


def audio_problem(path) -> str | None:
    """Why `path` cannot be used as audio (missing, unreadable, empty), or None if it can.

    Reads only the header, so readers can check every file of a corpus quickly.
    """
    if not os.path.exists(path):
        return "audio file is missing"
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        return f"audio file is unreadable ({e})"
    if info.frames == 0:
        return "audio file has no samples"
    return None


def load_audio(path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode `path` to a float32 mono waveform at `sample_rate` Hz.

    Raises ValueError naming the file when it cannot be decoded.
    """
    try:
        wave, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        raise ValueError(f"{path}: cannot decode audio ({e})") from e
    if wave.shape[0] == 0:
        raise ValueError(f"{path}: audio file has no samples")
    wave = wave.mean(axis=1)
    if rate != sample_rate:
        import librosa  # noqa: PLC0415 (heavy import, only when resampling is needed)

        wave = librosa.resample(wave, orig_sr=rate, target_sr=sample_rate)
    return np.ascontiguousarray(wave, dtype=np.float32)
