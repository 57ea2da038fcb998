"""Build a text or speech encoder by Hugging Face `model_type`: randomly initialised from a config, or
from a pretrained checkpoint folder / hub id, plus its tokenizer (text) or waveform preprocessor (speech).
A FunASR emotion2vec folder (config.yaml and model.pt) loads the same way."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import jax.numpy as jnp
from flax import nnx

import mer_jax.encoders.emotion2vec as emotion2vec
from mer_jax.encoders.bert import BertConfig, BertEncoder
from mer_jax.encoders.checkpoint import canonical_names, load_weights, read_tensors, resolve
from mer_jax.encoders.deberta import DebertaV2Config, DebertaV2Encoder
from mer_jax.encoders.emotion2vec import Emotion2vecConfig, Emotion2vecEncoder
from mer_jax.encoders.speech import SpeechConfig, WaveformPreprocessor
from mer_jax.encoders.wav2vec2 import Data2VecAudioEncoder, HubertEncoder, Wav2Vec2Encoder
from mer_jax.encoders.wavlm import WavLMConfig, WavLMEncoder


ENCODERS = {
    "bert": (BertConfig, BertEncoder),
    "deberta-v2": (DebertaV2Config, DebertaV2Encoder),
    "wav2vec2": (SpeechConfig, Wav2Vec2Encoder),
    "hubert": (SpeechConfig, HubertEncoder),
    "data2vec-audio": (SpeechConfig, Data2VecAudioEncoder),
    "wavlm": (WavLMConfig, WavLMEncoder),
}


def _transformers():
    os.environ.setdefault("USE_TF", "0")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import transformers

    return transformers


def as_hf_config(config):
    """A transformers `PretrainedConfig` from one, or from a `config.json` dict (defaults filled in)."""
    if isinstance(config, dict):
        values = dict(config)
        return _transformers().AutoConfig.for_model(values.pop("model_type"), **values)
    return config


def without_dropout(config):
    """`config` with every dropout, LayerDrop and drop-path rate zero: a fixed feature extractor."""
    return dataclasses.replace(config, **{f.name: 0.0 for f in dataclasses.fields(config)
                                          if "drop" in f.name and isinstance(getattr(config, f.name), float)})


def encoder_config(config, *, dropout: bool = True, **overrides):
    """Our frozen config for `config` (a transformers config or dict, or an `Emotion2vecConfig`), with
    field overrides, e.g. `hidden_dropout_prob=0.1` (text) or `hidden_dropout=0.1` (speech); without
    `dropout`, every dropout rate is zero."""
    if isinstance(config, Emotion2vecConfig):
        ours = config
    else:
        config = as_hf_config(config)
        if config.model_type not in ENCODERS:
            raise ValueError(f"model_type {config.model_type!r} is not supported; known: {sorted(ENCODERS)}")
        ours = ENCODERS[config.model_type][0].from_hf(config)
    ours = dataclasses.replace(ours, **overrides)
    return ours if dropout else without_dropout(ours)


def from_config(config, *, dtype=jnp.float32, rngs: nnx.Rngs, add_pooler: bool = True, dropout: bool = True,
                **overrides) -> nnx.Module:
    """A randomly initialised encoder for a transformers config (or `config.json` dict, or an
    `Emotion2vecConfig`).

    `dtype` is the compute dtype (parameters stay float32); `add_pooler` applies to BERT;
    `overrides` replace config fields, typically the dropout rates, and `dropout=False` zeroes them
    all. As any NNX module, it starts in training mode (dropout active).
    """
    ours = encoder_config(config, dropout=dropout, **overrides)
    if isinstance(ours, Emotion2vecConfig):
        return Emotion2vecEncoder(ours, dtype=dtype, rngs=rngs)
    encoder_cls = ENCODERS[as_hf_config(config).model_type][1]
    extra = {"add_pooler": add_pooler} if encoder_cls is BertEncoder else {}
    return encoder_cls(ours, dtype=dtype, rngs=rngs, **extra)


def from_pretrained(name_or_path: str | Path, *, dtype=jnp.float32, rngs: nnx.Rngs | None = None,
                    revision: str | None = None, dropout: bool = True, **overrides):
    """Load a Hugging Face checkpoint of a model type in `ENCODERS`, or a FunASR emotion2vec folder;
    returns `(encoder, config)`: the transformers config, or the `Emotion2vecConfig`.

    `name_or_path` is a local folder or a hub id. Every checkpoint tensor must be used or be a known
    head (see checkpoint.py). BERT checkpoints without pooler weights give an encoder without a
    pooler. `rngs` seeds dropout (default `nnx.Rngs(0)`); `dropout` and `overrides` as in
    `from_config`. Like Hugging Face, the encoder is returned in eval mode; call `.train()` to
    fine-tune with dropout.
    """
    folder = resolve(name_or_path, revision)
    config = read_config(folder)
    tensors = emotion2vec.read_tensors(folder) if isinstance(config, Emotion2vecConfig) else read_tensors(folder)
    # BERT only (ignored otherwise): sentence-embedding checkpoints may come without a pooler.
    has_pooler = "pooler.dense.weight" in canonical_names(tensors, BertEncoder.base_model_prefix)
    encoder = from_config(config, dtype=dtype, rngs=rngs or nnx.Rngs(0), add_pooler=has_pooler, dropout=dropout,
                          **overrides)
    load_weights(encoder, tensors)
    encoder.eval()
    return encoder, config


def read_config(folder: str | Path):
    """The encoder config a checkpoint folder describes: a transformers config (config.json), or an
    `Emotion2vecConfig` (a FunASR folder's config.yaml)."""
    folder = Path(folder)
    if emotion2vec.funasr_files(folder):
        return emotion2vec.read_config(folder)
    return _transformers().AutoConfig.from_pretrained(folder)


def save_configs(name_or_path: str | Path, out: str | Path) -> None:
    """Copy what describes a checkpoint's encoder and its input preprocessing, without the weights, into the
    folder `out`: config.json (and preprocessor_config.json), or a FunASR folder's config as config.yaml;
    `read_config` and `load_preprocessor` read `out` as they read the checkpoint."""
    folder, out = resolve(name_or_path), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    funasr = emotion2vec.funasr_files(folder)
    files = {funasr[0]: emotion2vec.FUNASR_CONFIG} if funasr else {
        folder / name: name for name in ("config.json", "preprocessor_config.json") if (folder / name).is_file()}
    for source, name in files.items():
        shutil.copy(source, out / name)


def load_tokenizer(name_or_path: str | Path, revision: str | None = None):
    """The checkpoint's tokenizer via transformers' AutoTokenizer (same folder / hub id resolution)."""
    return _transformers().AutoTokenizer.from_pretrained(resolve(name_or_path, revision))


def load_preprocessor(name_or_path: str | Path, revision: str | None = None) -> WaveformPreprocessor:
    """A speech checkpoint's waveform preprocessing, from its `preprocessor_config.json` or, for
    emotion2vec, its config.yaml (same folder / hub id resolution)."""
    folder = resolve(name_or_path, revision)
    if emotion2vec.funasr_files(folder):
        return emotion2vec.preprocessor(emotion2vec.read_config(folder))
    return WaveformPreprocessor.from_folder(folder)
