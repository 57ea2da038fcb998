"""LPGNet's Lightweight Parallel Interaction Attention pieces (papers/lpgnet.md, Section 3.3).

* `masked_attention`: scaled dot-product attention without projections (Eq. 3) whose scores are
  masked where the (B, U, U) pair mask is 0 (Eq. 4), softmax in float32 (Eq. 5).
* `ResidualEnhancement`: the two-stage refinement of an attention output (Eq. 6-8): a global
  compression (masked mean over utterances -> 1x1 convolution -> batch norm -> LeakyReLU) broadcast
  back over the utterances, then ``Q + A_conv + FFN(A_conv)`` with a pre-norm position-wise FFN.
* `InteractionPath`: one of the four parallel paths (tt, aa, at, ta): attention then enhancement.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from mer_jax.layers.attention import dot_product_attention
from mer_jax.layers.batch_norm import MaskedBatchNorm
from mer_jax.layers.dense import Dense
from mer_jax.layers.dropout import Dropout
from mer_jax.layers.pooling import masked_mean


def attention_mask(query_mask: jax.Array, key_mask: jax.Array) -> jax.Array:
    """(B, Lq) and (B, Lk) masks -> the (B, Lq, Lk) M' with M'_ij = 1 where query i and key j are both
    real (one utterance mask twice at the dialogue level)."""
    return query_mask.astype(bool)[:, :, None] & key_mask.astype(bool)[:, None, :]


def masked_attention(query: jax.Array, key: jax.Array, value: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Eq. 3-5, one head without projections: (B, U, d) x3 and the (B, U, U) mask -> the (B, U, d)
    output and the (B, U, U) weights. Masked scores get no weight (Eq. 4's -1e9 in effect); a query
    whose keys are all masked (a padded utterance) gets uniform weights: finite, unused."""
    out, weights = dot_product_attention(query[:, :, None], key[:, :, None], value[:, :, None], mask,
                                         scale=query.shape[-1] ** -0.5)
    return out[:, :, 0], weights[:, 0]


class GlobalCompression(nnx.Module):
    """Eq. 6: masked mean of the attention output over a dialogue's real utterances, then a 1x1
    convolution (a linear map; no bias, batch norm cancels it), masked batch norm over the real
    dialogues, LeakyReLU (slope 0.01). (B, U, d) -> (B, d)."""

    def __init__(self, d: int, *, rngs: nnx.Rngs):
        self.conv = Dense(d, d, use_bias=False, rngs=rngs)
        self.norm = MaskedBatchNorm(d)

    def __call__(self, attended: jax.Array, utterance_mask: jax.Array) -> jax.Array:
        real = utterance_mask.astype(bool)
        pooled = masked_mean(jnp.where(real[..., None], attended, 0.0), real)
        return jax.nn.leaky_relu(self.norm(self.conv(pooled), real.any(axis=1)), negative_slope=0.01)


class PositionFFN(nnx.Module):
    """Eq. 7: FFN(x) = W2 Dropout(GELU(W1 LayerNorm(x))), GELU exact (erf), as torch's nn.GELU.

    Its input, A_conv, is one vector per dialogue broadcast to every utterance, so everything before
    the dropout is computed once per dialogue and broadcast: the same numbers and the same dropout
    masks (drawn per utterance) as applying it to the broadcast (B, U, d) input, for a fraction of the
    work; without dropout (evaluation) the whole FFN runs once per dialogue.
    """

    def __init__(self, d: int, d_ff: int, dropout: float, *, rngs: nnx.Rngs):
        self.norm = nnx.LayerNorm(d, epsilon=1e-5, rngs=rngs)
        self.up = Dense(d, d_ff, rngs=rngs)
        self.dropout = Dropout(dropout, rngs=rngs)
        self.down = Dense(d_ff, d, rngs=rngs)

    def __call__(self, x: jax.Array, utterances: int) -> jax.Array:
        """(B, d), one vector per dialogue -> (B, utterances, d)."""
        hidden = jax.nn.gelu(self.up(self.norm(x)), approximate=False)  # (B, d_ff)
        if self.dropout.deterministic or self.dropout.rate == 0.0:
            return jnp.broadcast_to(self.down(hidden)[:, None], (x.shape[0], utterances, x.shape[-1]))
        hidden = jnp.broadcast_to(hidden[:, None], (x.shape[0], utterances, hidden.shape[-1]))
        return self.down(self.dropout(hidden))


class ResidualEnhancement(nnx.Module):
    """Eq. 6-8: X_final = Q + A_conv + FFN(A_conv), with A_conv (Eq. 6) broadcast over the
    utterances before the position-wise FFN. ``position_ffn=False`` (Table 3's "w/o position-wise
    FFN") drops the FFN term: X_final = Q + A_conv, and with it the FFN's dropout, LPGNet's only one."""

    def __init__(self, d: int, *, d_ff: int, dropout: float, position_ffn: bool, rngs: nnx.Rngs):
        self.compression = GlobalCompression(d, rngs=rngs)
        self.ffn = PositionFFN(d, d_ff, dropout, rngs=rngs) if position_ffn else None

    def __call__(self, query: jax.Array, attended: jax.Array, utterance_mask: jax.Array) -> jax.Array:
        compressed = self.compression(attended, utterance_mask)  # (B, d): one per dialogue
        out = query + compressed[:, None, :]
        return out if self.ffn is None else out + self.ffn(compressed, query.shape[1])


class InteractionPath(nnx.Module):
    """One of the four parallel paths (Section 3.3 (2)): X = Attention(Q, K=V) (Eq. 3-5), refined by
    the two-stage residual enhancement (Eq. 6-8) whose residual is the query."""

    def __init__(self, d: int, *, d_ff: int, dropout: float, position_ffn: bool, rngs: nnx.Rngs):
        self.enhancement = ResidualEnhancement(d, d_ff=d_ff, dropout=dropout, position_ffn=position_ffn, rngs=rngs)

    def __call__(self, query: jax.Array, context: jax.Array, pair_mask: jax.Array,
                 utterance_mask: jax.Array) -> jax.Array:
        return self.enhancement(query, masked_attention(query, context, context, pair_mask)[0], utterance_mask)
