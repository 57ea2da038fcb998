"""From a config to a constructed model: the one place that knows every model's name."""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from mer_jax.data.tokenizer import WORDS
from mer_jax.encoders import from_pretrained
from mer_jax.layers.transformer import TransformerEncoder
from mer_jax.models.dynamic_fusion import DynamicFusion

MODELS = ("dynamic_fusion",)


SMALL_TRANSFORMER = "transformer"


def build_text_encoder(config, vocab_size: int, rngs: nnx.Rngs) -> tuple[nnx.Module, int]:
    """The text encoder named by config.text.encoder, and its hidden size.

    ``transformer`` is the small randomly initialised encoder; anything else is a Hugging Face BERT
    or DeBERTa-v2/v3 checkpoint (folder or hub id) loaded into our Flax port. A frozen ("static")
    encoder runs without dropout, as a fixed feature extractor.
    """
    text = config.text
    if text.encoder == SMALL_TRANSFORMER:
        encoder = TransformerEncoder(vocab_size, config.features.max_tokens, text.hidden, text.layers, text.heads,
                                     config.model.dropout, rngs=rngs)
        return encoder, text.hidden
    no_dropout = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    encoder, hf_config = from_pretrained(text.encoder, dtype=jnp.dtype(text.dtype), rngs=rngs,
                                         **(no_dropout if config.train.freeze_encoder else {}))
    return encoder, hf_config.hidden_size


def tokenizer_spec(config) -> str:
    """config.text.tokenizer with ``auto`` resolved: a fitted word vocabulary for the small
    transformer, the checkpoint's own tokenizer for a pretrained encoder."""
    if config.text.tokenizer != "auto":
        return config.text.tokenizer
    return WORDS if config.text.encoder == SMALL_TRANSFORMER else config.text.encoder


def build_model(config, num_classes: int, vocab_size: int, rngs: nnx.Rngs) -> nnx.Module:
    m = config.model
    if m.name not in MODELS:
        raise ValueError(f"unknown model {m.name!r}; known: {MODELS}")
    encoder, text_hidden = (build_text_encoder(config, vocab_size, rngs) if "text" in m.modalities
                            else (None, 0))
    return DynamicFusion(num_classes=num_classes, modalities=m.modalities, n_mfcc=config.features.n_mfcc,
                         d_model=m.d_model, num_heads=m.num_heads, dropout=m.dropout, query=m.query,
                         text_encoder=encoder, text_hidden=text_hidden, rngs=rngs)
