"""Gain perturbation of the audio frames in training: each utterance as if recorded louder or softer,
by a level drawn uniformly in +-``max_db`` dB, anew every step from the ``dropout`` stream.

A gain g scales the power spectrogram by g^2, adding 20 log10(g) dB to every log-mel band; the
orthonormal DCT-II of a constant puts it, times sqrt(n_mels), into c0 alone. So on librosa's log-mel
frames the perturbation is a shift of every band, and on its MFCCs a shift of c0 (deltas unchanged
in both), exact as long as `librosa.power_to_db`'s floor (80 dB below the loudest bin) moves with
the level, and needs no recomputation. Evaluation (``model.eval()``) sees the frames unchanged.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx


class RandomGain(nnx.Module):
    def __init__(self, max_db: float, *, n_mels: int, frames: str = "mfcc", rngs: nnx.Rngs):
        """`frames`: ``mfcc`` (c0 first) or ``logmel`` (the n_mels bands first), as `MfccParams.kind`."""
        self.max_db = max_db
        # the static features a level shifts, and by how much per dB
        self.shifted, self.per_db = (n_mels, 1.0) if frames == "logmel" else (1, math.sqrt(n_mels))
        self.deterministic = False  # model.eval() sets it, as for dropout
        self.rngs = rngs["dropout"].fork()

    def __call__(self, frames: jax.Array) -> jax.Array:
        """(B, T, F) unstandardised frames -> each utterance's c0 (or every log-mel band) shifted by its gain."""
        if self.deterministic:
            return frames
        db = jax.random.uniform(self.rngs(), (frames.shape[0], 1, 1), minval=-self.max_db, maxval=self.max_db)
        return jnp.asarray(frames).at[..., : self.shifted].add((db * self.per_db).astype(frames.dtype))
