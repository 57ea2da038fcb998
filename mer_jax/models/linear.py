"""The linear baseline of LPGNet's Table 2 (papers/lpgnet.md, Section 4.4): a linear classifier on
the same utterance vectors, each utterance on its own.

"a minimal baseline using a simple linear classifier applied to the same BERT and Emotion2vec
embeddings": logits = W [x_t; x_a] + b for every utterance, no context, no fusion beyond the
concatenation. It reads LPGNet's dialogue batches (so both see identical features, splits and
padding) and ignores the dialogue.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from mer_jax.layers.dense import Dense
from mer_jax.models.base import EmotionModel

MODALITIES = ("audio+text", "text", "audio")

DEFAULTS = dict(modalities="audio+text")


class LinearBaseline(EmotionModel):
    def __init__(self, *, num_classes: int, text_dim: int, audio_dim: int, modalities: str, rngs: nnx.Rngs):
        self.modalities = tuple(m for m in ("text", "audio") if m in modalities.split("+"))
        dims = {"text": text_dim, "audio": audio_dim}
        self.classifier = Dense(sum(dims[m] for m in self.modalities), num_classes, rngs=rngs)

    def __call__(self, batch: dict) -> dict[str, jax.Array]:
        """``logits`` (B, U, C) from ``text`` / ``audio`` (B, U, D) utterance vectors."""
        return {"logits": self.classifier(jnp.concatenate([batch[m] for m in self.modalities], axis=-1))}


def check(section) -> None:
    if section.modalities not in MODALITIES:
        raise ValueError(f"model.modalities = {section.modalities!r}: must be one of {list(MODALITIES)}")


def build(section, *, num_classes: int, text_dim: int, audio_dim: int, rngs: nnx.Rngs) -> LinearBaseline:
    check(section)
    return LinearBaseline(num_classes=num_classes, text_dim=text_dim, audio_dim=audio_dim,
                          modalities=section.modalities, rngs=rngs)
