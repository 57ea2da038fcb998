"""SpecAugment-style masking of input frames (Park et al., 2019, without time warping).

In training, each utterance gets ``freq_masks`` bands of feature dimensions (each up to
``freq_width`` wide) and ``time_masks`` spans of its real frames (each up to ``time_width`` long, never
past its length) set to zero; widths and starts are drawn uniformly, anew every step from the
``dropout`` stream (which the train step reseeds). Applied to standardised features, so a masked
value is the training mean. Evaluation (``model.eval()``) sees the frames unchanged.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


class SpecAugment(nnx.Module):
    def __init__(self, *, freq_masks: int, freq_width: int, time_masks: int, time_width: int, rngs: nnx.Rngs):
        self.freq_masks, self.freq_width, self.time_masks, self.time_width = freq_masks, freq_width, time_masks, time_width
        self.deterministic = False  # model.eval() sets it, as for dropout
        self.rngs = rngs["dropout"].fork()

    def __call__(self, frames: jax.Array, lengths: jax.Array) -> jax.Array:
        """(B, T, F) frames and (B,) lengths -> the frames with their masked bands and spans zeroed."""
        if self.deterministic:
            return frames
        batch, time, features = frames.shape
        freq_key, time_key = jax.random.split(self.rngs())
        masked = (_spans(freq_key, self.freq_masks, self.freq_width, jnp.full((batch,), features), features)[:, None, :]
                  | _spans(time_key, self.time_masks, self.time_width, lengths, time)[:, :, None])
        return jnp.where(masked, jnp.zeros((), frames.dtype), frames)


def _spans(key: jax.Array, count: int, width: int, limits: jax.Array, size: int) -> jax.Array:
    """(B, size) bool: `count` spans per row, each of a width drawn from 0..`width` (at most the row's
    limit) and a start drawn so that it ends within the row's limit."""
    width_key, start_key = jax.random.split(key)
    widths = jnp.minimum(jax.random.randint(width_key, (len(limits), count), 0, width + 1), limits[:, None])
    starts = jnp.floor(jax.random.uniform(start_key, widths.shape) * (limits[:, None] - widths + 1)).astype(jnp.int32)
    positions = jnp.arange(size)[None, None]
    return ((positions >= starts[..., None]) & (positions < (starts + widths)[..., None])).any(axis=1)
