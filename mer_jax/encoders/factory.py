"""Build a text or speech encoder by Hugging Face `model_type`: randomly initialised from a config, or
from a pretrained checkpoint folder / hub id, plus its tokenizer (text) or waveform preprocessor (speech)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import jax.numpy as jnp
from flax import nnx

from mer_jax.encoders.bert import BertConfig, BertEncoder
from mer_jax.encoders.checkpoint import canonical_names, load_weights, read_tensors, resolve
from mer_jax.encoders.deberta import DebertaV2Config, DebertaV2Encoder
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


def encoder_config(config, **overrides):
    """Our frozen config for `config` (a transformers config or dict), with field overrides, e.g.
    `hidden_dropout_prob=0.0` (text) or `hidden_dropout=0.0` (speech)."""
    config = as_hf_config(config)
    if config.model_type not in ENCODERS:
        raise ValueError(f"model_type {config.model_type!r} is not supported; known: {sorted(ENCODERS)}")
    config_cls, _ = ENCODERS[config.model_type]
    return dataclasses.replace(config_cls.from_hf(config), **overrides)


def from_config(config, *, dtype=jnp.float32, rngs: nnx.Rngs, add_pooler: bool = True, **overrides) -> nnx.Module:
    """A randomly initialised encoder for a transformers config (or `config.json` dict).

    `dtype` is the compute dtype (parameters stay float32); `add_pooler` applies to BERT;
    `overrides` replace config fields, typically the dropout rates. As any NNX module, it starts in
    training mode (dropout active).
    """
    ours = encoder_config(config, **overrides)
    encoder_cls = ENCODERS[as_hf_config(config).model_type][1]
    extra = {"add_pooler": add_pooler} if encoder_cls is BertEncoder else {}
    return encoder_cls(ours, dtype=dtype, rngs=rngs, **extra)


def from_pretrained(name_or_path: str | Path, *, dtype=jnp.float32, rngs: nnx.Rngs | None = None,
                    revision: str | None = None, **overrides):
    """Load a Hugging Face checkpoint of a model type in `ENCODERS`; returns `(encoder, transformers_config)`.

    `name_or_path` is a local folder or a hub id. Every checkpoint tensor must be used or be a known
    head (see checkpoint.py). BERT checkpoints without pooler weights give an encoder without a
    pooler. `rngs` seeds dropout (default `nnx.Rngs(0)`). Like Hugging Face, the encoder is returned
    in eval mode; call `.train()` to fine-tune with dropout.
    """
    folder = resolve(name_or_path, revision)
    config = _transformers().AutoConfig.from_pretrained(folder)
    tensors = read_tensors(folder)
    # BERT only (ignored otherwise): sentence-embedding checkpoints may come without a pooler.
    has_pooler = "pooler.dense.weight" in canonical_names(tensors, BertEncoder.base_model_prefix)
    encoder = from_config(config, dtype=dtype, rngs=rngs or nnx.Rngs(0), add_pooler=has_pooler, **overrides)
    load_weights(encoder, tensors)
    encoder.eval()
    return encoder, config


def load_tokenizer(name_or_path: str | Path, revision: str | None = None):
    """The checkpoint's tokenizer via transformers' AutoTokenizer (same folder / hub id resolution)."""
    return _transformers().AutoTokenizer.from_pretrained(resolve(name_or_path, revision))


def load_preprocessor(name_or_path: str | Path, revision: str | None = None) -> WaveformPreprocessor:
    """A speech checkpoint's waveform preprocessing, from its `preprocessor_config.json` (same folder /
    hub id resolution)."""
    return WaveformPreprocessor.from_folder(resolve(name_or_path, revision))
