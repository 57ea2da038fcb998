"""Audio decoding: read any file soundfile understands, mix to mono, resample to the target rate.

An audio path is a file, or ``tfds:<dataset dir>/<split>#<utterance id>`` for an utterance read from
tensorflow-datasets records (`mer_jax.data.tfds_audio`), whose waveforms are streamed in order.
"""

from __future__ import annotations

import collections
import os

import numpy as np

from mer_jax.data.tfds_audio import RECORD_SCHEME, record_waveforms

SAMPLE_RATE = 16_000
# What a folder of recordings may hold (soundfile reads the first five, librosa's audioread the others).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".aiff", ".mp3", ".m4a")
MIN_SECONDS = 0.025  # one 25 ms analysis window (features.win_length's default): less holds no frame of speech


def audio_problem(path, *, sample_rate: int | None = None, seconds: float | None = None,
                  formats: collections.Counter | None = None) -> str | None:
    """Why `path` cannot be used as audio, or None if it can: missing, unreadable, empty or shorter than
    one analysis window; recorded at another rate than the corpus' `sample_rate` (a converted or
    foreign file); where the labels say the utterance lasts `seconds`, holding less than half of that
    (a truncated copy); or holding NaN or infinite samples. `formats`, where given, counts the (sample
    rate, channels) of every readable file.

    Reads only the header, so readers can check every file of a corpus quickly; and the samples of
    float files, the only ones that can hold NaN or infinity.
    """
    if not os.path.exists(path):
        return "audio file is missing"
    import soundfile as sf  # noqa: PLC0415 (decoding only: models and benchmarks import this room without it)

    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        return f"audio file is unreadable ({e})"
    if info.frames == 0:
        return "audio file has no samples"
    if info.frames < MIN_SECONDS * info.samplerate:
        return f"audio lasts {1000 * info.frames / info.samplerate:.1f} ms, shorter than one 25 ms analysis window"
    if formats is not None:
        formats[info.samplerate, info.channels] += 1
    if sample_rate is not None and info.samplerate != sample_rate:
        return f"audio is sampled at {info.samplerate} Hz, but this corpus is recorded at {sample_rate} Hz"
    if seconds is not None and info.frames / info.samplerate < seconds / 2:
        return (f"audio lasts {info.frames / info.samplerate:.3f} s, but its label file times the utterance "
                f"at {seconds:.3f} s: a truncated copy?")
    if info.subtype in ("FLOAT", "DOUBLE"):
        return _non_finite(sf.read(str(path), always_2d=True)[0])
    return None


def load_audio(path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode `path` to a float32 mono waveform at `sample_rate` Hz.

    Raises ValueError naming the file when it cannot be decoded or holds NaN or infinite samples.
    """
    if str(path).startswith(RECORD_SCHEME):
        return _resampled(next(waveforms([str(path)])), SAMPLE_RATE, sample_rate)
    import soundfile as sf  # noqa: PLC0415

    try:
        wave, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        raise ValueError(f"{path}: cannot decode audio ({e})") from e
    if wave.shape[0] == 0:
        raise ValueError(f"{path}: audio file has no samples")
    if (message := _non_finite(wave)) is not None:
        raise ValueError(f"{path}: {message}")
    return _resampled(wave.mean(axis=1), rate, sample_rate)


def _non_finite(wave: np.ndarray) -> str | None:
    """What is wrong with a (frames, channels) `wave` if some samples are NaN or infinite (no feature can be
    computed from them), else None."""
    bad = np.count_nonzero(~np.isfinite(wave).all(axis=1))
    return f"{bad} of {len(wave)} audio samples are NaN or infinite" if bad else None


def _resampled(wave: np.ndarray, rate: int, sample_rate: int) -> np.ndarray:
    if rate != sample_rate:
        import librosa  # noqa: PLC0415 (heavy import, only when resampling is needed)

        wave = librosa.resample(wave, orig_sr=rate, target_sr=sample_rate)
    return np.ascontiguousarray(wave, dtype=np.float32)


def speed_perturbed(wave: np.ndarray, factor: float) -> np.ndarray:
    """`wave` played `factor` times faster (Ko et al., 2015, "Audio augmentation for speech recognition"):
    resampled to 1 / factor of its samples at the same rate, so tempo and pitch move together."""
    import librosa  # noqa: PLC0415

    return np.ascontiguousarray(librosa.resample(wave, orig_sr=SAMPLE_RATE * factor, target_sr=SAMPLE_RATE),
                                dtype=np.float32)


def waveforms(paths: list[str]):
    """The 16 kHz waveform of every audio path, in order: decoded file by file, or streamed from the
    records when the paths are ``tfds:`` paths."""
    if paths and all(str(p).startswith(RECORD_SCHEME) for p in paths):
        yield from record_waveforms([str(p) for p in paths])
    else:
        for path in paths:
            yield load_audio(path)


def audio_fingerprint(path) -> str:
    """What identifies `path`'s audio for feature caches: a file's path, size and modification time;
    a record's path (records are immutable within a dataset version)."""
    if str(path).startswith(RECORD_SCHEME):
        return str(path)
    stat = os.stat(path)
    return f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}"
