"""Per-dimension standardisation of input features with statistics fixed from the training data.

The statistics are model state (not trained, but checkpointed and restored with the parameters), so
a saved model normalises new inputs exactly as it did in training.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


class Statistic(nnx.Variable):
    """A non-trainable array estimated from data (saved with the model, ignored by the optimiser)."""


class FeatureNorm(nnx.Module):
    def __init__(self, features: int):
        self.mean = Statistic(jnp.zeros(features))
        self.std = Statistic(jnp.ones(features))

    def set_statistics(self, frames: np.ndarray) -> None:
        """Fix the statistics from (n_frames, features) training frames."""
        self.mean[...] = jnp.asarray(frames.mean(axis=0))
        self.std[...] = jnp.asarray(frames.std(axis=0) + 1e-5)

    def __call__(self, x: jax.Array) -> jax.Array:
        return (x - self.mean[...]) / self.std[...]
