"""Config checks and saved-run configs."""

import importlib
import json
import pkgutil

import pytest

import mer_jax.configs
from mer_jax.config import base_config, load_run_config, validate
from mer_jax.errors import ConfigError


def test_defaults_are_the_dynamic_fusion_papers_setting():
    c = base_config()
    validate(c)
    assert (c.train.encoder_lr, c.train.lr, c.model.dropout, c.train.clip_norm, c.train.batch_size) == (
        2e-5, 1e-4, 0.3, 1.0, 64)
    assert (c.features.n_mfcc, c.features.max_tokens, c.model.num_heads, c.model.d_model) == (40, 128, 8, 256)
    assert (c.data.label_set, c.split.protocol, c.split.test_fraction) == ("iemocap6", "random", 0.2)


@pytest.mark.parametrize("field, value, message", [
    ("split.protocol", "kfold", "split.protocol = 'kfold': must be one of"),
    ("data.label_set", "iemocap5", "data.label_set = 'iemocap5'"),
    ("train.epochs", 0, "train.epochs = 0: must be positive"),
    ("model.num_heads", 7, "multiple of model.num_heads = 7"),
    ("model.query", "mean", "model.query = 'mean': must be one of"),
    ("objective.name", "focal", "objective.name = 'focal': must be one of"),
    ("model.dtype", "float16", "model.dtype = 'float16': must be one of"),
    ("train.class_weights", "inverse", "train.class_weights = 'inverse': must be one of"),
    ("features.length_buckets", 0, "features.length_buckets = 0: must be positive"),
    ("features.deltas", 3, "features.deltas = 3: must be one of"),
    ("features.frames", "spectrogram", "features.frames = 'spectrogram': must be one of"),
    ("features.n_mels", 0, "features.n_mels = 0: must be positive"),
    ("features.n_mfcc", 80, "features.n_mfcc = 80: the MFCCs are the DCT of features.n_mels = 64"),
    ("augment.time_masks", -1, "augment.time_masks = -1: must be a whole number >= 0"),
    ("augment.speeds", (0.9, 1.0), r"augment.speeds = \(0.9, 1.0\): must be a tuple of speed factors"),
    ("augment.speeds", (3.0,), r"augment.speeds = \(3.0,\)"),
    ("augment.gain_db", -1.0, "augment.gain_db = -1.0: must be a level in dB between 0"),
    ("text.context_turns", -1, "text.context_turns = -1: must be a whole number >= 0"),
])
def test_values_no_run_can_use_are_refused(field, value, message):
    c = base_config()
    section, name = field.split(".")
    c[section][name] = value
    with pytest.raises(ConfigError, match=message):
        validate(c)


def test_a_run_saved_before_a_field_existed_loads_with_its_default(tmp_path):
    saved = base_config().to_dict()
    del saved["features"]["speaker_normalization"]
    saved["train"]["epochs"] = 7
    saved["split"]["test_sessions"] = ["Ses04"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    config = load_run_config(tmp_path / "config.json")
    assert config.features.speaker_normalization is False and config.train.epochs == 7
    assert tuple(config.split.test_sessions) == ("Ses04",)


SHIPPED = sorted(m.name for m in pkgutil.iter_modules(mer_jax.configs.__path__) if not m.ispkg)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_config_is_valid(name):
    validate(importlib.import_module(f"mer_jax.configs.{name}").get_config())


def test_the_emodb_recipe_is_the_baseline_plus_its_recipe():
    from mer_jax.configs import emodb_audio_loso, emodb_audio_recipe

    base, recipe = emodb_audio_loso.get_config(), emodb_audio_recipe.get_config()
    assert (recipe.features.frames, recipe.features.deltas, recipe.augment.speeds, recipe.augment.freq_masks,
            recipe.augment.time_masks, recipe.train.class_weights, recipe.train.epochs, recipe.train.seeds) == (
        "logmel", 2, (0.9, 1.1), 2, 2, "balanced", 25, 2)
    for section in ("data", "split", "model"):  # same data, protocol and model
        assert recipe[section].to_dict() == base[section].to_dict()
