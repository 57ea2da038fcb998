"""From a config to a constructed model: the one place that knows every model's name."""

from __future__ import annotations

from flax import nnx

from mer_jax.layers.transformer import TransformerEncoder
from mer_jax.models.dynamic_fusion import DynamicFusion

MODELS = ("dynamic_fusion",)


def build_text_encoder(config, vocab_size: int, rngs: nnx.Rngs) -> tuple[nnx.Module, int]:
    """The text encoder named by config.text.encoder and its hidden size."""
    text = config.text
    if text.encoder == "transformer":
        encoder = TransformerEncoder(vocab_size, config.features.max_tokens, text.hidden, text.layers, text.heads,
                                     config.model.dropout, rngs=rngs)
        return encoder, text.hidden
    raise ValueError(f"unknown text encoder {text.encoder!r}")


def build_model(config, num_classes: int, vocab_size: int, rngs: nnx.Rngs) -> nnx.Module:
    m = config.model
    if m.name not in MODELS:
        raise ValueError(f"unknown model {m.name!r}; known: {MODELS}")
    encoder, text_hidden = (build_text_encoder(config, vocab_size, rngs) if "text" in m.modalities
                            else (None, 0))
    return DynamicFusion(num_classes=num_classes, modalities=m.modalities, n_mfcc=config.features.n_mfcc,
                         d_model=m.d_model, num_heads=m.num_heads, dropout=m.dropout, query=m.query,
                         text_encoder=encoder, text_hidden=text_hidden, rngs=rngs)
