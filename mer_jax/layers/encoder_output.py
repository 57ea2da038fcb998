"""What every text encoder returns: the pretrained BERT and DeBERTa encoders (`mer_jax.encoders`) and the
small Transformer trained from scratch (`mer_jax.layers.transformer`), so a model reads any of them alike."""

from __future__ import annotations

import jax
from flax import struct


@struct.dataclass
class EncoderOutput:
    """What a text encoder returns.

    last_hidden_state: (B, L, H) final layer output; positions where attention_mask is 0 hold
        unspecified values.
    hidden_states: with output_hidden_states, the embedding output followed by each layer's output
        (num_hidden_layers + 1 arrays), as in Hugging Face.
    pooled: BERT's pooler output tanh(dense(h_[CLS])) when the encoder has a pooler, else None.
    """

    last_hidden_state: jax.Array
    hidden_states: tuple[jax.Array, ...] | None = None
    pooled: jax.Array | None = None

    @property
    def cls(self) -> jax.Array:
        """The first token's final hidden state, (B, H): the [CLS] feature."""
        return self.last_hidden_state[:, 0]
