"""A small pre-LayerNorm Transformer text encoder, randomly initialised and trained from scratch.

The stand-in text branch for corpora and machines without a pretrained encoder (e.g. the demo);
configs swap in pretrained BERT / DeBERTa encoders from `mer_jax.encoders` by name.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from mer_jax.layers.attention import MultiHeadAttention
from mer_jax.layers.dense import Dense
from mer_jax.layers.dropout import Dropout
from mer_jax.layers.encoder_output import EncoderOutput


class TransformerBlock(nnx.Module):
    def __init__(self, d_model: int, num_heads: int, dropout: float, *, rngs: nnx.Rngs):
        self.attention_norm = nnx.LayerNorm(d_model, rngs=rngs)
        self.attention = MultiHeadAttention(d_model, num_heads, dropout=dropout, rngs=rngs)
        self.ffn_norm = nnx.LayerNorm(d_model, rngs=rngs)
        self.ffn_in = Dense(d_model, 4 * d_model, rngs=rngs)
        self.ffn_out = Dense(4 * d_model, d_model, rngs=rngs)
        self.dropout = Dropout(dropout, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        h = self.attention_norm(x)
        x = x + self.dropout(self.attention(h, h, mask)[0])
        return x + self.dropout(self.ffn_out(jax.nn.gelu(self.ffn_in(self.ffn_norm(x)))))


class TransformerEncoder(nnx.Module):
    """Token ids and attention mask (B, L) -> hidden states (B, L, d_model), as the pretrained encoders do."""

    def __init__(self, vocab_size: int, max_length: int, d_model: int, num_layers: int, num_heads: int,
                 dropout: float, *, rngs: nnx.Rngs):
        self.hidden_size = d_model
        self.token_embedding = nnx.Embed(vocab_size, d_model, rngs=rngs)
        self.position_embedding = nnx.Embed(max_length, d_model, rngs=rngs)
        self.blocks = nnx.List([TransformerBlock(d_model, num_heads, dropout, rngs=rngs) for _ in range(num_layers)])
        self.final_norm = nnx.LayerNorm(d_model, rngs=rngs)
        self.dropout = Dropout(dropout, rngs=rngs)

    def __call__(self, input_ids: jax.Array, attention_mask: jax.Array, token_type_ids: jax.Array | None = None
                 ) -> EncoderOutput:
        """`token_type_ids` is taken for the pretrained encoders' interface and not read: this encoder has no
        segment embeddings; a dialogue context follows the utterance's own [SEP]."""
        mask = attention_mask.astype(bool)
        x = self.token_embedding(input_ids) + self.position_embedding(jnp.arange(input_ids.shape[1]))[None]
        x = x.astype(self.token_embedding.embedding.dtype)  # nnx.Embed returns float32 even from bfloat16 tables
        x = self.dropout(x)
        for block in self.blocks:
            x = block(x, mask)
        return EncoderOutput(last_hidden_state=self.final_norm(x))
