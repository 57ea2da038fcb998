"""Multi-head scaled dot-product attention with a key mask, returning its weights for analysis.

Used as the dynamic-fusion paper's cross-modal attention (Eq. 3: Q = A W_q from audio,
K = T W_k and V = T W_v from text) and as self-attention in the small text Transformer.
"""

from __future__ import annotations

import jax
from flax import nnx

from mer_jax.encoders.layers import dot_product_attention
from mer_jax.layers.dense import Dense
from mer_jax.layers.dropout import Dropout


class MultiHeadAttention(nnx.Module):
    """softmax(Q K^T / sqrt(d_head)) V per head, then an output projection."""

    def __init__(self, d_model: int, num_heads: int, *, dropout: float = 0.0, project_keys: bool = True,
                 rngs: nnx.Rngs):
        """``project_keys=False``: keys and values are the given states as they are (their own
        projection happened upstream), so the attention has no W_k, W_v of its own."""
        if d_model % num_heads:
            raise ValueError(f"d_model {d_model} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.query = Dense(d_model, d_model, rngs=rngs)
        if project_keys:
            # No key bias: it adds the same q.b to every logit of a query, which softmax cancels exactly.
            self.key = Dense(d_model, d_model, use_bias=False, rngs=rngs)
            self.value = Dense(d_model, d_model, rngs=rngs)
        else:
            self.key = self.value = None
        self.out = Dense(d_model, d_model, rngs=rngs)
        self.dropout = Dropout(dropout, rngs=rngs)

    def __call__(self, queries: jax.Array, keys: jax.Array, key_mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(B, Tq, d) queries, (B, Tk, d) keys/values, (B, Tk) mask -> (B, Tq, d), weights (B, h, Tq, Tk)."""
        def heads(x):
            return x.reshape(*x.shape[:2], self.num_heads, -1)

        if self.key is None:
            k = v = heads(keys)
        else:
            k, v = heads(self.key(keys)), heads(self.value(keys))
        q = heads(self.query(queries))
        attended, weights = dot_product_attention(q, k, v, key_mask, scale=q.shape[-1] ** -0.5, dropout=self.dropout)
        return self.out(attended.reshape(*attended.shape[:2], -1)), weights
