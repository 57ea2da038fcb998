"""augment.gain_db: gain perturbation of MFCC frames in training, checked against librosa on louder and
softer copies of a real recording."""

import dataclasses

import numpy as np
import pytest
from flax import nnx

from mer_jax.config import base_config
from mer_jax.data.audio import load_audio
from mer_jax.data.corpora import read_corpus
from mer_jax.data.features import MfccParams, mfcc
from mer_jax.errors import ConfigError
from mer_jax.layers.random_gain import RandomGain
from mer_jax.models.registry import build_model
from mer_jax.training.experiment import load_experiment_data

PARAMS = MfccParams(max_frames=400, deltas=2)


@pytest.fixture(scope="module")
def wave(demo_root):
    config = base_config()
    config.data.root = str(demo_root)
    utterances, _ = read_corpus(config.data)
    return load_audio(utterances[0].audio_path)


def test_the_drawn_gains_equal_librosa_on_the_rescaled_waveform(wave):
    frames = mfcc(wave, PARAMS)
    batch = np.stack([frames] * 4)  # four copies, each gets its own gain
    gain = RandomGain(6.0, n_mels=PARAMS.n_mels, rngs=nnx.Rngs(dropout=0))
    out = np.asarray(gain(batch))
    shifts = out[:, :, 0] - batch[:, :, 0]
    np.testing.assert_array_equal(out[:, :, 1:], batch[:, :, 1:])  # c1.. and every delta untouched
    assert np.ptp(shifts, axis=1).max() < 1e-3  # one level per utterance
    levels_db = shifts[:, 0] / np.sqrt(PARAMS.n_mels)
    assert np.abs(levels_db).max() <= 6 and np.ptp(levels_db) > 0.5  # drawn in +-6 dB, not all alike
    for k, db in enumerate(levels_db):  # oracle: librosa's MFCCs of the waveform played at that level
        np.testing.assert_allclose(out[k], mfcc(wave * 10 ** (db / 20), PARAMS), atol=2e-3, rtol=1e-4)
    assert not np.allclose(np.asarray(gain(batch)), out)  # a new draw every call
    gain.eval()
    np.testing.assert_array_equal(np.asarray(gain(batch)), batch)


def test_on_logmel_frames_every_band_moves_by_the_drawn_level(wave):
    params = dataclasses.replace(PARAMS, kind="logmel", n_mels=48, deltas=1)
    frames = mfcc(wave, params)
    batch = np.stack([frames] * 3)
    out = np.asarray(RandomGain(6.0, n_mels=48, frames="logmel", rngs=nnx.Rngs(dropout=1))(batch))
    np.testing.assert_array_equal(out[:, :, 48:], batch[:, :, 48:])  # deltas untouched
    levels_db = (out - batch)[:, 0, 0]
    assert np.abs(levels_db).max() <= 6 and np.ptp(levels_db) > 0.5
    for k, db in enumerate(levels_db):  # oracle: librosa's log-mel frames of the waveform at that level
        np.testing.assert_allclose(out[k], mfcc(wave * 10 ** (db / 20), params), atol=2e-3, rtol=1e-4)


def test_the_dynamic_fusion_model_perturbs_only_in_training(wave):
    config = base_config()
    config.model.modalities = "audio"
    config.augment.gain_db = 3.0
    model = build_model(config, {"num_classes": 4})
    assert isinstance(model.gain, RandomGain) and model.gain.max_db == 3.0
    frames = mfcc(wave, dataclasses.replace(PARAMS, deltas=0))[None]
    batch = {"mfcc": frames, "mfcc_length": np.array([len(frames[0])])}
    model.eval()
    first, second = (np.asarray(model(batch)["logits"]) for _ in range(2))
    np.testing.assert_array_equal(first, second)
    model.train()
    model.dropout.rate = 0.0  # only the gain is random now
    assert not np.allclose(np.asarray(model(batch)["logits"]), np.asarray(model(batch)["logits"]))
    assert build_model(base_config(), {"num_classes": 4, "vocab_size": 30}).gain is None


@pytest.mark.parametrize("overrides, message", [
    (dict(model__modalities="text"), r"augment.gain_db = 6.0 perturbs the MFCC frames"),
    (dict(features__speaker_normalization=True), r"augment.gain_db .* features.speaker_normalization"),
])
def test_gain_is_refused_where_it_cannot_apply(demo_root, tmp_path, overrides, message):
    config = base_config()
    config.data.update(root=str(demo_root), cache_dir=str(tmp_path / "cache"))
    config.augment.gain_db = 6.0
    for field, value in overrides.items():
        section, name = field.split("__")
        config[section][name] = value
    with pytest.raises(ConfigError, match=message):
        load_experiment_data(config)


def test_a_logmel_config_builds_a_model_that_reads_and_perturbs_the_bands(wave):
    config = base_config()
    config.model.modalities = "audio"
    config.features.update(frames="logmel", n_mels=48, deltas=1)
    config.augment.gain_db = 3.0
    model = build_model(config, {"num_classes": 4})
    assert model.bilstm.input_kernel[...].shape[0] == 96 and model.gain.shifted == 48
    frames = mfcc(wave, dataclasses.replace(PARAMS, kind="logmel", n_mels=48, deltas=1))[None]
    model.eval()
    assert model({"mfcc": frames, "mfcc_length": np.array([len(frames[0])])})["logits"].shape == (1, 4)
