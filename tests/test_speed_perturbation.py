"""augment.speeds: speed perturbation of the training part (Ko et al., 2015)."""

import dataclasses

import numpy as np
import pytest

from mer_jax.config import base_config
from mer_jax.data.audio import SAMPLE_RATE, load_audio, speed_perturbed
from mer_jax.data.features import MfccParams, mfcc
from mer_jax.errors import ConfigError
from mer_jax.training.experiment import load_experiment_data
from mer_jax.training.loop import prepare_fold_data


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_a_sped_up_tone_is_shorter_and_higher_by_the_factor(factor):
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE  # one second of 440 Hz
    out = speed_perturbed(np.sin(2 * np.pi * 440 * t).astype(np.float32), factor)
    assert abs(len(out) - SAMPLE_RATE / factor) <= 2
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    peak = np.fft.rfftfreq(len(out), 1 / SAMPLE_RATE)[spectrum.argmax()]
    assert abs(peak - 440 * factor) < 2


def _config(demo_root, tmp_path, **overrides):
    c = base_config()
    c.data.update(root=str(demo_root), cache_dir=str(tmp_path / "cache"))
    c.split.protocol = "holdout"
    c.model.modalities = "audio"
    c.features.max_frames = 80
    for field, value in overrides.items():
        section, name = field.split("__")
        c[section][name] = value
    return c


def test_the_training_part_holds_every_utterance_once_per_speed_and_validation_and_test_do_not(demo_root, tmp_path):
    config = _config(demo_root, tmp_path, augment__speeds=(0.9, 1.1))
    data = load_experiment_data(config)
    split = data.splits[0]
    fold = prepare_fold_data(config, data, split, tmp_path / "run", write=False)
    n = len(split.train)
    assert len(fold.examples["train"]) == 3 * n
    assert len(fold.examples["validation"]) == len(split.validation) and len(fold.examples["test"]) == len(split.test)
    train = fold.examples["train"]
    assert list(train.ids[n:2 * n]) == list(train.ids[:n]) == list(train.ids[2 * n:])
    assert (train.fields["label"][n:2 * n] == train.fields["label"][:n]).all()
    # the second copy is the first training utterance's MFCCs at 0.9 speed, computed from the file here
    first = data.utterances[split.train[0]]
    params = dataclasses.replace(MfccParams.from_config(config.features), speed=0.9)
    expected = mfcc(load_audio(first.audio_path), params)
    frames = train.fields["mfcc"].take([n]).values
    np.testing.assert_allclose(frames, expected, atol=1e-4)
    plain = train.fields["mfcc"].take([0]).values
    assert len(expected) > len(plain) or len(plain) == config.features.max_frames  # slower: more frames


def test_speeds_are_refused_where_no_mfcc_frames_are_read(demo_root, tmp_path):
    config = _config(demo_root, tmp_path, augment__speeds=(1.1,), model__modalities="text")
    with pytest.raises(ConfigError, match=r"augment.speeds = \(1.1,\) perturbs the MFCC frames"):
        load_experiment_data(config)
