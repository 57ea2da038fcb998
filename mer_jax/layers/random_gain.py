"""Gain perturbation of MFCC frames in training: each utterance as if recorded louder or softer, by a
level drawn uniformly in +-``max_db`` dB, anew every step from the ``dropout`` stream.

A gain g scales the power spectrogram by g^2, adding 20 log10(g) dB to every log-mel band; the
orthonormal DCT-II of a constant puts it, times sqrt(n_mels), into c0 alone. So on librosa's MFCCs
the perturbation is a shift of c0 (deltas unchanged), exact up to the -100 dB floor of
`librosa.power_to_db`, and needs no recomputation. Evaluation (``model.eval()``) sees the frames
unchanged.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx


class RandomGain(nnx.Module):
    def __init__(self, max_db: float, *, n_mels: int, rngs: nnx.Rngs):
        self.max_db, self.c0_per_db = max_db, math.sqrt(n_mels)
        self.deterministic = False  # model.eval() sets it, as for dropout
        self.rngs = rngs["dropout"].fork()

    def __call__(self, frames: jax.Array) -> jax.Array:
        """(B, T, F) unstandardised MFCC frames (c0 first) -> each utterance's c0 shifted by its gain."""
        if self.deterministic:
            return frames
        db = jax.random.uniform(self.rngs(), (frames.shape[0], 1), minval=-self.max_db, maxval=self.max_db)
        return jnp.asarray(frames).at[..., 0].add((db * self.c0_per_db).astype(frames.dtype))
