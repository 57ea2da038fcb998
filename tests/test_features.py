"""Audio decoding, MFCCs and log-mel frames against librosa, and the on-disk feature cache."""

import dataclasses
import hashlib
import json
import os

import librosa
import numpy as np
import pytest
import soundfile as sf

from mer_jax.config import base_config
from mer_jax.data import features
from mer_jax.data.audio import audio_fingerprint, load_audio
from mer_jax.data.features import MfccParams, audio_features, mfcc, normalize_per_speaker
from mer_jax.data.records import Utterance


def test_stereo_8khz_file_is_mixed_to_mono_and_resampled_like_librosa(tmp_path):
    t = np.arange(8000) / 8000
    stereo = np.stack([np.sin(2 * np.pi * 220 * t), 0.5 * np.sin(2 * np.pi * 330 * t)], axis=1) * 0.5
    path = tmp_path / "stereo.wav"
    sf.write(path, stereo, 8000, subtype="FLOAT")
    ours = load_audio(path)
    expected, rate = librosa.load(path, sr=16000, mono=True)
    assert rate == 16000 and ours.shape == expected.shape == (16000,)
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_undecodable_audio_names_the_file(tmp_path):
    path = tmp_path / "broken.wav"
    path.write_bytes(b"RIFF....garbage")
    with pytest.raises(ValueError, match="broken.wav: cannot decode audio"):
        load_audio(path)


def test_mfcc_is_librosas_40_coefficients_per_10ms_frame_truncated():
    wave = np.random.default_rng(0).normal(0, 0.1, 16000 * 2).astype(np.float32)
    params = MfccParams(max_frames=150)
    ours = mfcc(wave, params)
    expected = librosa.feature.mfcc(y=wave, sr=16000, n_mfcc=40, n_fft=512, win_length=400, hop_length=160,
                                    n_mels=64).T
    assert expected.shape == (201, 40) and ours.shape == (150, 40)
    np.testing.assert_allclose(ours, expected[:150], rtol=1e-5, atol=1e-4)


def test_logmel_frames_are_librosas_log_mel_spectrogram_with_deltas():
    wave = np.random.default_rng(1).normal(0, 0.1, 16000).astype(np.float32)
    ours = mfcc(wave, MfccParams(kind="logmel", n_mels=48, deltas=1, max_frames=90))
    power = librosa.feature.melspectrogram(y=wave, sr=16000, n_fft=512, win_length=400, hop_length=160, n_mels=48)
    bands = 10 * np.log10(np.maximum(power, 1e-10))
    bands = np.maximum(bands, bands.max() - 80)  # librosa.power_to_db's defaults, written out
    expected = np.concatenate([bands, librosa.feature.delta(bands, order=1, mode="nearest")]).T
    assert ours.shape == (90, 96) and expected.shape == (101, 96)
    np.testing.assert_allclose(ours, expected[:90], rtol=1e-5, atol=1e-3)


def test_frame_width_follows_the_kind_of_frames():
    config = base_config()
    assert features.frame_features(config.features) == 40
    config.features.update(frames="logmel", n_mels=80, deltas=2)
    assert features.frame_features(config.features) == 240


def test_cache_keys_keep_mfccs_and_separate_logmel_frames(tmp_path):
    path = tmp_path / "u.wav"
    sf.write(path, np.random.default_rng(0).normal(0, 0.1, 8000), 16000)
    utts = [Utterance("u", "t", "neu", "x", str(path), "s", "s")]
    assert features._cache_key(utts, MfccParams()) != features._cache_key(utts, MfccParams(kind="logmel"))
    # MFCC caches written before log-mel frames existed stay valid: "kind" is not in their key
    fields = {k: v for k, v in dataclasses.asdict(MfccParams()).items() if k not in ("kind", "speed")}
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode())
    digest.update(f"{audio_fingerprint(str(path))}\n".encode())
    assert features._cache_key(utts, MfccParams()) == digest.hexdigest()[:20]


def test_cache_is_reused_and_recomputed_when_inputs_or_parameters_change(tmp_path, monkeypatch):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"u{i}.wav")
        sf.write(paths[-1], np.random.default_rng(i).normal(0, 0.1, 8000 + 1600 * i), 16000)
    utts = [Utterance(f"u{i}", "t", "neu", "x", str(p), "s", "s") for i, p in enumerate(paths)]
    calls = []
    real_mfcc = features.mfcc
    monkeypatch.setattr(features, "mfcc", lambda wave, params: calls.append(1) or real_mfcc(wave, params))
    first = audio_features(utts, MfccParams(), tmp_path / "cache")
    assert len(calls) == 3 and list(first.lengths) == [51, 61, 71]
    again = audio_features(utts, MfccParams(), tmp_path / "cache")
    assert len(calls) == 3 and np.array_equal(again.frames, first.frames)
    audio_features(utts, MfccParams(max_frames=60), tmp_path / "cache")
    assert len(calls) == 6
    sf.write(paths[0], np.zeros(8000), 16000)
    os.utime(paths[0], ns=(1, 1))  # a changed file: new size or modification time
    audio_features(utts, MfccParams(), tmp_path / "cache")
    assert len(calls) == 9


def test_speaker_normalization_standardises_each_speakers_frames():
    rng = np.random.default_rng(0)
    lengths = np.array([5, 7, 4, 6])
    frames = np.concatenate([rng.normal(loc, scale, (n, 3)) for n, loc, scale in
                             zip(lengths, [10, 10, -3, -3], [2, 2, 0.5, 0.5])]).astype(np.float32)
    normalized = normalize_per_speaker(features.AudioFeatures(frames, lengths), ["a", "a", "b", "b"])
    for rows in (slice(0, 12), slice(12, 22)):  # speaker a's 12 frames, speaker b's 10
        expected = (frames[rows] - frames[rows].mean(0)) / frames[rows].std(0)
        np.testing.assert_allclose(normalized.frames[rows], expected, atol=1e-4)
