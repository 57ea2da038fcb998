"""LPGNet's dual-gated fusion gates (papers/lpgnet.md, Section 3.4).

* `UnimodalGate` (Eq. 9): H_gated = sigmoid(W_g H) * H, with W_g in R^{d x d} and no bias, as
  written.
* `ModalityGate` (Eq. 13-14): Eq. 13 prints alpha_T = Softmax(W T_fused), alpha_A = Softmax(W A_fused)
  and Eq. 14 uses alpha_T, alpha_A as the weights of a two-term sum over F = [T_fused, A_fused]
  (B x U x 2 x d). We read it as one shared W in R^{d x 1} scoring each modality per utterance, and
  the softmax taken over the two modalities: [alpha_T, alpha_A] = softmax([W T_fused, W A_fused]),
  so the weights are positive and sum to 1 per utterance. (A softmax over the feature axis of a
  d-dim W T would not give the scalar per-modality weights Eq. 14 sums with.) No bias: a shared
  bias adds the same constant to both scores, which the softmax cancels.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from mer_jax.layers.dense import Dense


class UnimodalGate(nnx.Module):
    """Eq. 9: Z = sigmoid(W_g H), H_gated = Z * H."""

    def __init__(self, d: int, *, rngs: nnx.Rngs):
        self.gate = Dense(d, d, use_bias=False, rngs=rngs)

    def __call__(self, hidden: jax.Array) -> jax.Array:
        return jax.nn.sigmoid(self.gate(hidden)) * hidden


class ModalityGate(nnx.Module):
    """Eq. 13-14: per-utterance softmax over the two modalities' scores W T_fused and W A_fused."""

    def __init__(self, d: int, *, rngs: nnx.Rngs):
        self.score = Dense(d, 1, use_bias=False, rngs=rngs)

    def weights(self, text: jax.Array, audio: jax.Array) -> jax.Array:
        """(B, U, d) x2 -> (B, U, 2): [alpha_T, alpha_A] (Eq. 13), computed in float32."""
        scores = jnp.concatenate([self.score(text), self.score(audio)], axis=-1)
        return jax.nn.softmax(scores.astype(jnp.float32), axis=-1)

    def __call__(self, text: jax.Array, audio: jax.Array) -> jax.Array:
        """Eq. 14: F_final = alpha_T T_fused + alpha_A A_fused."""
        alpha = self.weights(text, audio).astype(text.dtype)
        return alpha[..., :1] * text + alpha[..., 1:] * audio
