"""WavLM (Hugging Face `WavLMModel`): microsoft/wavlm-base, -base-plus, -large and their fine-tuned
descendants.

WavLM is wav2vec2's architecture (speech.py, both Transformer orders) plus a gated relative position
bias on the attention logits. The first layer holds a table of `num_buckets` learned per-head biases,
looked up by log-spaced buckets of the key-query offset (up to `max_bucket_distance`); every layer
adds that bias, scaled per query and head by a GRU-style gate computed from the attention's input
(`gru_rel_pos_linear`, `gru_rel_pos_const`). LayerDrop never skips the first layer, as in transformers.

Departure: transformers computes the bias inside the first layer and hands it on; here it is computed
from the first layer's table before the layers run (`attention_context`), the same numbers. The
departures shared with wav2vec2 are listed in speech.py.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx

from mer_jax.encoders.speech import Attention, SpeechBuilder, SpeechConfig, SpeechEncoder


@dataclasses.dataclass(frozen=True)
class WavLMConfig(SpeechConfig):
    """`SpeechConfig` plus the relative position buckets of `transformers.WavLMConfig`."""

    num_buckets: int = 320
    max_bucket_distance: int = 800


def relative_position_buckets(num_frames: int, num_buckets: int, max_distance: int) -> jax.Array:
    """(F, F) bucket of each key-minus-query offset: half the buckets per sign; within a half, offsets
    below a quarter of the buckets get their own bucket and larger ones share log-spaced buckets up to
    `max_distance` (transformers' `_relative_positions_bucket`, float32 log and truncation included)."""
    half = num_buckets // 2
    exact = half // 2
    positions = jnp.arange(num_frames)
    offset = positions[None, :] - positions[:, None]
    distance = jnp.abs(offset)
    scaled = (jnp.log(distance.astype(jnp.float32) / exact) / jnp.float32(math.log(max_distance / exact))
              * (half - exact))
    far = jnp.minimum((exact + scaled).astype(jnp.int32), half - 1)
    return (offset > 0) * half + jnp.where(distance < exact, distance, far)


class WavLMAttention(Attention):
    """`Attention` whose logits get the relative position bias gated per query and head; the first
    layer's also owns the bias table `rel_attn_embed` (buckets x heads)."""

    def __init__(self, b: SpeechBuilder, has_relative_position_bias: bool):
        super().__init__(b)
        c: WavLMConfig = b.config
        self.num_buckets, self.max_distance = c.num_buckets, c.max_bucket_distance
        self.gru_rel_pos_const = nnx.Param(jnp.ones((1, self.num_heads, 1, 1)))  # PyTorch's layout
        self.gru_rel_pos_linear = b.dense(self.head_dim, 8)
        # float32 like the attention logits the bias is added to, whatever the compute dtype
        self.rel_attn_embed = (nnx.Embed(c.num_buckets, self.num_heads, embedding_init=b.init, rngs=b.rngs)
                               if has_relative_position_bias else None)

    def position_bias(self, num_frames: int) -> jax.Array:
        """(heads, F, F) bias of key j for query i, from this layer's table."""
        buckets = relative_position_buckets(num_frames, self.num_buckets, self.max_distance)
        return self.rel_attn_embed(buckets).transpose(2, 0, 1)

    def logit_bias(self, x: jax.Array, *, position_bias: jax.Array) -> jax.Array:
        """gate * position_bias with gate = a (b c - 1) + 2, a and b sigmoids of two sums of four
        projections of the query frame's slice of `x` for the head, c the head's constant."""
        heads = x.reshape(*x.shape[:-1], self.num_heads, self.head_dim)
        projected = self.gru_rel_pos_linear(heads).astype(jnp.float32)
        a, b = jax.nn.sigmoid(projected.reshape(*heads.shape[:-1], 2, 4).sum(-1)).transpose(3, 0, 2, 1)  # (B, heads, F)
        gate = a * (b * self.gru_rel_pos_const[...][:, :, 0] - 1.0) + 2.0
        return gate[..., None] * position_bias


class WavLMEncoder(SpeechEncoder):
    """WavLMModel in Flax NNX."""

    model_type = "wavlm"
    base_model_prefix = "wavlm"
    keep_first_layer = True
    attention_adapters = False

    def attention(self, b: SpeechBuilder, index: int) -> WavLMAttention:
        return WavLMAttention(b, has_relative_position_bias=index == 0)

    def attention_context(self, num_frames: int) -> dict:
        return {"position_bias": self.encoder.layers[0].attention.position_bias(num_frames)}
