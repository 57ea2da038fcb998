"""Scaled dot-product attention with a key mask: `dot_product_attention`, the computation every attention
in mer_jax shares (the pretrained encoders', LPGNet's parallel paths, the module here), and
`MultiHeadAttention`, which projects its inputs and returns its weights for analysis.

`MultiHeadAttention` is the dynamic-fusion paper's cross-modal attention (Eq. 3: Q = A W_q from audio,
K = T W_k and V = T W_v from text) and the self-attention of the small text Transformer.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from mer_jax.layers.dense import Dense
from mer_jax.layers.dropout import Dropout


def dot_product_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array, *, scale: float,
                          bias: jax.Array | float = 0.0, dropout: nnx.Dropout | None = None):
    """softmax(q.k * scale + bias) v over the keys that `mask` allows: every attention in mer_jax.

    q, k, v: (B, L, heads, head_dim); mask: (B, Lk) real keys, or (B, Lq, Lk) per query. Logits and
    softmax are float32 whatever the compute dtype; the weighted sum is in v's dtype. A query with
    no allowed key attends uniformly (its output is then meaningless, and callers mask it). Returns
    the (B, Lq, heads, head_dim) output and the (B, heads, Lq, Lk) weights (before dropout).

    The heads move next to the batch first, so both products batch over leading axes: with the heads
    in the middle, XLA's CPU backend ran them 2-3x slower (benchmarks/README.md, issue 13).
    """
    q, k, v = (x.transpose(0, 2, 1, 3) for x in (q, k, v))  # (B, heads, L, head_dim)
    logits = jnp.einsum("bhqd,bhkd->bhqk", q, k).astype(jnp.float32) * scale + bias
    allowed = mask[:, None, None, :] if mask.ndim == 2 else mask[:, None]
    weights = jax.nn.softmax(jnp.where(allowed, logits, jnp.finfo(jnp.float32).min), axis=-1)
    dropped = weights if dropout is None else dropout(weights)
    return jnp.einsum("bhqk,bhkd->bhqd", dropped.astype(v.dtype), v).transpose(0, 2, 1, 3), weights


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
